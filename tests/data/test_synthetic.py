"""The synthetic population: the checks of domain-evidence section 3.6, the contract, and the truth columns."""

from __future__ import annotations

import re
from dataclasses import replace
from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import expit
from scipy.stats import lognorm, norm, poisson
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from balanceit.data import contract
from balanceit.data import synthetic
from balanceit.data.synthetic import BLANKABLE_CAUSES, Population, draw_blank_causes, generate, write
from balanceit.data.synthetic_config import DEFAULT, FACTORS, LATENTS, PopulationConfig
from balanceit.data.synthetic_truth import (
    STEPS_TERM, Completions, compute_truth, design_terms, latent_log_odds, log_steps_shift, low_steps_probability,
)

ROWS = 100_000
REFIT_ROWS = 200_000  # keeps every refit standard error under ~0.03, so +-0.1 is > 3 SE for all 76 ORs
OR_TOLERANCE = 0.1  # section 3.6.1, on the ln OR scale


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(ROWS, seed=11, labelled=True)


@pytest.fixture(scope="module")
def without_person_effect() -> tuple[Population, PopulationConfig]:
    """sigma = 0 and no missing answers, for refits on the exact design.

    u_i is shared and unobserved: a plain logistic refit with it present recovers population-averaged
    coefficients, attenuated by about 1/sqrt(1 + 0.346 sigma^2) (~4% at sigma = 0.5; Zeger et al. 1988).
    Switching u off through the config makes the refit compare like with like, with nothing to correct.
    """
    config = replace(DEFAULT, latent=replace(DEFAULT.latent, person_effect_sigma=0.0), missing_rate=0.0)
    return generate(REFIT_ROWS, seed=12, config=config), config


def _any(answers: pd.Series) -> pd.Series:
    """Pain in the last 12 months (occasional or frequent); missing answers stay missing."""
    return answers.isin(("occasional", "frequent")).where(answers.notna())


def _fitted_log_odds(design: pd.DataFrame, outcome: pd.Series) -> pd.Series:
    model = LogisticRegression(C=1e6, solver="newton-cholesky", max_iter=200).fit(design, outcome)
    return pd.Series(model.coef_[0], index=design.columns)


def _crude_odds_ratio(exposure: pd.Series, outcome: pd.Series) -> float:
    table = pd.crosstab(exposure.astype(bool), outcome.astype(bool))
    return table.loc[True, True] * table.loc[False, False] / (table.loc[True, False] * table.loc[False, True])


# 3.6.1: refits recover every ln OR -------------------------------------------------------------------------

@pytest.mark.slow
def test_refit_recovers_every_feature_to_latent_log_odds_ratio(without_person_effect):
    population, config = without_person_effect
    expected = latent_log_odds(config)
    design = design_terms(population.questionnaire, population.truth["true_daily_steps"].to_numpy(), config)
    # meets_msa_guideline is balanced + unbalanced lifting exactly (the contract has no MSA answer), so it is
    # not identifiable on its own: fit without it and expect the lifting columns to carry the sums.
    identifiable = expected.drop(index="meets_msa_guideline")
    for lifting in ("balanced_lifting", "unbalanced_lifting"):
        identifiable.loc[lifting] += expected.loc["meets_msa_guideline"]
    for latent in LATENTS:
        fitted = _fitted_log_odds(design[identifiable.index], population.truth[f"pattern_{latent}"])
        error = (fitted - identifiable[latent]).abs()
        assert error.max() <= OR_TOLERANCE, f"{latent}: {error.sort_values().tail(3).to_dict()}"


@pytest.mark.slow
@pytest.mark.parametrize("table", ["pain", "clinical_signs"])
def test_refit_recovers_every_latent_to_outcome_and_direct_log_odds_ratio(without_person_effect, table):
    population, config = without_person_effect
    design = design_terms(population.questionnaire, population.truth["true_daily_steps"].to_numpy(), config)
    for name, model in getattr(config, table).items():
        outcome = (_any(population.questionnaire[name]) if table == "pain"
                   else population.truth[f"sign_{name}"])
        columns = pd.concat([population.truth[[f"pattern_{k}" for k in model.latent_odds_ratios]]
                             .set_axis(list(model.latent_odds_ratios), axis=1),
                             design[list(model.direct_odds_ratios)]], axis=1)
        expected = pd.Series({**model.latent_odds_ratios, **model.direct_odds_ratios}).map(np.log)
        error = (_fitted_log_odds(columns, outcome.astype(int)) - expected).abs()
        assert error.max() <= OR_TOLERANCE, f"{name}: {error.to_dict()}"


@pytest.mark.slow
def test_posture_report_follows_the_postural_patterns(without_person_effect):
    population, config = without_person_effect
    poor = population.questionnaire["posture_self_report"] == "poor"
    has_pattern = population.truth[[f"pattern_{k}" for k in config.posture.pattern_latents]].any(axis=1)
    assert poor[population.truth["pattern_U"] == 1].mean() == pytest.approx(config.posture.poor_with_pattern, abs=0.01)
    assert poor[~has_pattern].mean() == pytest.approx(config.posture.poor_without_pattern, abs=0.01)


# 3.6.2 and 3.4: prevalences in their target ranges ----------------------------------------------------------

# Ranges the default population must hit: the section 3.4 and table 3.3 targets its numbers were tuned to.
LATENT_PREVALENCE = {"U": (0.25, 0.40), "Lc": (0.12, 0.30), "P": (0.30, 0.50), "A": (0.10, 0.20)}
UPPER_CROSSED_AMONG_DESK = (0.35, 0.50)
AGONIST_ANTAGONIST_AMONG_LIFTERS = (0.25, 0.40)
IMBALANCE_ANY = (0.45, 0.60)
# Outcome share (pain: occasional or frequent; posture: poor) for "all" and per main occupation.
OUTCOME_RANGES = {
    # table 3.3: office 40-50% (E6, E7), else the general 20-30%; "standing" pools teachers (~47%, E12) with
    # service work, so it is widened to 35% (assumption). "all" is the occupation-weighted mix (derived).
    "neck_pain": {"all": (0.30, 0.42), "desk": (0.40, 0.50), "standing": (0.20, 0.35), "manual": (0.20, 0.30)},
    # table 3.3: office 45-56% (E8, E9), teachers ~47% (E12, widened to 40-55%); manual = general 30-40% x
    # lifting OR 1.7 (E24), widened to 58% for its Lc, P and BMI paths (assumption). "all": the weighted mix.
    "back_pain": {"all": (0.43, 0.55), "desk": (0.45, 0.56), "standing": (0.40, 0.55), "manual": (0.42, 0.58)},
    # table 3.3 gives lifters only (below); E8, E11, E12 report 33-50% in workers: assumption.
    "shoulder_pain": {"all": (0.20, 0.40)},
    # derived: 0.25 + 0.35 x P(U or Lc), with P(U or Lc) 25-55% overall and 15-62% within an occupation.
    "posture_poor": {"all": (0.33, 0.45), "desk": (0.30, 0.47), "standing": (0.30, 0.47), "manual": (0.30, 0.47)},
    "rounded_shoulders": {"all": (0.45, 0.65)},  # table 3.3
    "forward_head": {"all": (0.30, 0.60)},  # table 3.3
    "excessive_pelvic_tilt": {"all": (0.15, 0.25)},  # table 3.3
    "tight_hamstrings": {"all": (0.30, 0.50)},  # table 3.3
}
# An outcome without its own per-occupation range must hit its "all" range in each of these (section 3.5).
MAIN_OCCUPATIONS = ("desk", "standing", "manual")
SHOULDER_PAIN_AMONG_LIFTERS = (0.25, 0.40)  # table 3.3


@pytest.mark.slow
def test_latent_prevalences_hit_section_3_4(population):
    truth = population.truth
    desk = population.questionnaire["occupation"] == "desk"
    shares = {**{k: truth[f"pattern_{k}"].mean() for k in LATENTS},
              "U among desk workers": truth.loc[desk, "pattern_U"].mean(), "any": truth["imbalance"].mean()}
    ranges = {**LATENT_PREVALENCE, "U among desk workers": UPPER_CROSSED_AMONG_DESK, "any": IMBALANCE_ANY}
    misses = {name: (round(shares[name], 3), ranges[name]) for name in ranges
              if not ranges[name][0] <= shares[name] <= ranges[name][1]}
    assert not misses


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "Infeasible under table 3.2: lifting ORs (2.5 x 0.9 unbalanced, 0.8 x 0.9 balanced, half each) put lifters "
    "only ~1.3x above non-lifters, so A >= 25% among lifters needs A > 20% overall and any-imbalance > 60%. "
    "The intercepts keep A overall and any-imbalance in range; see docs/generative-model.md."))
def test_agonist_antagonist_among_lifters_hits_section_3_4(population):
    low, high = AGONIST_ANTAGONIST_AMONG_LIFTERS
    lifters = population.questionnaire["strength_training"].isin(("balanced", "unbalanced"))
    assert low <= population.truth.loc[lifters, "pattern_A"].mean() <= high


@pytest.mark.slow
def test_agonist_antagonist_is_higher_among_lifters(population):
    strength = population.questionnaire["strength_training"]
    a_rate = population.truth.groupby(strength)["pattern_A"].mean()
    assert a_rate["unbalanced"] > a_rate["none"] > a_rate["balanced"]


@pytest.mark.slow
def test_pain_posture_and_sign_rates_hit_their_ranges_overall_and_per_main_occupation(population):
    answers, truth = population.questionnaire, population.truth
    outcome = {"neck_pain": _any(answers["neck_pain"]), "back_pain": _any(answers["back_pain"]),
               "shoulder_pain": _any(answers["shoulder_pain"]),
               "posture_poor": (answers["posture_self_report"] == "poor").where(answers["posture_self_report"].notna()),
               **{name: truth[f"sign_{name}"] for name in DEFAULT.clinical_signs}}
    misses = {}
    for name, ranges in OUTCOME_RANGES.items():
        for group in ("all", *MAIN_OCCUPATIONS):
            rows = answers["occupation"] == group if group != "all" else slice(None)
            low, high = ranges.get(group, ranges["all"])
            rate = outcome[name][rows].mean()
            if not low <= rate <= high:
                misses[f"{name} / {group}"] = (round(rate, 3), (low, high))
    lifters = answers["strength_training"].isin(("balanced", "unbalanced"))
    low, high = SHOULDER_PAIN_AMONG_LIFTERS
    assert low <= outcome["shoulder_pain"][lifters].mean() <= high
    assert not misses


# 3.6.3: weak links stay weak -------------------------------------------------------------------------------

@pytest.mark.slow
def test_weak_evidence_links_to_low_back_pain_stay_weak(population):
    answers, truth = population.questionnaire, population.truth
    back = _any(answers["back_pain"])
    answered = back.notna() & answers["sitting_hours_per_day"].notna()
    exposures = {"excessive pelvic tilt": truth["sign_excessive_pelvic_tilt"],
                 "tight hamstrings": truth["sign_tight_hamstrings"],
                 "sitting > 8 h": answers["sitting_hours_per_day"] > DEFAULT.terms.long_sitting_hours}
    odds_ratios = {name: _crude_odds_ratio(x[answered], back[answered]) for name, x in exposures.items()}
    assert all(value <= 1.5 for value in odds_ratios.values()), odds_ratios


@pytest.mark.slow
def test_stretching_has_no_direct_effect_on_pain(without_person_effect):
    population, config = without_person_effect
    stretching_terms = {term for term, spec in config.latent.terms.items() if spec.factor == "stretching"}
    assert not stretching_terms & {term for model in config.pain.values() for term in model.direct_odds_ratios}
    design = design_terms(population.questionnaire, population.truth["true_daily_steps"].to_numpy(), config)
    for name, model in config.pain.items():
        columns = pd.concat([population.truth[[f"pattern_{k}" for k in model.latent_odds_ratios]],
                             design[[*model.direct_odds_ratios, "stretching_3_plus_days"]]], axis=1)
        fitted = _fitted_log_odds(columns, _any(population.questionnaire[name]).astype(int))
        assert abs(fitted["stretching_3_plus_days"]) < OR_TOLERANCE, name


# 3.6.4: every OR is a config value --------------------------------------------------------------------------

def _odds_ratio_paths(config: PopulationConfig) -> list[tuple[str, str, str, str]]:
    """(table, row, kind, column) of every OR in the config."""
    paths = [("latent", term, "odds_ratios", latent)
             for term, spec in config.latent.terms.items() for latent in spec.odds_ratios]
    for table in ("pain", "clinical_signs"):
        for name, model in getattr(config, table).items():
            paths += [(table, name, kind, column) for kind in ("latent_odds_ratios", "direct_odds_ratios")
                      for column in getattr(model, kind)]
    return paths


def _with_odds_ratio_scaled(config: PopulationConfig, path: tuple[str, str, str, str], scale: float):
    table, row, kind, column = path
    rows = dict(config.latent.terms if table == "latent" else getattr(config, table))
    odds_ratios = dict(getattr(rows[row], kind))
    odds_ratios[column] *= scale
    rows[row] = replace(rows[row], **{kind: odds_ratios})
    if table == "latent":
        return replace(config, latent=replace(config.latent, terms=rows))
    return replace(config, **{table: rows})


@pytest.fixture(scope="module")
def small_population() -> Population:
    return generate(2_000, seed=5)


@pytest.mark.parametrize("path", _odds_ratio_paths(DEFAULT), ids=lambda path: f"{path[0]}:{path[1]}:{path[3]}")
def test_every_odds_ratio_is_read_from_the_config(small_population, path):
    changed = generate(2_000, seed=5, config=_with_odds_ratio_scaled(DEFAULT, path, 3.0))
    assert not changed.truth.equals(small_population.truth)


# Reproducibility, contract and truth ----------------------------------------------------------------------

def test_same_seed_gives_identical_output_and_another_seed_does_not(small_population):
    again, other = generate(2_000, seed=5), generate(2_000, seed=6)
    for table in ("questionnaire", "activity", "truth"):
        pd.testing.assert_frame_equal(getattr(again, table), getattr(small_population, table))
        assert not getattr(other, table).equals(getattr(small_population, table))


@pytest.mark.slow
def test_questionnaire_passes_the_contract(population, small_population):
    answers = population.questionnaire
    expected = tuple(c for c in contract.QUESTIONNAIRE_COLUMNS if not c.startswith("survey_"))
    assert tuple(answers.columns) == expected
    assert contract.LABEL not in small_population.questionnaire.columns
    for spec in contract.QUESTIONNAIRE:
        if spec.name not in answers:
            continue
        present = answers[spec.name].dropna()
        assert len(present) == len(answers) or not spec.required, spec.name
        if spec.type in ("integer", "number"):
            assert present.between(spec.low, spec.high if spec.high is not None else np.inf).all(), spec.name
        if spec.type == "category":
            assert present.isin(spec.allowed).all(), spec.name
        if spec.type == "boolean":
            assert present.isin(contract.TRUE_SPELLINGS + contract.FALSE_SPELLINGS).all(), spec.name
    assert answers["respondent_id"].str.fullmatch(contract.RESPONDENT_ID_PATTERN).all()
    assert not answers.duplicated(list(contract.QUESTIONNAIRE_KEY)).any()
    submitted = pd.to_datetime(answers["submitted_at"], format="ISO8601")
    assert (submitted.dt.year == 2025).all() and (submitted <= pd.Timestamp.now()).all()
    types = answers["exercise_types"].dropna().str.split(contract.EXERCISE_SEPARATORS, regex=True)
    assert types.explode().isin(contract.EXERCISE_TYPES).all()
    assert not types[types.map(len) > 1].map(lambda chosen: "none" in chosen).any()
    assert not (answers["sitting_hours_per_day"] + answers["standing_hours_per_day"] > 24).any()


@pytest.mark.slow
def test_optional_answers_are_missing_at_the_configured_rate_and_required_never(population):
    missing = population.questionnaire.isna().mean()
    for spec in contract.QUESTIONNAIRE:
        if spec.name in missing and spec.name != contract.LABEL:
            expected = 0.0 if spec.required else DEFAULT.missing_rate
            assert missing[spec.name] == pytest.approx(expected, abs=0.003), spec.name


@pytest.mark.slow
def test_answers_are_consistent_with_each_other(population):
    answers = population.questionnaire.dropna()
    lifts = answers["exercise_types"].str.contains("weightlifting")
    assert (lifts == (answers["strength_training"] != "none")).all()
    assert ((answers["exercise_types"] == "none") == (answers["exercise_days_per_week"] == 0)).all()
    no_stretching = answers["stretching_days_per_week"] == 0
    assert (answers.loc[no_stretching, ["stretches_before_exercise", "stretches_after_exercise"]] == "no").all().all()
    assert (population.questionnaire[contract.LABEL] == population.truth["imbalance"].map({1: "yes", 0: "no"})).all()


@pytest.mark.slow
def test_activity_passes_the_contract_around_each_submission(population):
    activity, answers = population.activity, population.questionnaire
    assert tuple(activity.columns) == contract.ACTIVITY_COLUMNS
    counts = activity.drop(columns=["respondent_id", "date"])
    assert (counts >= 0).all().all() and all(pd.api.types.is_integer_dtype(t) for t in counts.dtypes)
    minutes = ["sedentary_minutes", "lightly_active_minutes", "fairly_active_minutes", "very_active_minutes"]
    assert (activity[minutes].sum(axis=1) <= contract.MINUTES_PER_DAY).all()
    assert not activity.duplicated(list(contract.ACTIVITY_KEY)).any()
    wearers = activity["respondent_id"].nunique() / len(answers)
    assert wearers == pytest.approx(DEFAULT.wearable.share_with_device, abs=0.01)
    assert activity.groupby("respondent_id").size().between(*DEFAULT.wearable.days_range).all()
    non_wear = contract.is_non_wear_day(activity["steps"], activity["sedentary_minutes"]).mean()
    assert non_wear == pytest.approx(DEFAULT.wearable.non_wear_day_rate, abs=0.005)
    submitted = answers.set_index("respondent_id")["submitted_at"].str.slice(0, 10)
    after = activity["date"] > activity["respondent_id"].map(submitted)
    assert 0 < after.mean() < 0.1  # some days after submission, for point-in-time features to drop


@pytest.mark.slow
def test_true_risk_is_calibrated_and_beats_behaviour_risk(population):
    truth = population.truth
    for risk in ("true_risk", "behaviour_risk"):  # both are exact posteriors, so each decile is calibrated
        decile = pd.qcut(truth[risk], 10, labels=False)
        gap = (truth.groupby(decile)["imbalance"].mean() - truth.groupby(decile)[risk].mean()).abs()
        assert gap.max() < 0.02, risk
    by_device = truth.groupby("has_wearable")[["imbalance", "true_risk"]].mean()
    assert (by_device["imbalance"] - by_device["true_risk"]).abs().max() < 0.01  # calibrated in both groups
    auc = {risk: roc_auc_score(truth["imbalance"], truth[risk]) for risk in ("true_risk", "behaviour_risk")}
    for has_wearable, group in truth.groupby("has_wearable"):
        auc[f"true_risk, has_wearable={has_wearable}"] = roc_auc_score(group["imbalance"], group["true_risk"])
    print(f"AUC on {len(truth):,} rows: {auc}")
    assert auc["true_risk"] > auc["behaviour_risk"] + 0.02


# true_risk is the ceiling given what a model sees: the step band only for people with a wearable -----------

@pytest.fixture(scope="module")
def complete_population() -> Population:
    """No blanked answers, so the questionnaire holds exactly the answers the truth was computed from."""
    return generate(5_000, seed=13, config=replace(DEFAULT, missing_rate=0.0))


def test_only_the_binary_low_steps_term_depends_on_the_step_level(complete_population):
    answers = complete_population.questionnaire
    few, many = (design_terms(answers, np.full(len(answers), steps), DEFAULT) for steps in (0, 10**6))
    changed = (few != many).any()
    assert changed[changed].index.tolist() == [STEPS_TERM]
    assert set(few[STEPS_TERM]) == {1.0} and set(many[STEPS_TERM]) == {0.0}


@pytest.mark.slow
def test_has_wearable_marks_exactly_the_people_with_activity_rows(population):
    truth = population.truth
    assert truth["has_wearable"].dtype == bool
    with_rows = truth["respondent_id"].isin(population.activity["respondent_id"].unique())
    assert (truth["has_wearable"] == with_rows).all()


@pytest.mark.slow
def test_step_band_probability_matches_the_sampled_step_levels(population):
    """P(low_steps | answers) against the sampled levels, on people whose step-relevant answers are present."""
    answers, truth = population.questionnaire, population.truth
    present = answers[["occupation", "exercise_types", "age", "height_cm", "weight_kg"]].notna().all(axis=1)
    answers, steps = answers[present], truth.loc[present, "true_daily_steps"]
    residual = (np.log(steps) - np.log(DEFAULT.steps.median) - log_steps_shift(answers, DEFAULT)) / DEFAULT.steps.log_sigma
    assert abs(residual.mean()) < 0.02 and residual.std() == pytest.approx(1.0, abs=0.02)
    predicted = pd.Series(low_steps_probability(answers, DEFAULT), index=answers.index)
    low = steps < DEFAULT.terms.low_steps_below
    decile = pd.qcut(predicted, 10, labels=False)
    assert (low.groupby(decile).mean() - predicted.groupby(decile).mean()).abs().max() < 0.02


def test_true_risk_with_a_wearable_is_the_complete_information_formula(complete_population):
    answers, truth = complete_population.questionnaire, complete_population.truth
    terms = design_terms(answers, truth["true_daily_steps"].to_numpy(), DEFAULT)
    complete = compute_truth(terms, answers, DEFAULT, has_wearable=np.ones(len(answers), bool))["true_risk"]
    worn = truth["has_wearable"]
    assert 0.35 < worn.mean() < 0.45
    assert (truth.loc[worn, "true_risk"] == complete[worn]).all()  # bit for bit
    assert (truth.loc[~worn, "true_risk"] - complete[~worn]).abs().max() > 0.01  # the others are marginalised


def _brute_force_risk(person: pd.DataFrame, config: PopulationConfig) -> float:
    """P(imbalance | one person's answers) without the step level, by direct enumeration."""
    joint = _brute_force_joint(person, config)
    return 1 - joint[0] / joint.sum()  # pattern 0 is z = (0, 0, 0, 0)


def _brute_force_joint(person: pd.DataFrame, config: PopulationConfig, band: int | None = None) -> np.ndarray:
    """P(z, answers, b) for the 16 patterns z of one person with complete behaviour answers.

    Sums over the step band b (P(b | x) from the lognormal), or keeps only the observed `band`, integrates u
    by adaptive quadrature, and shares no code with the truth except the design terms (checked by the refits).
    """
    answers = person.iloc[0]
    occupation = config.occupations.profiles[answers["occupation"]]
    exercise_types = set(re.split(r"[;|]", answers["exercise_types"]))
    bmi = answers["weight_kg"] / (answers["height_cm"] / 100) ** 2
    shift = (occupation.log_steps_shift
             + sum(s for kind, s in config.steps.shift_by_exercise.items() if kind in exercise_types)
             + config.steps.shift_per_decade_of_age * (answers["age"] - config.terms.age_reference_years) / 10
             + config.steps.shift_if_obese * (bmi >= config.terms.obese_bmi))
    # integer step level < 5,000  <=>  level <= 4,999  <=>  median e^{shift + e} < 4,999.5 before rounding
    p_low = norm.cdf((np.log(4_999.5 / config.steps.median) - shift) / config.steps.log_sigma)
    sigma = config.latent.person_effect_sigma
    joint = np.zeros(2 ** len(LATENTS))
    for low, p_band in ((1, p_low), (0, 1 - p_low)):
        if band is not None and low != band:
            continue
        x = design_terms(person, np.array([0 if low else 10**6]), config).iloc[0]
        logit = {k: config.latent.intercepts[k] + sum(np.log(term.odds_ratios.get(k, 1.0)) * x[name]
                                                      for name, term in config.latent.terms.items())
                 for k in LATENTS}
        for index, z in enumerate(product((0, 1), repeat=len(LATENTS))):
            pattern = dict(zip(LATENTS, z))

            def density(u: float) -> float:
                p = {k: expit(logit[k] + u) for k in LATENTS}
                return np.prod([p[k] if pattern[k] else 1 - p[k] for k in LATENTS]) * norm.pdf(u, 0, sigma)

            p_pattern = quad(density, -10 * sigma, 10 * sigma, epsabs=1e-13, epsrel=1e-11)[0]
            postural = any(pattern[k] for k in config.posture.pattern_latents)
            poor = config.posture.poor_with_pattern if postural else config.posture.poor_without_pattern
            fair = (1 - poor) * (config.posture.fair_share_of_rest_with_pattern if postural
                                 else config.posture.fair_share_of_rest_without_pattern)
            # A blank answer could have been any level: it is summed out (a factor of 1).
            p_answers = {"good": 1 - poor - fair, "fair": fair, "poor": poor}.get(answers["posture_self_report"], 1.0)
            for name, model in config.pain.items():
                eta = (model.intercept + sum(np.log(o) * pattern[k] for k, o in model.latent_odds_ratios.items())
                       + sum(np.log(o) * x[t] for t, o in model.direct_odds_ratios.items()))
                any_pain, frequent = expit(eta), expit(eta - model.frequent_logit_offset)
                p_answers *= {"none": 1 - any_pain, "occasional": any_pain - frequent,
                              "frequent": frequent}.get(answers[name], 1.0)
            joint[index] += p_band * p_pattern * p_answers
    return joint


@pytest.mark.slow
def test_true_risk_without_a_wearable_matches_a_brute_force_mixture_over_the_step_band(complete_population):
    answers, truth = complete_population.questionnaire, complete_population.truth
    p_low = low_steps_probability(answers, DEFAULT)
    unsure = ~truth["has_wearable"] & (p_low > 0.2) & (p_low < 0.8)  # rows where the mixture matters most
    rows = [*truth.index[unsure][:6], *truth.index[~truth["has_wearable"] & ~unsure][:2]]
    terms = design_terms(answers.loc[rows], truth.loc[rows, "true_daily_steps"].to_numpy(), DEFAULT)
    complete = compute_truth(terms, answers.loc[rows], DEFAULT, np.ones(len(rows), bool))["true_risk"]
    brute = pd.Series({row: _brute_force_risk(answers.loc[[row]], DEFAULT) for row in rows})
    assert np.allclose(truth.loc[rows, "true_risk"], brute, rtol=0, atol=1e-9), (truth.loc[rows, "true_risk"], brute)
    assert (brute - complete).abs().max() > 0.005  # the step band really was marginalised


@pytest.mark.slow
def test_a_blank_posture_or_pain_answer_is_summed_out_of_the_true_risk(population):
    """The ceiling knows what a model knows: a blanked symptom answer is marginalised, not peeked at."""
    answers, truth = population.questionnaire, population.truth
    symptoms = ["posture_self_report", *contract.PAIN_COLUMNS]
    others = [c for c in answers.columns if c not in (*symptoms, contract.LABEL)]
    only_symptoms_blank = answers[symptoms].isna().any(axis=1) & answers[others].notna().all(axis=1)
    rows = truth.index[only_symptoms_blank & ~truth["has_wearable"]][:4]
    assert len(rows) == 4
    brute = pd.Series({row: _brute_force_risk(answers.loc[[row]], DEFAULT) for row in rows})
    assert np.allclose(truth.loc[rows, "true_risk"], brute, rtol=0, atol=1e-9), (truth.loc[rows, "true_risk"], brute)


# A blank behaviour answer is summed out of true_risk too (Monte Carlo over the generator's chain) ------------

def test_each_answer_probability_matches_its_sampler():
    """P(answer | parents) used to weight the draws is the distribution the generator samples from."""
    rng = np.random.default_rng(0)
    n = 200_000
    support = np.arange(0, 24.5, 0.5)
    desk = list(DEFAULT.occupations.profiles).index("desk")
    cases = {"sitting": lambda k: synthetic._sitting_distribution(np.full(k, desk), DEFAULT),  # k people alike
             "standing": lambda k: synthetic._standing_and_screen_distributions(
                 np.full(k, desk), np.full(k, 11.5), DEFAULT)[0],
             "screen": lambda k: synthetic._standing_and_screen_distributions(
                 np.full(k, desk), np.full(k, 11.5), DEFAULT)[1]}
    for name, distribution in cases.items():  # sitting 11.5 h caps standing at 6.5 h, so the cap is exercised
        probability = distribution(len(support)).probability(support)
        assert probability.sum() == pytest.approx(1.0, abs=1e-12), name
        drawn = pd.Series(distribution(n).draw(rng))
        frequency = drawn.value_counts(normalize=True).reindex(support, fill_value=0.0).to_numpy()
        assert np.abs(frequency - probability).max() < 0.005, name
    height = np.full(n, 165.0)
    weight = pd.Series(synthetic._sample_weight(height, DEFAULT, rng))
    support = np.round(np.arange(30.0, 300.05, 0.1), 1)
    probability = synthetic._weight_probability(support, np.full(len(support), 165.0), DEFAULT)
    assert probability.sum() == pytest.approx(1.0, abs=1e-9)
    for kg in (60.0, 78.4, 95.1):  # single 0.1-kg cells
        assert (weight == kg).mean() == pytest.approx(probability[np.searchsorted(support, kg)], abs=0.0005)
    for exerciser in (False, True):
        days = synthetic._sample_stretching_days(np.full(n, exerciser), DEFAULT, rng)
        probability = synthetic._stretching_days_probability(np.arange(8), np.full(8, exerciser), DEFAULT)
        assert probability.sum() == pytest.approx(1.0)
        assert np.abs(np.bincount(days, minlength=8) / n - probability).max() < 0.005


@pytest.mark.slow
def test_exercise_days_probability_matches_the_generated_days(population):
    answers = population.questionnaire.dropna(subset=["exercise_types", "exercise_days_per_week"])
    for lifts in (False, True):
        group = answers[answers["exercise_types"].str.contains("weightlifting") == lifts]
        exerciser = (group["exercise_types"] != "none").to_numpy()
        for is_exerciser in (False, True):
            days = group.loc[exerciser == is_exerciser, "exercise_days_per_week"].to_numpy(int)
            if not len(days):
                continue
            probability = synthetic._exercise_days_probability(np.arange(8), np.full(8, is_exerciser),
                                                               np.full(8, lifts), DEFAULT)
            assert probability.sum() == pytest.approx(1.0)
            assert np.abs(np.bincount(days, minlength=8) / len(days) - probability).max() < 0.01


def test_completions_of_nothing_leave_the_true_risk_unchanged(complete_population):
    """Draws that change no answer give back the closed form, whatever their weights (wearers included)."""
    answers, truth = complete_population.questionnaire, complete_population.truth
    assert next(draw_blank_causes(answers, DEFAULT, np.random.default_rng(0)), None) is None  # nothing blank
    terms = design_terms(answers, truth["true_daily_steps"].to_numpy(), DEFAULT)
    rows = np.arange(0, 600, 3)
    owner = np.repeat(rows, 4)
    copies = Completions(answers.iloc[owner].reset_index(drop=True), owner,
                         np.random.default_rng(1).normal(0, 3, len(owner)))
    redone = compute_truth(terms, answers, DEFAULT, truth["has_wearable"].to_numpy(), [copies])["true_risk"]
    assert np.allclose(redone, truth["true_risk"], rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def one_blank_each() -> tuple[Population, dict[str, pd.Index]]:
    """A small population with many blanks, and per blankable cause the rows where it is the only blank."""
    population = generate(6_000, seed=21, config=replace(DEFAULT, missing_rate=0.1))
    answers = population.questionnaire
    optional = [c for c in answers.columns if not contract.QUESTIONNAIRE[
        contract.QUESTIONNAIRE_COLUMNS.index(c)].required and c not in (contract.LABEL, *synthetic.SYMPTOM_ANSWERS)]
    only = {column: answers.index[answers[column].isna() & (answers[optional].isna().sum(axis=1) == 1)]
            for column in BLANKABLE_CAUSES}
    return population, only


def _half_hour_mass(value: float, mean: float, sd: float, low: float, high: float, floor: bool = False) -> float:
    """P(an hours answer = value) for clip(N(mean, sd), low, high) rounded (or floored) to the half hour."""
    start, end = (value, value + 0.5) if floor else (value - 0.25, value + 0.25)
    lower = -np.inf if start <= low else start
    upper = np.inf if end > high else end
    return norm.cdf(upper, mean, sd) - norm.cdf(lower, mean, sd)


def _enumerated_risk(person: pd.DataFrame, column: str, config: PopulationConfig, band: int | None) -> float:
    """P(imbalance | answers with `column` blank) = sum_v P(v | other answers) P(z, s, b | x with v) / ...

    P(v | other answers) is written out from docs/generative-model.md, apart from the generator's code.
    """
    row = person.iloc[0]
    occ = config.occupations
    if column == "occupation":
        band_index = next(i for i, b in enumerate(config.demographics.age_bands) if b.low <= row["age"] <= b.high)
        student, retired = occ.student_share_by_age_band[band_index], occ.retired_share_by_age_band[band_index]
        workers = sum(p.share_of_workers for p in occ.profiles.values())
        options = {}
        for name, job in occ.profiles.items():
            prior = {"student": student, "retired": retired}.get(name, (1 - student - retired) * job.share_of_workers
                                                                   / workers)
            sitting = row["sitting_hours_per_day"]
            evidence = (_half_hour_mass(sitting, job.sitting_mean_h, job.sitting_sd_h, 0.5, 16)
                        * _half_hour_mass(row["standing_hours_per_day"], job.standing_mean_h, occ.standing_sd_h, 0,
                                          24 - occ.min_lying_hours - sitting, floor=True)
                        * _half_hour_mass(row["screen_hours_per_day"], job.screen_mean_h + occ.screen_per_sitting_hour
                                          * (sitting - job.sitting_mean_h), occ.screen_sd_h, 0, 18))
            options[name] = prior * evidence
    elif column == "movement_breaks_per_day":  # only "breaks >= sitting hours" matters
        sitting = row["sitting_hours_per_day"]
        needed = int(np.ceil(sitting))
        rate = lognorm(occ.breaks_per_sitting_hour_log_sigma, scale=occ.breaks_per_sitting_hour_median)
        hourly = quad(lambda r: poisson.sf(needed - 1, sitting * r) * rate.pdf(r), 0, np.inf)[0]
        options = {needed: hourly, 0: 1 - hourly}
    elif column == "strength_training":
        lifts = "weightlifting" in row["exercise_types"]
        share = config.exercise.balanced_share_of_lifters
        options = {"balanced": share, "unbalanced": 1 - share} if lifts else {"none": 1.0}
    elif column == "stretching_days_per_week":
        st = config.stretching
        exerciser = row["exercise_types"] != "none"
        shares = st.day_band_shares_exercisers if exerciser else st.day_band_shares_non_exercisers
        options = {}
        for days in range(8):
            band_of_day = 0 if days == 0 else 1 if days <= 2 else 2
            p = shares[band_of_day] / (1, 2, 5)[band_of_day]
            for answer, share in ((row["stretches_before_exercise"], st.before_exercise_share),
                                  (row["stretches_after_exercise"], st.after_exercise_share)):
                can = exerciser and days > 0
                p *= (share if answer == "yes" else 1 - share) if can else float(answer == "no")
            options[3 if days >= 3 else 0] = options.get(3 if days >= 3 else 0, 0.0) + p  # the design reads >= 3
    else:
        raise ValueError(column)
    total = sum(options.values())
    joint = sum(p / total * _brute_force_joint(person.assign(**{column: value}), config, band)
                for value, p in options.items() if p > 0)
    return 1 - joint[0] / joint.sum()


@pytest.mark.slow
@pytest.mark.parametrize("column", ["occupation", "movement_breaks_per_day", "strength_training",
                                    "stretching_days_per_week"])
def test_a_blank_behaviour_answer_is_summed_out_of_the_true_risk(one_blank_each, column):
    """Many draws of the one blank answer match a direct sum over its values, with and without a wearable."""
    population, only = one_blank_each
    answers, truth = population.questionnaire, population.truth
    rows = [*truth.index[only[column]][~truth.loc[only[column], "has_wearable"]][:1],
            *truth.index[only[column]][truth.loc[only[column], "has_wearable"]][:1]]
    assert len(rows) == 2
    many = replace(DEFAULT, blank_answer_draws=20_000)
    terms = design_terms(answers.loc[rows], truth.loc[rows, "true_daily_steps"].to_numpy(), DEFAULT)
    has_wearable = truth.loc[rows, "has_wearable"].to_numpy()
    risk = compute_truth(terms, answers.loc[rows], many, has_wearable,
                         draw_blank_causes(answers.loc[rows], many, np.random.default_rng(3)))["true_risk"]
    expected = pd.Series({row: _enumerated_risk(answers.loc[[row]], column, DEFAULT,
                                                int(terms.loc[row, STEPS_TERM]) if wearer else None)
                          for row, wearer in zip(rows, has_wearable)})
    assert np.allclose(risk, expected, rtol=0, atol=0.003), (risk.to_dict(), expected.to_dict())
    assert np.allclose(truth.loc[rows, "true_risk"], expected, rtol=0, atol=0.03)  # the default 64 draws


@pytest.mark.slow
def test_only_rows_with_a_blank_behaviour_answer_differ_from_the_peeking_risk():
    """true_risk sums out exactly the blanked answers the design reads; elsewhere it is the closed form."""
    population = generate(20_000, seed=5)
    answers, truth = population.questionnaire, population.truth
    complete = generate(20_000, seed=5, config=replace(DEFAULT, missing_rate=0.0)).questionnaire  # same draws
    terms = design_terms(complete, truth["true_daily_steps"].to_numpy(), DEFAULT)
    peeking = compute_truth(terms, complete.assign(**{c: answers[c] for c in synthetic.SYMPTOM_ANSWERS}), DEFAULT,
                            truth["has_wearable"].to_numpy())["true_risk"]
    blank = answers[list(BLANKABLE_CAUSES)].isna().any(axis=1)
    gap = (truth["true_risk"] - peeking).abs()
    assert gap[~blank].max() < 1e-12 and gap[blank].mean() > 0.005
    assert 0.15 < blank.mean() < 0.25


@pytest.mark.slow
def test_top_factors_are_model_factors_and_often_clear(population):
    truth = population.truth
    assert truth["true_top_factor"].isin(FACTORS).all()
    clear = truth["true_top_factor_clear"]
    rule = DEFAULT.top_factor
    assert (truth.loc[clear, "top_factor_delta"] > rule.min_delta).all()
    print(f"clear top factor: {clear.mean():.1%}; top factors: "
          f"{truth['true_top_factor'].value_counts(normalize=True).round(3).to_dict()}")
    assert clear.mean() > 0.30


def test_write_produces_three_csv_files(small_population, tmp_path):
    paths = write(small_population, tmp_path / "synthetic")
    assert set(paths) == {"questionnaire", "activity", "truth"}
    for name, path in paths.items():
        assert len(pd.read_csv(path)) == len(getattr(small_population, name))
    assert list(pd.read_csv(paths["questionnaire"]).columns) == list(small_population.questionnaire.columns)
