"""Features: point-in-time wearable windows, missing answers kept missing, one definition everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balanceit.config import Settings
from balanceit.data.validation import validate_activity, validate_questionnaire
from balanceit.features.build import answers_and_features, features_for_frames
from balanceit.features.catalogue import CATALOGUE, model_columns, model_input
from balanceit.features.store import batch_features
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
    """The warehouse path (training and `balanceit score`) and the in-memory path (pyfunc) agree."""
    settings = Settings(home=tmp_path)
    settings.ensure_dirs()
    questionnaire = answers()
    activity = days([("2025-02-26", 0, 1440), ("2025-02-27", 8000, 500)])
    in_memory = features_for_frames(questionnaire, activity, settings.activity_window_days)
    with open_warehouse(settings) as con:
        con.register("q", questionnaire.assign(ingestion_id="i1"))
        con.execute("INSERT INTO questionnaire BY NAME SELECT * FROM q")
        con.register("a", activity.assign(ingestion_id="i2"))
        con.execute("INSERT INTO activity BY NAME SELECT * FROM a")
        con.execute("INSERT INTO batch_members VALUES ('b1', 'p1', TIMESTAMP '2025-03-01 12:00:00')")
        _, stored = batch_features(con, "b1", settings)
    pd.testing.assert_frame_equal(model_input(stored), model_input(in_memory), check_dtype=False)


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
