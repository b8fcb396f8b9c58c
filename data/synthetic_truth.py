"""The model math of the synthetic population: design terms, linear predictors and the truth columns.

Sampling (data/synthetic.py) and the truth use the same functions here, so the truth is exact for
the process that generated the data. See docs/generative-model.md for the formulas.
"""

from __future__ import annotations

from itertools import product
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from balanceit.data.contract import EXERCISE_SEPARATORS, PAIN, POSTURE
from balanceit.data.synthetic_config import FACTORS, LATENTS, OutcomeModel, PopulationConfig

PATTERNS = np.array(list(product((0, 1), repeat=len(LATENTS))), dtype=float)  # the 16 latent patterns z
EXERCISE_FACTOR_TYPES = tuple(f.removeprefix("exercise_") for f in FACTORS if f.startswith("exercise_"))
CHUNK_ROWS = 100_000  # bounds the (rows x nodes x latents) arrays to ~64 MB
STEPS_TERM = "low_steps"  # the only design term that depends on the true step level (binary; tested)


def design_terms(answers: pd.DataFrame, true_daily_steps: np.ndarray, config: PopulationConfig) -> pd.DataFrame:
    """Every design term x_j of tables 3.2 and 3.3, from complete questionnaire answers (export format).

    Defined on the answers a user exports, so a refit on the questionnaire sees exactly the x that
    generated the latents. Steps are not a questionnaire answer: the person's true level is passed in.
    """
    cuts = config.terms
    occupations = config.occupations.profiles
    sitting = answers["sitting_hours_per_day"].to_numpy(float)
    occupation = level_index(answers["occupation"], list(occupations))
    exposure = np.array([p.exposure for p in occupations.values()])[occupation]
    strength = answers["strength_training"]
    bmi = body_mass_index(answers)
    hourly_breaks = answers["movement_breaks_per_day"].to_numpy(float) >= (
        cuts.hourly_breaks_per_sitting_hour * sitting)
    sex_shares = config.demographics.sex_shares
    female_share = sex_shares["female"] / (sex_shares["female"] + sex_shares["male"])

    columns = {
        "sitting_hours_over_reference": np.clip(sitting - cuts.sitting_reference_hours, 0,
                                                cuts.sitting_cap_hours - cuts.sitting_reference_hours),
        "long_sitting": sitting > cuts.long_sitting_hours,
        "desk_like_occupation": exposure == "desk_like",
        "standing_like_occupation": exposure == "standing_like",
        "manual_handling_occupation": np.array([p.manual_handling for p in occupations.values()])[occupation],
        "screen_hours": answers["screen_hours_per_day"],
        "hourly_breaks": hourly_breaks,
        "no_hourly_breaks": ~hourly_breaks,
        "low_steps": true_daily_steps < cuts.low_steps_below,
        **{f"exercise_{kind}": does_exercise(answers["exercise_types"], kind) for kind in EXERCISE_FACTOR_TYPES},
        "unbalanced_lifting": strength == "unbalanced",
        "balanced_lifting": strength == "balanced",
        "meets_msa_guideline": strength.isin(("balanced", "unbalanced")),
        "stretching_3_plus_days": answers["stretching_days_per_week"] >= cuts.stretching_min_days,
        "female": np.array([1.0, 0.0, female_share])[level_index(answers["sex"], ["female", "male"])],
        "age_decades": (answers["age"].to_numpy(float) - cuts.age_reference_years) / 10,
        "bmi_30_plus": bmi >= cuts.obese_bmi,
    }
    return pd.DataFrame({name: np.asarray(values, dtype=float) for name, values in columns.items()},
                        index=answers.index)


def does_exercise(exercise_types: pd.Series, kind: str) -> pd.Series:
    """Whether the multi-valued exercise answer lists `kind` (missing stays missing)."""
    pattern = rf"(?:^|{EXERCISE_SEPARATORS}){kind}(?:$|{EXERCISE_SEPARATORS})"
    return exercise_types.str.contains(pattern, regex=True)


def body_mass_index(answers: pd.DataFrame) -> np.ndarray:
    return answers["weight_kg"].to_numpy(float) / (answers["height_cm"].to_numpy(float) / 100) ** 2


def log_steps_shift(answers: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """shift(x) in ln(true steps) = ln(median) + shift(x) + N(0, log_sigma^2), from answers only.

    Occupation, exercise types, age and BMI are all questionnaire answers, so the step level's
    distribution given the answers is known exactly (used for sampling and for `low_steps_probability`).
    """
    steps = config.steps
    profiles = config.occupations.profiles
    shift = np.array([p.log_steps_shift for p in profiles.values()])[level_index(answers["occupation"], list(profiles))]
    for kind, kind_shift in steps.shift_by_exercise.items():
        shift = shift + kind_shift * does_exercise(answers["exercise_types"], kind).to_numpy(bool)
    shift = shift + steps.shift_per_decade_of_age * (
        answers["age"].to_numpy(float) - config.terms.age_reference_years) / 10
    return shift + steps.shift_if_obese * (body_mass_index(answers) >= config.terms.obese_bmi)


def low_steps_probability(answers: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """P(low_steps = 1 | answers): the step level is round(median e^{shift + e}), e ~ N(0, log_sigma^2).

    round(v) < cut  <=>  v < ceil(cut) - 0.5, so P = Phi((ln((ceil(cut) - 0.5) / median) - shift) / log_sigma).
    """
    steps = config.steps
    gap = np.log((np.ceil(config.terms.low_steps_below) - 0.5) / steps.median) - log_steps_shift(answers, config)
    if steps.log_sigma == 0:
        return (gap > 0).astype(float)
    return norm.cdf(gap / steps.log_sigma)


def level_index(answers: pd.Series, levels: Sequence[str]) -> np.ndarray:
    """Position of each answer in `levels`; -1 for anything else (so `table[index]` picks a default last)."""
    return pd.Index(levels).get_indexer(answers)


def latent_log_odds(config: PopulationConfig) -> pd.DataFrame:
    """ln OR of table 3.2 as a (term x latent) matrix; a missing entry is ln 1 = 0."""
    terms = config.latent.terms
    return pd.DataFrame([[np.log(terms[t].odds_ratios.get(k, 1.0)) for k in LATENTS] for t in terms],
                        index=list(terms), columns=list(LATENTS))


def latent_linear_predictor(terms: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """b0_k + sum_j ln(OR_jk) x_j for the four latents (rows x 4), before the person effect."""
    log_odds = latent_log_odds(config)
    intercepts = np.array([config.latent.intercepts[k] for k in LATENTS])
    return terms[log_odds.index].to_numpy() @ log_odds.to_numpy() + intercepts


def outcome_linear_predictor(model: OutcomeModel, terms: pd.DataFrame,
                             latents: dict[str, np.ndarray | float]) -> np.ndarray:
    """Table 3.3: intercept + latent paths + direct exposure paths."""
    eta = np.full(len(terms), model.intercept)
    for latent, odds_ratio in model.latent_odds_ratios.items():
        eta = eta + np.log(odds_ratio) * latents[latent]
    for term, odds_ratio in model.direct_odds_ratios.items():
        eta = eta + np.log(odds_ratio) * terms[term].to_numpy()
    return eta


def pain_level_probabilities(eta: np.ndarray, frequent_logit_offset: float) -> np.ndarray:
    """P(none, occasional, frequent) under the proportional-odds model (rows x 3)."""
    any_pain = expit(eta)
    frequent = expit(eta - frequent_logit_offset)
    return np.stack([1 - any_pain, any_pain - frequent, frequent], axis=1)


def posture_probabilities(has_pattern: np.ndarray | float, config: PopulationConfig) -> np.ndarray:
    """P(good, fair, poor) given whether the person has a postural pattern (section 3.1)."""
    model = config.posture
    has_pattern = np.atleast_1d(np.asarray(has_pattern, dtype=bool))
    poor = np.where(has_pattern, model.poor_with_pattern, model.poor_without_pattern)
    fair_share = np.where(has_pattern, model.fair_share_of_rest_with_pattern,
                          model.fair_share_of_rest_without_pattern)
    return np.stack([(1 - poor) * (1 - fair_share), (1 - poor) * fair_share, poor], axis=1)


def has_postural_pattern(latents: dict[str, np.ndarray | float], config: PopulationConfig) -> np.ndarray | bool:
    """Whether any of the latents that drive the posture answer (U or Lc) is present."""
    return np.any([np.asarray(latents[k], dtype=bool) for k in config.posture.pattern_latents], axis=0)


def compute_truth(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig,
                  has_wearable: np.ndarray) -> pd.DataFrame:
    """Exact truth per person, from the answers and the design terms.

    `answers` hold every behaviour and personal answer complete, and the posture and pain answers as
    the questionnaire shows them (blank where blanked: a blank symptom is marginalised).
    true_risk = P(imbalance | what a model sees) = 1 - P(z = 0, s | x_obs) / sum_z P(z, s | x_obs), where
    the step band b (`low_steps`) is observed only for people with a wearable; for the others it is
    marginalised: P(z, s | x_obs) = sum_b P(b | x) P(z, s | x, b), with P(b | x) from `low_steps_probability`.
    behaviour_risk = P(imbalance | x, true steps) = 1 - E_u[prod_k (1 - p_k)] (causes, not information);
    plus the top factor, also on the true steps.
    """
    eta = latent_linear_predictor(terms, config)
    nodes, weights = _person_effect_quadrature(config)
    behaviour_risk = 1 - _no_pattern_moments(eta, nodes, weights)[:, 0]
    observed = np.asarray(has_wearable, dtype=bool)
    low_steps = np.where(observed, terms[STEPS_TERM].to_numpy(), low_steps_probability(answers, config))
    true_risk = _risk_given_answers(terms, answers, config, low_steps)
    return pd.DataFrame({"true_risk": true_risk, "behaviour_risk": behaviour_risk,
                         **_top_factor(eta, behaviour_risk, terms, config)}, index=answers.index)


def _risk_given_answers(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig,
                        low_steps: np.ndarray) -> np.ndarray:
    """P(imbalance | x, posture and pain answers) with the step band b mixed by P(b = 1) = `low_steps`.

    A 0/1 `low_steps` gives exactly the complete-information formula (0 x finite = 0, 1 x value = value).
    """
    joint = np.zeros((len(terms), len(PATTERNS)))
    for level in (0.0, 1.0):
        band_terms = terms.assign(**{STEPS_TERM: level})  # also feeds any direct path on the step band
        band_weight = low_steps if level else 1 - low_steps
        joint += band_weight[:, None] * _pattern_answer_joint(band_terms, answers, config)
    return 1 - joint[:, 0] / joint.sum(axis=1)


def _pattern_answer_joint(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """P(z, s | x) for the 16 patterns z (rows x 16): e^{z.eta} M_{|z|} P(s | z, x)."""
    eta = latent_linear_predictor(terms, config)
    moments = _no_pattern_moments(eta, *_person_effect_quadrature(config))
    pattern_weight = np.exp(np.einsum("nk,zk->nz", eta, PATTERNS)) * moments[:, PATTERNS.sum(axis=1).astype(int)]
    return pattern_weight * _answer_likelihood(terms, answers, config)


def _person_effect_quadrature(config: PopulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes u_q and weights w_q (sum 1) for E_u[f(u)], u ~ N(0, sigma^2)."""
    unit_nodes, weights = np.polynomial.hermite_e.hermegauss(config.latent.quadrature_nodes)
    return config.latent.person_effect_sigma * unit_nodes, weights / weights.sum()


def _no_pattern_moments(eta: np.ndarray, nodes: np.ndarray, weights: np.ndarray,
                        highest_moment: int = len(LATENTS)) -> np.ndarray:
    """M_m = E_u[prod_k (1 - p_k(u)) e^{m u}] for m = 0..highest_moment (rows x moments).

    Because ln p_k - ln(1 - p_k) = eta_k + u, P(z | x) = E_u[prod_k (1 - p_k) e^{z.(eta + u)}]
    = e^{z.eta} M_{|z|}: sixteen patterns cost five integrals. M_0 = P(no pattern).
    """
    moments = np.empty((len(eta), highest_moment + 1))
    node_scale = np.exp(nodes)
    tilted_weights = weights[:, None] * node_scale[:, None] ** np.arange(highest_moment + 1)  # (nodes x moments)
    for rows in _chunks(len(eta)):
        odds = np.exp(eta[rows])
        inverse_none = np.ones((len(odds), len(nodes)))  # prod_k (1 + e^{eta_k + u_q}) = 1 / prod_k (1 - p_k)
        for k in range(odds.shape[1]):
            inverse_none *= 1 + np.outer(odds[:, k], node_scale)
        moments[rows] = (1 / inverse_none) @ tilted_weights
    return moments


def _answer_likelihood(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """P(observed posture and pain answers | z, x) for each of the 16 patterns (rows x 16).

    A blank answer is marginalised: its levels' probabilities sum to 1, so it contributes a factor 1.
    """
    rows = np.arange(len(answers))
    posture_level = level_index(answers["posture_self_report"], POSTURE)
    pain_levels = {name: level_index(answers[name], PAIN) for name in config.pain}
    likelihood = np.ones((len(answers), len(PATTERNS)))
    for index, pattern in enumerate(PATTERNS):
        latents = dict(zip(LATENTS, pattern))
        posture = posture_probabilities(has_postural_pattern(latents, config), config)[0, posture_level]
        likelihood[:, index] = np.where(posture_level >= 0, posture, 1.0)
        for name, model in config.pain.items():
            levels = pain_level_probabilities(outcome_linear_predictor(model, terms, latents),
                                              model.frequent_logit_offset)
            level = pain_levels[name]
            likelihood[:, index] *= np.where(level >= 0, levels[rows, level], 1.0)
    return likelihood


def _top_factor(eta: np.ndarray, behaviour_risk: np.ndarray, terms: pd.DataFrame,
                config: PopulationConfig) -> dict[str, np.ndarray]:
    """delta_j = risk(x) - risk(x with factor j's logit contributions set to their population mean)."""
    log_odds = latent_log_odds(config)
    nodes, weights = _person_effect_quadrature(config)
    factor_of = {name: term.factor for name, term in config.latent.terms.items()}
    deltas = np.zeros((len(eta), len(FACTORS)))
    for j, factor in enumerate(FACTORS):
        members = [t for t in log_odds.index if factor_of[t] == factor]
        contribution = terms[members].to_numpy() @ log_odds.loc[members].to_numpy()
        counterfactual = eta - contribution + contribution.mean(axis=0)
        deltas[:, j] = behaviour_risk - (1 - _no_pattern_moments(counterfactual, nodes, weights, 0)[:, 0])
    ranked = np.argsort(deltas, axis=1)
    rows = np.arange(len(eta))
    top, second = deltas[rows, ranked[:, -1]], deltas[rows, ranked[:, -2]]
    rule = config.top_factor
    return {"true_top_factor": np.asarray(FACTORS)[ranked[:, -1]],
            "true_top_factor_clear": (top > rule.min_delta) & (top >= rule.min_ratio_to_second * second),
            "top_factor_delta": top}


def _chunks(total: int) -> list[slice]:
    return [slice(start, min(start + CHUNK_ROWS, total)) for start in range(0, total, CHUNK_ROWS)]
