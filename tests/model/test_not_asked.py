"""Questions a batch never asked: unknown for everyone in it, not "skipped" by everyone.

A small additive model with sign interactions is fitted in-process on a generated population; the
checks are about the arithmetic of not-asked features, so they need no accuracy and run in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balanceit.config import Settings
from balanceit.data.contract import LABEL
from balanceit.data.synthetic import generate
from balanceit.data.validation import validate_questionnaire
from balanceit.features.build import answers_and_features
from balanceit.features.catalogue import CATALOGUE, model_input
from balanceit.models.additive import AdditiveRiskModel
from balanceit.models.explain import explain_batch, not_asked_questions, unknown_features
from balanceit.models.score import request_rows, score_raw_rows

NOT_ASKED = ("back_pain", "neck_pain", "shoulder_pain", "posture_self_report", "strength_training",
             "stretching_days_per_week")
UNKNOWN = {"back_pain", "neck_pain", "shoulder_pain", "posture", "strength_training", "stretching"}
DRIVER_COLUMNS = ["driver_1", "driver_2", "driver_3"]


@pytest.fixture(scope="module")
def fitted():
    population = generate(4000, seed=5, labelled=True)
    answers = validate_questionnaire(population.questionnaire.astype("string"), "generated").accepted
    answers, features = answers_and_features(answers, None, Settings().activity_window_days)
    model = AdditiveRiskModel(n_knots=5, sign_interactions=True).fit(model_input(features),
                                                                     answers[LABEL].astype(bool))
    return model, answers.head(1500), features.head(1500)


def test_a_question_absent_or_empty_on_every_row_is_not_asked(fitted):
    _, answers, _ = fitted
    fewer = answers.drop(columns=["back_pain"]).assign(neck_pain=None)
    assert not_asked_questions(answers) == ()
    assert set(not_asked_questions(fewer)) == {"back_pain", "neck_pain"}
    one_skip = answers.assign(neck_pain=answers["neck_pain"].where(answers.index != answers.index[0]))
    assert not_asked_questions(one_skip) == ()
    assert {f.name for f, unknown in zip(CATALOGUE, unknown_features(NOT_ASKED)) if unknown} == UNKNOWN


def test_an_unasked_feature_adds_nothing_to_any_risk_and_is_never_a_driver(fitted):
    """Whatever the not-asked columns hold, the risks and drivers are the same, and those features
    contribute exactly 0; the contributions still add up to the logit."""
    model, answers, features = fitted
    unknown = unknown_features(NOT_ASKED)
    X = model_input(features)
    contributions = model.contributions(X, unknown).to_numpy()
    assert np.all(contributions[:, unknown] == 0.0)
    np.testing.assert_allclose(model.base_logit_ + contributions.sum(axis=1), model.decision_function(X, unknown),
                               atol=1e-9)
    scrambled = X.assign(back_pain="frequent", neck_pain=None, posture="poor", strength_training=None,
                         stretching_days=np.nan)
    np.testing.assert_array_equal(model.decision_function(scrambled, unknown), model.decision_function(X, unknown))

    scored = explain_batch(model, answers, features, Settings(), NOT_ASKED)
    named = set(scored[DRIVER_COLUMNS].stack().dropna())
    assert named and not named & UNKNOWN
    assert not scored["missing_answers"].str.contains("pain|posture|strength|stretching_days").any()
    assert scored["whatif_stretch_3_days"].isna().all() and scored["whatif_balanced_strength"].isna().all()
    assert scored["whatif_sit_2h_less"].notna().any()
    asked = explain_batch(model, answers, features, Settings())
    assert not np.allclose(asked["risk"], scored["risk"])  # without the rule the skipped terms would count


def test_a_request_without_a_column_scores_it_as_not_asked(fitted):
    """The pyfunc's rows: a column absent from the request is not asked; a blank in a sent column is a skip."""
    model, answers, features = fitted
    rows = request_rows(answers.head(20))
    absent = score_raw_rows(model, rows.drop(columns=list(NOT_ASKED)), Settings())
    expected = explain_batch(model, answers.head(20), features.head(20), Settings(), NOT_ASKED)
    np.testing.assert_allclose(absent["risk"], expected["risk"], atol=1e-12)
    blank = score_raw_rows(model, rows.assign(back_pain=None), Settings())
    assert blank["missing_answers"].str.contains("back_pain").all()
    assert not absent["missing_answers"].fillna("").str.contains("back_pain").any()
    assert pd.Series(absent[DRIVER_COLUMNS].stack().dropna()).isin(UNKNOWN).sum() == 0


def test_a_missing_answer_term_from_few_blank_rows_is_shrunk_toward_the_average(fitted):
    """A blank answer's term keeps n / (n + prior) of its distance from the answered rows' average."""
    _, answers, features = fitted
    X, y = model_input(features), answers[LABEL].astype(bool)
    assert X["occupation"].isna().sum() > 10
    skipped = X.assign(occupation=None)
    unshrunk = AdditiveRiskModel(n_knots=5, missing_prior_rows=0.0).fit(X, y)
    shrunk = AdditiveRiskModel(n_knots=5, missing_prior_rows=1e6).fit(X, y)
    gap = {name: np.abs(m.contributions(skipped)["occupation"] - m.contributions(X)["occupation"].mean()).mean()
           for name, m in (("unshrunk", unshrunk), ("shrunk", shrunk))}
    assert gap["shrunk"] < 0.05 * gap["unshrunk"]


def test_a_partition_where_nobody_answered_a_question_the_batch_asked_reads_its_blanks_as_skips(fitted, tmp_path):
    """Not asked is the batch's (`Partition.not_asked`, from the export): the partition's own answers would call a
    question everyone in it happened to skip not asked, and its people's risks would depend on how the batch was cut."""
    from upath import UPath

    from balanceit.data.partitions import Partition
    from balanceit.models.score import score_partition

    model, answers, _ = fitted
    skipped = answers.head(40).assign(back_pain=None)
    skipped.to_parquet(tmp_path / "questionnaire.parquet")
    generate(1, seed=5).activity.head(0).to_parquet(tmp_path / "activity.parquet")
    risks = {}
    for name, not_asked in (("asked", ()), ("not asked", ("back_pain",))):
        folder = UPath(tmp_path / name)
        folder.mkdir()
        partition = Partition(0, UPath(tmp_path / "questionnaire.parquet"), UPath(tmp_path / "activity.parquet"),
                              folder / "features.parquet", folder / "scored.parquet", not_asked)
        scored = pd.read_parquet(score_partition(partition, model, "1", Settings()).scored)
        risks[name] = scored["risk"].to_numpy()
        assert scored["missing_answers"].fillna("").str.contains("back_pain").all() == (name == "asked")
    assert not np.allclose(risks["asked"], risks["not asked"])


def test_a_kind_of_exercise_a_survey_never_offers_is_unknown_on_its_own():
    """NHANES asks about walking and recreation only: its other kinds' features are unknown, the rest stay known."""
    from balanceit.data.contract import NHANES_NOT_ASKED_EXERCISES as NOT_ASKED_EXERCISES

    unknown = {feature.name for feature, is_unknown in zip(CATALOGUE, unknown_features(NOT_ASKED_EXERCISES))
               if is_unknown}
    assert unknown == set(NOT_ASKED_EXERCISES) and {"exercise_yoga", "exercise_running"} <= unknown
