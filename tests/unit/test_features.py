"""Features: point-in-time wearable windows, missing answers kept missing, one definition everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balanceit.config import Settings
from balanceit.data.validation import validate_activity, validate_questionnaire
from balanceit.features.build import OPTIONAL_ANSWERS, WEARABLE_SUMMARIES, answers_and_features, features_for_frames
from balanceit.features.catalogue import CATALOGUE, model_columns, model_input
from conftest import labelled_features
from balanceit.models.additive import AdditiveRiskModel
from balanceit.warehouse import open_warehouse

WINDOW = 28


def answers(**overrides) -> pd.DataFrame:
    row = {
        "respondent_id": "p1", "submitted_at": "2025-03-01T12:00:00", "age": "40", "sex": "female",
        "height_cm": "170", "weight_kg": "70", "occupation": "desk", "sitting_hours_per_day": "9",
        "standing_hours_per_day": "2", "screen_hours_per_day": "7", "movement_breaks_per_day": "3",
        "exercise_types": "Running|walking", "exercise_days_per_week": "3",
        "exercise_minutes_per_session": "40", "strength_training": "unbalanced",
        "stretching_days_per_week": "0", "stretches_before_exercise": "no", "stretches_after_exercise": "yes",
        "posture_self_report": "poor", "back_pain": "frequent", "neck_pain": "none", "shoulder_pain": "occasional",
    }
    row.update(overrides)
    return validate_questionnaire(pd.DataFrame([row]).astype("string"), "test").accepted


def days(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """(date, steps, sedentary minutes) per day for respondent p1."""
    frame = pd.DataFrame({
        "respondent_id": "p1", "date": [r[0] for r in rows], "steps": [str(r[1]) for r in rows],
        "sedentary_minutes": [str(r[2]) for r in rows], "lightly_active_minutes": "0",
        "fairly_active_minutes": "0", "very_active_minutes": "0",
    })
    return validate_activity(frame.astype("string"), "test").accepted


def test_activity_after_submission_is_never_used():
    before = days([("2025-02-27", 4000, 600), ("2025-02-28", 6000, 700)])
    after = days([("2025-02-27", 4000, 600), ("2025-02-28", 6000, 700),
                  ("2025-03-01", 50000, 0), ("2025-03-05", 90000, 0)])
    for activity in (before, after):
        features = features_for_frames(answers(), activity, WINDOW).iloc[0]
        assert features["days_worn"] == 2
        assert features["mean_steps"] == 5000


def test_days_outside_the_window_are_left_out():
    activity = days([("2025-01-01", 20000, 100), ("2025-02-28", 6000, 700)])
    assert features_for_frames(answers(), activity, WINDOW).iloc[0]["mean_steps"] == 6000


def test_non_wear_days_are_left_out():
    activity = days([("2025-02-26", 0, 1440), ("2025-02-27", 8000, 500)])
    features = features_for_frames(answers(), activity, WINDOW).iloc[0]
    assert features["days_worn"] == 1
    assert features["mean_steps"] == 8000
    assert features["mean_sedentary_hours"] == pytest.approx(500 / 60)


def test_no_activity_is_missing_not_zero():
    features = features_for_frames(answers(), None, WINDOW).iloc[0]
    assert features["days_worn"] == 0
    assert pd.isna(features["mean_steps"]) and pd.isna(features["mean_sedentary_hours"])


def test_missing_answers_stay_missing_and_are_counted():
    features = features_for_frames(answers(screen_hours_per_day="", exercise_types="", weight_kg=""),
                                   None, WINDOW).iloc[0]
    assert pd.isna(features["screen_hours"]) and pd.isna(features["ex_running"]) and pd.isna(features["bmi"])
    assert features["missing_answers"] == 3


def test_derived_features_follow_the_answers():
    features = features_for_frames(answers(), None, WINDOW).iloc[0]
    assert features["ex_running"] == 1 and features["ex_walking"] == 1 and features["ex_yoga"] == 0
    assert features["walk_run_without_stretching"] == 1
    assert features["lifting_without_balance"] == 1
    assert features["bmi"] == pytest.approx(70 / 1.7 ** 2)
    assert features["sitting_band"] == ">8 h"
    assert features["exercise_volume_minutes"] == 120
    assert features["breaks_per_sitting_hour"] == pytest.approx(3 / 9)


def test_catalogue_covers_every_model_column_once():
    columns = [c.name for c in model_columns()]
    assert len(columns) == len(set(columns))
    features = features_for_frames(answers(), None, WINDOW)
    assert set(columns) <= set(features.columns)
    for feature in CATALOGUE:
        assert feature.label and feature.description and feature.sources


def test_model_sees_exactly_the_catalogue():
    rng = np.random.default_rng(0)
    rows = pd.concat([answers(respondent_id=f"p{i}", sitting_hours_per_day=str(rng.integers(0, 14)))
                      for i in range(40)], ignore_index=True)
    features = features_for_frames(rows, None, WINDOW)
    model = AdditiveRiskModel().fit(model_input(features), rng.integers(0, 2, len(features)))
    assert model.feature_names == [f.name for f in CATALOGUE]
    logit = model.base_logit_ + model.contributions(model_input(features)).sum(axis=1)
    np.testing.assert_allclose(logit, model.decision_function(model_input(features)), atol=1e-9)


def test_training_and_scoring_features_are_identical(tmp_path):
    """The warehouse path (training and `balanceit score`) and the in-memory path (pyfunc) agree exactly,
    though the warehouse hands the row-wise features its own dtypes (int32, float64, `str`)."""
    from balanceit.data.synthetic import generate

    settings = Settings(home=tmp_path)
    population = generate(300, seed=6, labelled=True)
    questionnaire = validate_questionnaire(population.questionnaire.astype("string"), "test").accepted
    activity = validate_activity(population.activity.astype("string"), "test").accepted
    in_memory = features_for_frames(questionnaire, activity, settings.activity_window_days)
    with open_warehouse(settings) as con:
        con.register("q", questionnaire.assign(ingestion_id="i1"))
        con.execute("INSERT INTO questionnaire BY NAME SELECT * FROM q")
        con.register("a", activity.assign(ingestion_id="i2"))
        con.execute("INSERT INTO activity BY NAME SELECT * FROM a")
        con.execute("INSERT INTO batch_members SELECT 'b1', respondent_id, submitted_at FROM q")
        _, stored = labelled_features(con, settings, "b1")  # every answer is labelled
    assert (in_memory["days_worn"] > 0).any() and in_memory["ex_yoga"].isna().any()
    pd.testing.assert_frame_equal(stored, in_memory, check_exact=True)


def test_a_question_the_first_stored_batch_never_asked_is_stored_when_a_later_batch_answers_it(tmp_path):
    """The features table is created from the first batch stored: a text feature nobody in it had (a survey
    without the occupation question) must still take the values a later batch brings."""
    from balanceit.data.synthetic import generate

    settings = Settings(home=tmp_path)
    people = validate_questionnaire(generate(40, seed=7).questionnaire.astype("string"), "test").accepted
    batches = {"never asked": people.head(20).assign(occupation=pd.NA), "asked": people.tail(20)}
    with open_warehouse(settings) as con:
        for batch_id, answers in batches.items():
            con.register("q", answers.assign(ingestion_id=batch_id))
            con.execute("INSERT INTO questionnaire BY NAME SELECT * FROM q")
            con.execute("INSERT INTO batch_members SELECT ?, respondent_id, submitted_at FROM q", [batch_id])
            labelled_features(con, settings, batch_id)
        stored = con.execute("SELECT occupation FROM features WHERE occupation IS NOT NULL").df()["occupation"]
    assert sorted(stored) == sorted(batches["asked"]["occupation"])


@pytest.mark.slow
def test_training_works_without_any_wearable_data():
    """No activity file at all: every wearable column is empty, and every candidate still trains."""
    from balanceit.data.contract import LABEL
    from balanceit.data.synthetic import generate
    from balanceit.models.train import train_model

    population = generate(800, seed=4, labelled=True)
    rows = validate_questionnaire(population.questionnaire.astype("string"), "no-wearables").accepted
    rows, features = answers_and_features(rows, None, WINDOW)
    assert features["mean_steps"].isna().all()
    result = train_model(features, rows[LABEL].astype(bool), Settings(cv_folds=2))
    assert set(result.cross_validation["candidate"]) == {"additive_spline", "logistic_linear", "gradient_boosting"}
    assert 0.5 < result.holdout_metrics["roc_auc"] <= 1


def test_no_wearable_file_gives_what_no_days_in_the_window_give():
    """Without an activity relation the query skips the join; its columns and types stay the same."""
    after_the_survey = days([("2025-03-05", 8000, 500)])
    pd.testing.assert_frame_equal(features_for_frames(answers(), None, WINDOW),
                                  features_for_frames(answers(), after_the_survey, WINDOW))


def test_row_features_by_hand():
    """Every row-wise feature of four answers, values and dtypes: blank answers stay missing, a band's
    CASE sends a missing value to its last band, flags are missing with their answer, and the rows come
    in key order whatever order they arrive in."""
    answered = answers(respondent_id="a1")
    blank = answers(respondent_id="a2", age="70", sitting_hours_per_day="0",
                    **{name: "" for name in OPTIONAL_ANSWERS})
    no_exercise = answers(respondent_id="a3", age="34", sitting_hours_per_day="0.5", movement_breaks_per_day="2",
                          exercise_types="none", strength_training="balanced", stretching_days_per_week="",
                          stretches_before_exercise="yes", stretches_after_exercise="")
    lifting = answers(respondent_id="a4", age="45", sitting_hours_per_day="8", height_cm="", exercise_days_per_week="",
                      exercise_types="weightlifting;yoga", stretching_days_per_week="2")
    features = features_for_frames(pd.concat([no_exercise, answered, lifting, blank], ignore_index=True), None, WINDOW)

    def text(*values):
        return pd.array(values, dtype="str")

    def flags(*values):
        return pd.array(values, dtype="Int32")

    bmi = 70 / 1.7 ** 2
    expected = pd.DataFrame({
        "respondent_id": text("a1", "a2", "a3", "a4"),
        "submitted_at": np.array(["2025-03-01T12:00:00"] * 4, dtype="datetime64[us]"),
        "age": [40.0, 70.0, 34.0, 45.0],
        "age_band": text("35-44", "65+", "16-34", "45-64"),
        "sex": text("female", "female", "female", "female"),
        "bmi": [bmi, np.nan, bmi, np.nan],
        "occupation": text("desk", None, "desk", "desk"),
        "sitting_hours": [9.0, 0.0, 0.5, 8.0],
        "sitting_band": text(">8 h", "<4 h", "<4 h", "6-8 h"),
        "standing_hours": [2.0, np.nan, 2.0, 2.0],
        "screen_hours": [7.0, np.nan, 7.0, 7.0],
        "sitting_plus_screen_hours": [16.0, np.nan, 7.5, 15.0],
        "movement_breaks": [3.0, np.nan, 2.0, 3.0],
        "breaks_per_sitting_hour": [3 / 9, np.nan, 2.0, 3 / 8],
        "ex_walking": flags(1, None, 0, 0),
        "ex_running": flags(1, None, 0, 0),
        **{f"ex_{kind}": flags(0, None, 0, 0) for kind in ("cycling", "swimming")},
        "ex_yoga": flags(0, None, 0, 1),
        **{f"ex_{kind}": flags(0, None, 0, 0) for kind in ("pilates", "team_sports", "racket_sports", "other")},
        "ex_weightlifting": flags(0, None, 0, 1),
        "exercise_volume_minutes": [120.0, np.nan, 120.0, np.nan],
        "strength_training": text("unbalanced", None, "balanced", "unbalanced"),
        "stretching_days": [0.0, np.nan, np.nan, 2.0],
        "stretches_before": text("0", None, "1", "0"),
        "stretches_after": text("1", None, None, "1"),
        "walk_run_without_stretching": flags(1, None, None, 0),
        "lifting_without_balance": flags(1, None, 0, 1),
        "posture": text("poor", None, "poor", "poor"),
        "back_pain": text("frequent", None, "frequent", "frequent"),
        "neck_pain": text("none", None, "none", "none"),
        "shoulder_pain": text("occasional", None, "occasional", "occasional"),
        "missing_answers": np.array([0, len(OPTIONAL_ANSWERS), 2, 2], dtype="int32"),
        "days_worn": np.zeros(4, dtype="int64"),
        **{name: np.full(4, np.nan) for name in WEARABLE_SUMMARIES},
    })
    pd.testing.assert_frame_equal(features, expected)


def test_a_column_keeps_the_dtype_the_sql_gave_it():
    """Flags are int32 unless one is missing (then nullable Int32); text is `str` unless no row has any
    (then object): stored features, partition files and models were written with these dtypes."""
    answered = features_for_frames(answers(), None, WINDOW)
    assert answered["ex_yoga"].dtype == "int32" and answered["missing_answers"].dtype == "int32"
    assert answered["occupation"].dtype == "str" and answered["stretches_after"].dtype == "str"
    unanswered = features_for_frames(answers(occupation="", exercise_types="", stretches_after_exercise=""),
                                     None, WINDOW)
    assert unanswered["ex_yoga"].dtype == "Int32" and unanswered["missing_answers"].dtype == "int32"
    for name in ("occupation", "stretches_after"):
        assert unanswered[name].dtype == object and unanswered[name].iloc[0] is None


def test_no_activity_means_no_query(monkeypatch):
    """A request without wearable data computes its features without DuckDB (planning a query cost ~9 ms)."""
    def no_database():
        raise AssertionError("DuckDB was asked for features of answers without activity")

    monkeypatch.setattr("balanceit.features.build.scratch_cursor", no_database)
    features = features_for_frames(answers(), days([]).iloc[:0], WINDOW)
    assert features["days_worn"].tolist() == [0] and features["mean_steps"].isna().all()


def test_each_answer_gets_its_own_wearable_window():
    """Answers arriving out of key order still get their own person's days, counted from their own date."""
    rows = pd.concat([answers(respondent_id="p2"), answers(respondent_id="p1"),
                      answers(respondent_id="p1", submitted_at="2025-02-27T09:00:00")], ignore_index=True)
    activity = pd.concat([days([("2025-02-25", 1000, 600), ("2025-02-28", 3000, 600)]),
                          days([("2025-02-20", 9000, 600)]).assign(respondent_id="p2")], ignore_index=True)
    answered, features = answers_and_features(rows, activity, WINDOW)
    keys = list(zip(features["respondent_id"], features["submitted_at"].astype(str)))
    assert keys == [("p1", "2025-02-27 09:00:00"), ("p1", "2025-03-01 12:00:00"), ("p2", "2025-03-01 12:00:00")]
    assert features["days_worn"].tolist() == [1, 2, 1]
    assert features["mean_steps"].tolist() == [1000, 2000, 9000]
    assert answered["respondent_id"].tolist() == features["respondent_id"].tolist()
    assert (answered["submitted_at"] == features["submitted_at"]).all()


def test_missing_required_answers_follow_the_sql_null_rules():
    """Validation never lets these through, but the rules stay SQL's: a missing age or sitting time falls
    to the last band, and a ratio's floor of one hour (SQL's greatest, which skips NULL) still divides."""
    row = answers().assign(age=pd.array([None], dtype="Int64"),
                           sitting_hours_per_day=pd.array([None], dtype="Float64"))
    features = features_for_frames(row, None, WINDOW).iloc[0]
    assert features["age_band"] == "65+" and features["sitting_band"] == ">8 h"
    assert features["breaks_per_sitting_hour"] == 3.0 and pd.isna(features["sitting_plus_screen_hours"])
