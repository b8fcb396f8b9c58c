"""Feature engineering in SQL on DuckDB: one definition for training and scoring.

`feature_sql` turns a questionnaire relation (contract columns) and an activity relation
(contract section 2 plus `worn`) into one row of features per (respondent, submission).
Wearable days count only when worn and only in the window before `submitted_at`, so
training never sees activity recorded after the answers it explains.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from balanceit.data.contract import ACTIVITY_COLUMNS, QUESTIONNAIRE, QUESTIONNAIRE_KEY
from balanceit.features.catalogue import MODELLED_EXERCISES
from balanceit.warehouse import scratch_cursor

OPTIONAL_ANSWERS: tuple[str, ...] = tuple(
    c.name for c in QUESTIONNAIRE
    if not c.required and c.name not in {"imbalance", "survey_weight", "survey_stratum", "survey_psu"}
)
FEATURE_KEY = QUESTIONNAIRE_KEY

# What a person's worn days in the window before the survey add, by feature name.
WEARABLE_SUMMARIES = {
    "mean_steps": "avg(a.steps)",
    "mean_sedentary_hours": "avg(a.sedentary_minutes) / 60.0",
    "share_days_sedentary_over_10h": "avg((a.sedentary_minutes > 600)::INTEGER)",
    "mean_active_minutes": "avg(a.fairly_active_minutes + a.very_active_minutes)",
    "mean_light_minutes": "avg(a.lightly_active_minutes)",
}


def _exercise_flags() -> str:
    return ",\n".join(
        f"CASE WHEN exercise_types IS NULL THEN NULL "
        f"ELSE list_contains(string_split(exercise_types, ';'), '{kind}')::INTEGER END AS ex_{kind}"
        for kind in (*MODELLED_EXERCISES, "weightlifting")
    )


def _missing_count() -> str:
    return " + ".join(f"({name} IS NULL)::INTEGER" for name in OPTIONAL_ANSWERS)


def _wearable_window(activity: str, window_days: int) -> str:
    """The `act` relation: per answer, its worn days in the window before `submitted_at`, summarised."""
    summaries = "".join(f",\n           {sql} AS {name}" for name, sql in WEARABLE_SUMMARIES.items())
    return f"""act AS (
    SELECT q.respondent_id, q.submitted_at,
           count(*) AS days_worn{summaries}
    FROM q
    JOIN {activity} a
      ON a.respondent_id = q.respondent_id
     AND a.worn
     AND a.date <  CAST(q.submitted_at AS DATE)
     AND a.date >= CAST(q.submitted_at AS DATE) - INTERVAL {int(window_days)} DAY
    GROUP BY q.respondent_id, q.submitted_at
)"""


def feature_sql(questionnaire: str, activity: str | None, window_days: int) -> str:
    """The feature query over relation names (tables, views or registered DataFrames).

    With no activity relation the wearable columns are empty and the query has no join: a one-row
    scoring request pays for planning the query, so it plans only what it needs.
    """
    if activity is None:
        ctes = ""
        wearable = ",\n    ".join(["0::BIGINT AS days_worn", *(f"NULL::DOUBLE AS {name}" for name in WEARABLE_SUMMARIES)])
        joined = ""
    else:
        ctes = ",\n" + _wearable_window(activity, window_days)
        wearable = ",\n    ".join(["coalesce(act.days_worn, 0) AS days_worn", *(f"act.{name}" for name in WEARABLE_SUMMARIES)])
        joined = "\nLEFT JOIN act USING (respondent_id, submitted_at)"
    return f"""
WITH q AS (SELECT * FROM {questionnaire}){ctes}
SELECT
    q.respondent_id,
    q.submitted_at,
    q.age::DOUBLE                                               AS age,
    CASE WHEN q.age < 35 THEN '16-34' WHEN q.age < 45 THEN '35-44'
         WHEN q.age < 65 THEN '45-64' ELSE '65+' END            AS age_band,
    q.sex,
    q.weight_kg / ((q.height_cm / 100.0) ** 2)                  AS bmi,
    q.occupation,
    q.sitting_hours_per_day::DOUBLE                             AS sitting_hours,
    CASE WHEN q.sitting_hours_per_day < 4 THEN '<4 h' WHEN q.sitting_hours_per_day < 6 THEN '4-6 h'
         WHEN q.sitting_hours_per_day <= 8 THEN '6-8 h' ELSE '>8 h' END AS sitting_band,
    q.standing_hours_per_day::DOUBLE                            AS standing_hours,
    q.screen_hours_per_day::DOUBLE                              AS screen_hours,
    q.sitting_hours_per_day + q.screen_hours_per_day            AS sitting_plus_screen_hours,
    q.movement_breaks_per_day::DOUBLE                           AS movement_breaks,
    q.movement_breaks_per_day / greatest(q.sitting_hours_per_day, 1.0) AS breaks_per_sitting_hour,
    {_exercise_flags()},
    (q.exercise_days_per_week * q.exercise_minutes_per_session)::DOUBLE AS exercise_volume_minutes,
    q.strength_training,
    q.stretching_days_per_week::DOUBLE                          AS stretching_days,
    q.stretches_before_exercise::INTEGER::VARCHAR               AS stretches_before,
    q.stretches_after_exercise::INTEGER::VARCHAR                AS stretches_after,
    CASE WHEN q.exercise_types IS NULL OR q.stretching_days_per_week IS NULL THEN NULL
         ELSE (list_has_any(string_split(q.exercise_types, ';'), ['walking', 'running'])
               AND q.stretching_days_per_week = 0)::INTEGER END AS walk_run_without_stretching,
    CASE WHEN q.strength_training IS NULL THEN NULL
         ELSE (q.strength_training = 'unbalanced')::INTEGER END AS lifting_without_balance,
    q.posture_self_report                                       AS posture,
    q.back_pain,
    q.neck_pain,
    q.shoulder_pain,
    {_missing_count()}                                          AS missing_answers,
    {wearable}
FROM q{joined}
ORDER BY q.respondent_id, q.submitted_at
"""


def compute_features(con: duckdb.DuckDBPyConnection, questionnaire: str, activity: str | None,
                     window_days: int) -> pd.DataFrame:
    """Features for every row of `questionnaire`; `activity` may be None (no wearable data)."""
    return con.execute(feature_sql(questionnaire, activity, window_days)).df()


def features_for_frames(questionnaire: pd.DataFrame, activity: pd.DataFrame | None,
                        window_days: int) -> pd.DataFrame:
    """The same features for in-memory frames: one partition in, one out (no warehouse needed)."""
    with scratch_cursor() as con:
        con.register("batch_questionnaire", questionnaire)
        activity_name = None
        if activity is not None and len(activity):
            con.register("batch_activity", activity[[*ACTIVITY_COLUMNS, "worn"]])
            activity_name = "batch_activity"
        return compute_features(con, "batch_questionnaire", activity_name, window_days)


def answers_and_features(questionnaire: pd.DataFrame, activity: pd.DataFrame | None,
                         window_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`features_for_frames`, with the answers reordered to match its rows (the query sorts by key):
    explanations, labels and models all read the two frames row for row."""
    features = features_for_frames(questionnaire, activity, window_days)
    key = list(FEATURE_KEY)
    return questionnaire.merge(features[key], on=key, how="right"), features
