"""The model on generated data: accurate against the truth, calibrated, explained by the real causes.

The model is trained in-process (no Prefect, no MLflow) on a generated population, and held-out
people are compared with the generator's truth: the Bayes-optimal risk (the ceiling) and each
person's largest true risk factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balanceit.config import Settings
from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.data.synthetic import generate
from balanceit.data.validation import validate_activity, validate_questionnaire
from balanceit.features.build import answers_and_features
from balanceit.features.catalogue import CAUSES, SIGNS, model_arrays, model_input
from balanceit.models.evaluate import explanation_agreement
from balanceit.models.additive import AdditiveRiskModel
from balanceit.models.explain import explain_batch
from balanceit.models.train import train_model
from balanceit.models.whatif import WHAT_IFS

pytestmark = pytest.mark.slow
ROWS = 60_000


@pytest.fixture(scope="module")
def trained():
    population = generate(ROWS, seed=3, labelled=True)
    answers = validate_questionnaire(population.questionnaire.astype("string"), "generated").accepted
    activity = validate_activity(population.activity.astype("string"), "generated").accepted
    settings = Settings(cv_folds=3)
    answers, features = answers_and_features(answers, activity, settings.activity_window_days)
    truth = population.truth.assign(submitted_at=pd.to_datetime(population.truth["submitted_at"]))
    true_risk = answers[list(QUESTIONNAIRE_KEY)].merge(truth, on=list(QUESTIONNAIRE_KEY))["true_risk"]
    result = train_model(features, answers[LABEL].astype(bool), settings, true_risk.set_axis(answers.index))
    return result, answers, features, population.truth, settings


def test_beats_the_gradient_boosted_peer_and_nears_the_ceiling(trained):
    result, *_ = trained
    assert result.chosen in ("additive_spline", "logistic_linear")
    assert result.truth_metrics["share_of_ceiling"] > result.truth_metrics["peer_share_of_ceiling"]
    assert result.truth_metrics["share_of_ceiling"] >= 0.99


def test_is_calibrated(trained):
    result, *_ = trained
    assert result.holdout_metrics["ece"] <= 0.02


def test_more_sitting_never_lowers_the_risk(trained):
    """A behavioural check: all else equal, more hours of sitting must not lower the risk."""
    result, _, features, _, _ = trained
    sample = model_input(features.head(2000))
    risks = [result.model.predict_proba(sample.assign(sitting_hours=h))[:, 1] for h in (4.0, 8.0, 12.0)]
    assert np.all(np.diff(np.vstack(risks), axis=0) >= -1e-9)


def test_explanations_name_the_true_causes_not_symptoms(trained):
    result, answers, features, truth, settings = trained
    held_out = result.holdout_index
    scored = explain_batch(result.model, answers.loc[held_out], features.loc[held_out], settings)
    agreement = explanation_agreement(scored, truth)
    assert agreement["people_with_clear_top_factor"] > 1000
    assert agreement["top_factor_among_drivers"] >= 0.95
    assert agreement["top_factor_is_driver_1"] >= 0.65
    assert agreement["share_with_sign_among_drivers"] <= 0.05
    assert not scored[["driver_1", "driver_2", "driver_3"]].isin(SIGNS).any().any()


def test_contributions_are_exact(trained):
    result, _, features, _, _ = trained
    X = model_input(features.head(5000))
    total = result.model.base_logit_ + result.model.contributions(X).sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, result.model.decision_function(X), atol=1e-9)


def test_fitted_terms_equal_the_design_matrix_times_the_coefficients(trained):
    """Each column's fast term (one B-spline, or a category look-up) is `transform(x) @ coef`,
    also past the training range, for missing values and for a category training never saw."""
    model = trained[0].model
    coefs = iter(model.coef_slices_)
    for encoders in model.encoders_:
        for encoder in encoders:
            coef = next(coefs)
            if encoder.one_hot is not None:
                values = pd.Series([*encoder.one_hot.categories_[0], None, "never-seen"], dtype=object)
                # Explanations read categories coded (see `model_arrays`): the same term from codes and labels.
                np.testing.assert_array_equal(encoder.fitted_term(coef)(pd.Categorical(values)),
                                              encoder.fitted_term(coef)(values), err_msg=encoder.column.name)
            else:
                low, high = (encoder.spline.bsplines_[0].t[[3, -4]] if encoder.spline is not None else (0.0, 1.0))
                values = pd.Series([*np.linspace(low - 10, high + 10, 41), np.nan])
            np.testing.assert_allclose(encoder.fitted_term(coef)(values), encoder.transform(values) @ coef,
                                       atol=1e-9, err_msg=encoder.column.name)


def test_coded_categories_give_the_model_the_same_terms_as_text(trained):
    model, features = trained[0].model, trained[2].head(5000)
    np.testing.assert_array_equal(model.terms(model_arrays(features, coded=True)), model.terms(model_arrays(features)))


def test_driver_answers_read_as_the_person_wrote_them(trained):
    """yes/no for yes/no questions, whole numbers without a trailing .0, 'missing' for a blank."""
    result, answers, features, _, settings = trained
    scored = explain_batch(result.model, answers.head(3000), features.head(3000), settings)
    texts = scored[["driver_1_answers", "driver_2_answers", "driver_3_answers"]].stack().astype(str)
    stretching = texts[texts.str.contains("stretches_before_exercise=")]
    assert len(stretching) > 0
    assert stretching.str.contains(r"stretches_before_exercise=(?:yes|no|missing)(?:;|$)").all()
    assert not texts.str.contains(r"=\d+\.0(?:;|$)").any()


@pytest.fixture(scope="module")
def with_sign_interactions(trained):
    _, answers, features, _, _ = trained
    return AdditiveRiskModel(n_knots=8, sign_interactions=True).fit(model_input(features), answers[LABEL].astype(bool))


def test_sign_interactions_weigh_symptoms_by_causes(trained, with_sign_interactions):
    """A symptom answer moves only the signs' contributions, never a cause's, so the drivers stay the
    person's own causes; the contributions still add up to the logit exactly."""
    model = with_sign_interactions
    assert len(model.pair_coef_) > 0
    X = model_input(trained[2].head(500))
    np.testing.assert_allclose(model.base_logit_ + model.contributions(X).sum(axis=1),
                               model.decision_function(X), atol=1e-9)
    before, after = (model.contributions(rows).to_numpy() for rows in (X, X.assign(back_pain="frequent")))
    causes = [model.feature_names.index(name) for name in CAUSES]
    signs = [model.feature_names.index(name) for name in SIGNS]
    np.testing.assert_allclose(before[:, causes], after[:, causes], atol=1e-12)
    assert not np.allclose(before[:, signs], after[:, signs])


@pytest.mark.parametrize("interactions", [False, True])
def test_what_ifs_equal_scoring_the_changed_answers(trained, with_sign_interactions, interactions):
    """A what-if recomputes only the terms it touches; the risk is the model's risk for the changed answers."""
    result, answers, features, _, settings = trained
    model = with_sign_interactions if interactions else result.model
    rows = features.head(2000)
    scored = explain_batch(model, answers.head(2000), rows, settings)
    X = model_arrays(rows)
    for what_if in WHAT_IFS:
        expected = model.predict_proba(pd.DataFrame({**X, **what_if.change(X)}))[:, 1]
        applies = what_if.applies(X)
        assert applies.any(), what_if.name
        np.testing.assert_allclose(scored[f"whatif_{what_if.name}"].to_numpy()[applies], expected[applies], atol=1e-12)


def test_a_model_pickled_before_sign_interactions_scores_as_before(trained):
    import pickle

    features = trained[2].head(3000)
    labels = trained[1][LABEL].head(3000).astype(bool)
    plain = AdditiveRiskModel(n_knots=4).fit(model_input(features), labels)
    state = dict(plain.__getstate__())  # a copy: it may be the model's own __dict__
    for name in ("sign_interactions", "intercept_", "weights_", "pairs_", "pair_mean_", "pair_scale_",
                 "pair_coef_", "pair_owner_"):
        del state[name]
    old = pickle.loads(pickle.dumps(plain))
    old.__dict__.clear()
    old.__setstate__(state)
    np.testing.assert_allclose(old.decision_function(model_input(features)),
                               plain.decision_function(model_input(features)), atol=1e-12)
