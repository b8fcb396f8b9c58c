"""The synthetic population's model math, shared by sampling and the truth so the truth is exact for the
process that generated the data (formulas: docs/generative-model.md)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Iterable, Sequence

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
    """Every design term x_j of tables 3.2 and 3.3, from complete answers as exported (so a refit sees the
    x that generated the latents) and the true step level."""
    cuts = config.terms
    occupations = config.occupations.profiles
    sitting = answers["sitting_hours_per_day"].to_numpy(float)
    occupation = level_index(answers["occupation"], list(occupations))
    exposure = np.array([p.exposure for p in occupations.values()])[occupation]
    strength = answers["strength_training"]
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
        "bmi_30_plus": body_mass_index(answers) >= cuts.obese_bmi,
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
    """shift(x) in ln(true steps) = ln(median) + shift(x) + N(0, log_sigma^2), from answers only, so the
    step level's distribution given the answers is known exactly."""
    steps = config.steps
    profiles = config.occupations.profiles
    shift = np.array([p.log_steps_shift for p in profiles.values()])[level_index(answers["occupation"], list(profiles))]
    for kind, kind_shift in steps.shift_by_exercise.items():
        shift = shift + kind_shift * does_exercise(answers["exercise_types"], kind).to_numpy(bool)
    shift = shift + steps.shift_per_decade_of_age * (
        answers["age"].to_numpy(float) - config.terms.age_reference_years) / 10
    return shift + steps.shift_if_obese * (body_mass_index(answers) >= config.terms.obese_bmi)


def low_steps_probability(answers: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """P(low_steps = 1 | answers); round(v) < cut <=> v < ceil(cut) - 0.5."""
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


@dataclass(frozen=True)
class Completions:
    """Draws of blanked behaviour answers: draw i completes row position `owner[i]`, and `log_weight[i]` is
    ln P(the row's observed answers that depend on the drawn ones | draw)."""

    answers: pd.DataFrame
    owner: np.ndarray
    log_weight: np.ndarray


def compute_truth(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig,
                  has_wearable: np.ndarray, completions: Iterable[Completions] = ()) -> pd.DataFrame:
    """Exact truth per person (docs/generative-model.md): true_risk = P(imbalance | what a model sees), with
    the step band observed only with a wearable and blanked answers summed out over `completions`;
    behaviour_risk and the top factor use the complete answers and the true steps (causes, not information).
    """
    eta = latent_linear_predictor(terms, config)
    nodes, weights = _person_effect_quadrature(config)
    behaviour_risk = 1 - _no_pattern_moments(eta, nodes, weights)[:, 0]
    observed = np.asarray(has_wearable, dtype=bool)
    band = terms[STEPS_TERM].to_numpy()
    joint = _band_mixture_joint(terms, answers, config, band, observed)
    for completion in completions:
        owners, draw_owner = np.unique(completion.owner, return_inverse=True)
        draw_terms = design_terms(completion.answers, np.zeros(len(draw_owner)), config)  # b is set per band
        draw_joint = _band_mixture_joint(draw_terms, completion.answers, config, band[completion.owner],
                                         observed[completion.owner])
        joint[owners] = _weighted_sum(draw_joint, completion.log_weight, draw_owner, len(owners))
    return pd.DataFrame({"true_risk": 1 - joint[:, 0] / joint.sum(axis=1), "behaviour_risk": behaviour_risk,
                         **_top_factor(eta, behaviour_risk, terms, config)}, index=answers.index)


def _band_mixture_joint(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig,
                        band: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """sum_b w_b P(z, s | x, b) for the 16 patterns z (rows x 16) over the step bands b = 0, 1: w_b = P(b | x),
    times 1[b = the true `band`] where it is `observed` (P(b | x) then still weighs the draws of a blanked
    answer that shifts the steps)."""
    p_low = low_steps_probability(answers, config)
    prior = np.stack([1 - p_low, p_low], axis=1)
    band_weights = np.where(observed[:, None], prior * np.stack([1 - band, band], axis=1), prior)
    joint = np.zeros((len(terms), len(PATTERNS)))
    for level in (0, 1):
        band_terms = terms.assign(**{STEPS_TERM: float(level)})  # also feeds any direct path on the step band
        joint += band_weights[:, [level]] * _pattern_answer_joint(band_terms, answers, config)
    return joint


def _weighted_sum(values: np.ndarray, log_weight: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """sum_i w_i values_i per group, with w_i = e^{log_weight_i - max in its group} (the scale cancels)."""
    top = np.full(groups, -np.inf)
    np.maximum.at(top, group, log_weight)
    if not np.isfinite(top).all():
        raise ValueError("a row has no draw consistent with its observed answers; raise the number of draws")
    summed = np.zeros((groups, values.shape[1]))
    np.add.at(summed, group, values * np.exp(log_weight - top[group])[:, None])
    return summed


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
    """M_m = E_u[prod_k (1 - p_k(u)) e^{m u}] for m = 0..highest_moment (rows x moments); since
    P(z | x) = e^{z.eta} M_{|z|}, sixteen patterns cost five integrals. M_0 = P(no pattern)."""
    moments = np.empty((len(eta), highest_moment + 1))
    node_scale = np.exp(nodes)
    tilted_weights = weights[:, None] * node_scale[:, None] ** np.arange(highest_moment + 1)  # (nodes x moments)
    for start in range(0, len(eta), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        odds = np.exp(eta[rows])
        inverse_none = np.ones((len(odds), len(nodes)))  # prod_k (1 + e^{eta_k + u_q}) = 1 / prod_k (1 - p_k)
        for k in range(odds.shape[1]):
            inverse_none *= 1 + np.outer(odds[:, k], node_scale)
        moments[rows] = (1 / inverse_none) @ tilted_weights
    return moments


def _answer_likelihood(terms: pd.DataFrame, answers: pd.DataFrame, config: PopulationConfig) -> np.ndarray:
    """P(observed posture and pain answers | z, x) for each of the 16 patterns (rows x 16); a blank answer
    contributes a factor 1. Computed once per setting of the latents each answer depends on."""
    rows = np.arange(len(answers))
    likelihood = np.ones((len(answers), len(PATTERNS)))

    def multiply(drivers: Sequence[str], level: np.ndarray, probabilities) -> None:
        for values in product((0.0, 1.0), repeat=len(drivers)):
            latents = dict(zip(drivers, values))
            columns = np.all([PATTERNS[:, LATENTS.index(k)] == v for k, v in latents.items()], axis=0)
            factor = np.where(level >= 0, probabilities(latents)[rows, level], 1.0)
            likelihood[:, columns] *= factor[:, None]

    multiply(config.posture.pattern_latents, level_index(answers["posture_self_report"], POSTURE),
             lambda latents: np.broadcast_to(posture_probabilities(has_postural_pattern(latents, config), config),
                                             (len(rows), len(POSTURE))))
    for name, model in config.pain.items():
        multiply(list(model.latent_odds_ratios), level_index(answers[name], PAIN),
                 lambda latents, model=model: pain_level_probabilities(
                     outcome_linear_predictor(model, terms, latents), model.frequent_logit_offset))
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
