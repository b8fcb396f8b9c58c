"""Features, one definition for training, scoring, the feature store and requests.

`row_features` is NumPy over whole columns (planning the SQL it replaced cost a one-row request ~9 ms);
`wearable_window` stays in SQL and reads only days before `submitted_at`, so training never sees
activity recorded after the answers it explains. Rows come in key order, with the values and dtypes
DuckDB's `.df()` gave when every feature was SQL, so stored features and models see the same frames.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from balanceit.data.contract import ACTIVITY_COLUMNS, CHOICE_JOINER, OPTIONAL_ANSWERS, PAIN_COLUMNS, QUESTIONNAIRE_KEY
from balanceit.features.catalogue import MODELLED_EXERCISES
from balanceit.warehouse import registered, scratch_cursor

ROW_INPUTS = (*QUESTIONNAIRE_KEY, "age", "sex", "sitting_hours_per_day", *OPTIONAL_ANSWERS)  # what `row_features` reads
FLAGGED_EXERCISES = (*MODELLED_EXERCISES, "weightlifting")
AGE_BANDS = ("16-34", "35-44", "45-64", "65+")
SITTING_BANDS = ("<4 h", "4-6 h", "6-8 h", ">8 h")
# pandas' "str", as DuckDB's `.df()` gives text (the object saves a request a dtype lookup per column)
FEATURE_TEXT = pd.StringDtype(na_value=np.nan)

# What a person's worn days in the window before the survey add, by feature name.
WEARABLE_SUMMARIES = {
    "mean_steps": "avg(a.steps)",
    "mean_sedentary_hours": "avg(a.sedentary_minutes) / 60.0",
    "share_days_sedentary_over_10h": "avg((a.sedentary_minutes > 600)::INTEGER)",
    "mean_active_minutes": "avg(a.fairly_active_minutes + a.very_active_minutes)",
    "mean_light_minutes": "avg(a.lightly_active_minutes)",
}
WINDOW_KEYS = "feature_window_keys"  # the answers' keys and positions, registered for the window query

Column = np.ndarray | pd.api.extensions.ExtensionArray


def answers_and_features(questionnaire: pd.DataFrame, activity: pd.DataFrame | None,
                         window_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The answers sorted by (respondent_id, submitted_at), as SQL's ORDER BY gave them (keys are unique), and
    their features, row for row; `activity` may be None or empty."""
    if len(questionnaire) > 1:  # one row is in order already, and sorting would cost a request ~0.2 ms
        ids, _ = pd.factorize(questionnaire["respondent_id"], sort=True)
        order = np.lexsort((questionnaire["submitted_at"].to_numpy(), ids))
        if (order != np.arange(len(order))).any():
            questionnaire = questionnaire.take(order)
    answers = questionnaire.reset_index(drop=True)
    if activity is None or activity.empty:
        return answers, compute_features(None, answers, None, window_days)
    with scratch_cursor() as con:
        con.register("batch_activity", activity[[*ACTIVITY_COLUMNS, "worn"]])
        return answers, compute_features(con, answers, "batch_activity", window_days)


def features_for_frames(questionnaire: pd.DataFrame, activity: pd.DataFrame | None,
                        window_days: int) -> pd.DataFrame:
    """The features of in-memory frames: one partition in, one out (no warehouse needed)."""
    return answers_and_features(questionnaire, activity, window_days)[1]


def compute_features(con: duckdb.DuckDBPyConnection | None, answers: pd.DataFrame, activity: str | None,
                     window_days: int) -> pd.DataFrame:
    """Features of `answers` (in key order); `activity` names a relation of `con` with contract section 2's
    columns and `worn`, or is None for no wearable data (and no query)."""
    wearable = (no_wearable_days(len(answers)) if activity is None
                else wearable_window(con, answers, activity, window_days))
    return pd.DataFrame({**row_features(answers), **wearable}, copy=False)


def row_features(answers: pd.DataFrame) -> dict[str, Column]:
    """The features each answer row gives alone, by name, in the feature table's column order."""
    # Each answer column read once, as its array: a one-row request pays per pandas call, not per row.
    answer = {name: answers[name].array for name in ROW_INPUTS}
    age, height, weight = _numbers(answer["age"]), _numbers(answer["height_cm"]), _numbers(answer["weight_kg"])
    sitting, screen = _numbers(answer["sitting_hours_per_day"]), _numbers(answer["screen_hours_per_day"])
    breaks, stretching_days = _numbers(answer["movement_breaks_per_day"]), _numbers(answer["stretching_days_per_week"])
    strength_training = _text(answer["strength_training"])
    chosen, exercise_missing = _exercises_chosen(answer["exercise_types"])
    walks_or_runs = chosen[:, FLAGGED_EXERCISES.index("walking")] | chosen[:, FLAGGED_EXERCISES.index("running")]
    return {
        "respondent_id": _text(answer["respondent_id"]),
        "submitted_at": answer["submitted_at"].to_numpy().astype("datetime64[us]", copy=False),
        "age": age,
        # A missing value matches no band and takes the last, as SQL's CASE ... ELSE did.
        "age_band": _labels(np.select([age < 35, age < 45, age < 65], [0, 1, 2], 3), AGE_BANDS),
        "sex": _text(answer["sex"]),
        "bmi": weight / (height / 100.0) ** 2,
        "occupation": _text(answer["occupation"]),
        "sitting_hours": sitting,
        "sitting_band": _labels(np.select([sitting < 4, sitting < 6, sitting <= 8], [0, 1, 2], 3), SITTING_BANDS),
        "standing_hours": _numbers(answer["standing_hours_per_day"]),
        "screen_hours": screen,
        "sitting_plus_screen_hours": sitting + screen,
        "movement_breaks": breaks,
        "breaks_per_sitting_hour": breaks_per_sitting_hour(breaks, sitting),
        **{f"ex_{kind}": _whole_numbers(chosen[:, i], exercise_missing) for i, kind in enumerate(FLAGGED_EXERCISES)},
        "exercise_volume_minutes": _numbers(answer["exercise_days_per_week"])
        * _numbers(answer["exercise_minutes_per_session"]),
        "strength_training": strength_training,
        "stretching_days": stretching_days,
        "stretches_before": _zero_or_one(answer["stretches_before_exercise"]),
        "stretches_after": _zero_or_one(answer["stretches_after_exercise"]),
        "walk_run_without_stretching": _whole_numbers(walks_or_runs & (stretching_days == 0),
                                                      exercise_missing | np.isnan(stretching_days)),
        "lifting_without_balance": _whole_numbers(
            np.asarray(strength_training == "unbalanced"), pd.isna(strength_training)),
        "posture": _text(answer["posture_self_report"]),
        **{pain: _text(answer[pain]) for pain in PAIN_COLUMNS},
        "missing_answers": np.sum([answer[name].isna() for name in OPTIONAL_ANSWERS], axis=0, dtype=np.int32),
    }


def breaks_per_sitting_hour(breaks: np.ndarray, sitting_hours: np.ndarray) -> np.ndarray:
    """Movement breaks per hour sat, under an hour counting as one (the what-ifs derive it here too)."""
    return breaks / np.fmax(sitting_hours, 1.0)


def wearable_window(con: duckdb.DuckDBPyConnection, answers: pd.DataFrame, activity: str,
                    window_days: int) -> dict[str, np.ndarray]:
    """days_worn and the WEARABLE_SUMMARIES of each answer's worn days in the window before it, row for row."""
    keys = pd.DataFrame({"position": np.arange(len(answers)), **{k: answers[k] for k in QUESTIONNAIRE_KEY}})
    summaries = "".join(f",\n       {sql} AS {name}" for name, sql in WEARABLE_SUMMARIES.items())
    with registered(con, WINDOW_KEYS, keys):
        worn = con.execute(f"""
SELECT q.position, count(*) AS days_worn{summaries}
FROM {WINDOW_KEYS} q
JOIN {activity} a
  ON a.respondent_id = q.respondent_id
 AND a.worn
 AND a.date <  CAST(q.submitted_at AS DATE)
 AND a.date >= CAST(q.submitted_at AS DATE) - INTERVAL {int(window_days)} DAY
GROUP BY q.position
""").df()
    columns = no_wearable_days(len(answers))
    positions = worn["position"].to_numpy()
    for name, values in columns.items():
        values[positions] = worn[name].to_numpy()
    return columns


def no_wearable_days(rows: int) -> dict[str, np.ndarray]:
    """The wearable columns of answers without worn days in their window: none worn, summaries missing."""
    summaries = {name: np.full(rows, np.nan) for name in WEARABLE_SUMMARIES}
    return {"days_worn": np.zeros(rows, dtype=np.int64), **summaries}


def _numbers(values: pd.api.extensions.ExtensionArray) -> np.ndarray:
    return values.to_numpy(dtype=float, na_value=np.nan)


def _text(values: pd.api.extensions.ExtensionArray | np.ndarray) -> Column:
    """Text as the SQL gave it: pandas' `str`, or an object column of None when no row has a value."""
    if pd.isna(values).all():
        return np.full(len(values), None, dtype=object)
    return pd.array(values, dtype=FEATURE_TEXT)


def _labels(codes: np.ndarray, labels: tuple[str, ...]) -> Column:
    """`labels[code]` per row as text; code -1 is missing."""
    return _text(np.array([*labels, None], dtype=object)[codes])


def _zero_or_one(flags: pd.api.extensions.ExtensionArray) -> Column:
    """A yes/no answer as the text "0" or "1", missing when unanswered."""
    return _labels(flags.to_numpy(dtype=float, na_value=-1).astype(np.int64), ("0", "1"))


def _whole_numbers(values: np.ndarray, missing: np.ndarray) -> Column:
    """Whole numbers as the SQL gave its INTEGER columns: int32, nullable Int32 when one is missing."""
    numbers = values.astype(np.int32)
    return pd.arrays.IntegerArray(numbers, missing.copy()) if missing.any() else numbers


def _exercises_chosen(exercise_types: pd.api.extensions.ExtensionArray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, whether each of FLAGGED_EXERCISES was chosen (rows x exercises) and whether the answer is
    missing; worked out once per distinct answer, since answers repeat."""
    codes, distinct = pd.factorize(exercise_types)
    chosen = np.zeros((len(distinct) + 1, len(FLAGGED_EXERCISES)), dtype=bool)  # the last row: a missing answer
    for position, answer in enumerate(distinct):
        choices = set(answer.split(CHOICE_JOINER))
        chosen[position] = [kind in choices for kind in FLAGGED_EXERCISES]
    return chosen[codes], codes < 0
