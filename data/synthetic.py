"""Seeded, reproducible synthetic population: questionnaire answers, wearable days and the truth behind them.

Demographics -> behaviours -> four latent patterns -> posture and pain answers (docs/generative-model.md);
the numbers are in data/synthetic_config.py, the math shared with the truth in data/synthetic_truth.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import binom, norm

from balanceit.data.contract import (
    ANSWER_COLUMNS, EXERCISE_TYPES, LABEL, MINUTES_PER_DAY, OPTIONAL_ANSWERS, PAIN, PAIN_COLUMNS, POSTURE,
    QUESTIONNAIRE_SPECS as SPECS, STRENGTH_TRAINING,
)
from balanceit.data.synthetic_config import DEFAULT, LATENTS, PopulationConfig
from balanceit.data.synthetic_truth import (
    CHUNK_ROWS, Completions, compute_truth, design_terms, does_exercise, has_postural_pattern,
    latent_linear_predictor, level_index, log_steps_shift, outcome_linear_predictor, pain_level_probabilities,
    posture_probabilities,
)

SYMPTOM_ANSWERS = ("posture_self_report", *PAIN_COLUMNS)  # the truth sees them as exported, blanks marginalised
EXERCISE_CHOICES = tuple(t for t in EXERCISE_TYPES if t != "none")  # "none" is written only alone
NO_YES = ("no", "yes")  # boolean answers as a user exports them; index = the boolean
STEPS_SHIFT_ANSWERS = ("occupation", "exercise_types", "age", "height_cm", "weight_kg")
# Optional answers the design terms or the step band read: a blank one is summed out of true_risk by draws.
BLANKABLE_CAUSES = ("height_cm", "weight_kg", "occupation", "screen_hours_per_day", "movement_breaks_per_day",
                    "exercise_types", "strength_training", "stretching_days_per_week")
TRUTH_DRAW_STREAM = 1  # the draws for true_risk use their own stream, so the population does not depend on them
MIFFLIN_ST_JEOR_SEX_TERM = {"male": 5.0, "female": -161.0}  # kcal/day; other/unknown get the average
LIFTING = EXERCISE_CHOICES.index("weightlifting")
STRETCHING_BAND_LOW, STRETCHING_BAND_WIDTH = np.array([0, 1, 3]), np.array([1, 2, 5])  # 0 / 1-2 / 3-7 days


@dataclass
class Population:
    questionnaire: pd.DataFrame  # contract section 1 columns, as a user would export them
    activity: pd.DataFrame  # contract section 2 canonical columns, for the people with a wearable
    truth: pd.DataFrame  # what generated the answers: latent patterns, label, exact risks, top factor, has_wearable


def generate(rows: int, seed: int = 0, labelled: bool = False, config: PopulationConfig = DEFAULT) -> Population:
    """A population of `rows` people; `labelled` adds the clinician's `imbalance` answer."""
    rng = np.random.default_rng(seed)
    answers, true_steps = _sample_answers(rows, seed, config, rng)
    terms = design_terms(answers, true_steps, config)
    person_effect = rng.normal(0.0, config.latent.person_effect_sigma, rows)
    logits = latent_linear_predictor(terms, config) + person_effect[:, None]
    patterns = (rng.random((rows, len(LATENTS))) < expit(logits)).astype(int)
    latents = {k: patterns[:, i].astype(float) for i, k in enumerate(LATENTS)}
    answers = answers.assign(**_sample_posture_and_pain(terms, latents, config, rng))[list(ANSWER_COLUMNS)]
    imbalance = patterns.max(axis=1)
    signs = {f"sign_{name}": (rng.random(rows) < expit(outcome_linear_predictor(model, terms, latents))).astype(int)
             for name, model in config.clinical_signs.items()}  # table 3.3: what a clinician sees, truth only
    questionnaire = answers.copy()
    for column in OPTIONAL_ANSWERS:  # missing completely at random; required answers are never blanked
        questionnaire[column] = questionnaire[column].mask(rng.random(rows) < config.missing_rate)
    if labelled:
        questionnaire[LABEL] = _spell(NO_YES, imbalance)
    has_wearable = rng.random(rows) < config.wearable.share_with_device
    activity = _wearable_days(answers, true_steps, np.flatnonzero(has_wearable), config, rng)
    completions = draw_blank_causes(questionnaire, config, np.random.default_rng((seed, TRUTH_DRAW_STREAM)))
    truth = pd.concat([  # computed last because true_risk depends on who has a wearable
        answers[["respondent_id", "submitted_at"]],
        compute_truth(terms, answers.assign(**{c: questionnaire[c] for c in SYMPTOM_ANSWERS}), config, has_wearable,
                      completions),
        pd.DataFrame(patterns, columns=[f"pattern_{k}" for k in LATENTS], index=answers.index),
        pd.DataFrame({"imbalance": imbalance, "true_daily_steps": true_steps, "has_wearable": has_wearable,
                      **signs}, index=answers.index),
    ], axis=1)
    return Population(questionnaire=questionnaire, activity=activity, truth=truth)


def write(population: Population, out_dir: Path) -> dict[str, Path]:
    """Write the three tables as CSV (empty cell = missing) and return their paths by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.csv" for name in ("questionnaire", "activity", "truth")}
    for name, path in paths.items():
        getattr(population, name).to_csv(path, index=False)
    return paths


def _sample_answers(rows: int, seed: int, config: PopulationConfig,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Complete answers in export format (before posture, pain and missingness) and true steps."""
    person = _sample_demographics(rows, config, rng)
    person.update(_sample_working_day(person, config, rng))
    person.update(_sample_exercise(person, config, rng))
    person.update(_sample_stretching(person, config, rng))
    # The true daily steps level (lognormal; E72), shifted by answers only (the truth needs P(band | answers)).
    shift = log_steps_shift(pd.DataFrame({c: person[c] for c in STEPS_SHIFT_ANSWERS}), config)
    steps = config.steps
    true_steps = np.round(steps.median * np.exp(shift + rng.normal(0.0, steps.log_sigma, rows))).astype(int)
    person["respondent_id"] = ("syn" + str(seed) + "-" + pd.Series(np.arange(rows)).astype("str")
                               .str.zfill(len(str(max(rows - 1, 0))))).array
    start, end = (np.datetime64(day, "s") for day in config.submitted_between)
    seconds = rng.integers(0, (end - start).astype(int), rows)
    person["submitted_at"] = np.datetime_as_string(start + seconds.astype("timedelta64[s]"), unit="s")
    answers = pd.DataFrame({c: person[c] for c in ANSWER_COLUMNS if c in person})
    dtypes = {"integer": "Int64", "number": "float64"}
    return answers.astype({c: dtypes.get(SPECS[c].type, "str") for c in answers.columns}), true_steps


def _sample_demographics(rows: int, config: PopulationConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    demo = config.demographics
    band = rng.choice(len(demo.age_bands), size=rows, p=[b.share for b in demo.age_bands])
    lows, highs = (np.array([getattr(b, end) for b in demo.age_bands]) for end in ("low", "high"))
    sexes = list(demo.sex_shares)
    sex_code = rng.choice(len(sexes), size=rows, p=list(demo.sex_shares.values()))
    height = _sample_height(sex_code, config, rng)
    weight = _sample_weight(height, config, rng)
    return {"age_band": band, "age": rng.integers(lows[band], highs[band] + 1), "sex_code": sex_code,
            "sex": _spell(sexes, sex_code), "height_cm": height, "weight_kg": weight}


def _sample_height(sex_code: np.ndarray, config: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    demo = config.demographics
    average_height = np.mean(list(demo.height_cm_mean.values()))
    height_mean = np.array([demo.height_cm_mean.get(sex, average_height) for sex in demo.sex_shares])[sex_code]
    return _clip_to_contract("height_cm", np.round(rng.normal(height_mean, demo.height_cm_sd)))


def _sample_weight(height: np.ndarray, config: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    """BMI is lognormal and independent of everything else; the weight follows from it and the height."""
    demo = config.demographics
    bmi = demo.bmi_median * np.exp(rng.normal(0.0, demo.bmi_log_sigma, len(height)))
    return _clip_to_contract("weight_kg", np.round(bmi * (height / 100) ** 2, 1))


def _weight_probability(weight: np.ndarray, height: np.ndarray, config: PopulationConfig) -> np.ndarray:
    """P(weight answer | height): the reported weight is BMI x height^2 rounded to 0.1 kg, then clipped."""
    demo = config.demographics
    spec = SPECS["weight_kg"]
    log_scale = np.log(demo.bmi_median * (height / 100) ** 2)
    return _clipped_interval_probability(weight - 0.05, weight + 0.05, spec.low, spec.high,
                                         lambda kg: norm.cdf((np.log(kg) - log_scale) / demo.bmi_log_sigma))


def _sample_working_day(person: dict[str, np.ndarray], config: PopulationConfig,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Occupation (students and retired people by age band), then the working day that depends on it."""
    code = _sample_occupation(person["age_band"], config, rng)
    sitting = _sitting_distribution(code, config).draw(rng)
    standing_given_job, screen_given_job = _standing_and_screen_distributions(code, sitting, config)
    standing, screen = standing_given_job.draw(rng), screen_given_job.draw(rng)
    breaks = _sample_breaks(sitting, config, rng)
    return {"occupation": _spell(list(config.occupations.profiles), code), "sitting_hours_per_day": sitting,
            "standing_hours_per_day": standing, "screen_hours_per_day": screen, "movement_breaks_per_day": breaks}


def _sample_occupation(age_band: np.ndarray, config: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Occupation code: student or retired by age band, else a worker's job by its share."""
    occ = config.occupations
    rows = len(age_band)
    names = list(occ.profiles)
    worker_shares = np.array([p.share_of_workers for p in occ.profiles.values()])
    worker_job = rng.choice(len(names), size=rows, p=worker_shares / worker_shares.sum())
    student_share = np.asarray(occ.student_share_by_age_band)[age_band]
    retired_share = np.asarray(occ.retired_share_by_age_band)[age_band]
    status = rng.random(rows)
    return np.where(status < student_share, names.index("student"),
                    np.where(status < student_share + retired_share, names.index("retired"), worker_job))


@dataclass(frozen=True)
class _HalfHours:
    """An hours answer, clip(N(mean, sd), low, high) to the half hour: one definition for sampling and for
    P(answer | parents), which the truth needs to sum blanks out."""

    mean: np.ndarray
    sd: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    floor: bool = False

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        hours = np.clip(rng.normal(self.mean, self.sd), self.low, self.high)
        return np.floor(2 * hours) / 2 if self.floor else np.round(hours * 2) / 2

    def probability(self, hours: np.ndarray) -> np.ndarray:
        start = hours if self.floor else hours - 0.25
        return _clipped_interval_probability(start, start + 0.5, self.low, self.high,
                                             lambda h: norm.cdf((h - self.mean) / self.sd))


def _profile(code: np.ndarray, attribute: str, config: PopulationConfig) -> np.ndarray:
    return np.array([getattr(p, attribute) for p in config.occupations.profiles.values()])[code]


def _sitting_distribution(code: np.ndarray, config: PopulationConfig) -> _HalfHours:
    return _HalfHours(_profile(code, "sitting_mean_h", config), _profile(code, "sitting_sd_h", config), 0.5, 16)


def _standing_and_screen_distributions(code: np.ndarray, sitting: np.ndarray,
                                       config: PopulationConfig) -> tuple[_HalfHours, _HalfHours]:
    """Standing fits in the day beside sleep and sitting; screen time rises with sitting above the
    occupation's mean sitting time."""
    occ = config.occupations
    sitting_mean = _profile(code, "sitting_mean_h", config)
    screen_mean = _profile(code, "screen_mean_h", config) + occ.screen_per_sitting_hour * (sitting - sitting_mean)
    return (_HalfHours(_profile(code, "standing_mean_h", config), occ.standing_sd_h, 0,
                       24 - occ.min_lying_hours - sitting, floor=True),
            _HalfHours(screen_mean, occ.screen_sd_h, 0, 18))


def _sample_breaks(sitting: np.ndarray, config: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Poisson(sitting hours x a lognormal personal rate): a leaf of the chain, so it needs no probability."""
    occ = config.occupations
    break_rate = occ.breaks_per_sitting_hour_median * np.exp(
        rng.normal(0.0, occ.breaks_per_sitting_hour_log_sigma, len(sitting)))
    return _clip_to_contract("movement_breaks_per_day", rng.poisson(sitting * break_rate))


def _sample_exercise(person: dict[str, np.ndarray], config: PopulationConfig,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Exercise types (multi-valued), strength training consistent with weightlifting, days and minutes."""
    ex = config.exercise
    rows = len(person["age"])
    flags = _sample_exercise_flags(person["sex_code"], person["age"], config, rng)
    lifts = flags[:, LIFTING]
    strength_level = _sample_strength_level(lifts, config, rng)
    exerciser = flags.any(axis=1)
    days = np.where(exerciser, 1 + rng.binomial(6, ex.days_per_week_binomial_p, rows), 0)
    days = np.where(lifts, np.maximum(days, ex.lifter_min_days), days)
    minutes = np.clip(5 * np.round(ex.minutes_median * np.exp(rng.normal(0.0, ex.minutes_log_sigma, rows)) / 5),
                      *ex.minutes_range)
    return {"exercise_types": _join_exercise_types(flags), "exercise_days_per_week": days,
            "exercise_minutes_per_session": np.where(exerciser, minutes, 0),
            "strength_training": _spell(STRENGTH_TRAINING, strength_level), "exerciser": exerciser}


def _sample_exercise_flags(sex_code: np.ndarray, age: np.ndarray, config: PopulationConfig,
                           rng: np.random.Generator) -> np.ndarray:
    """Yes/no per type of EXERCISE_CHOICES (rows x types); weightlifting by sex and age group (E76)."""
    ex = config.exercise
    rows = len(age)
    does = {kind: rng.random(rows) < share for kind, share in ex.type_shares.items()}
    age_group = np.searchsorted(ex.strength_age_group_starts, age, side="right") - 1
    average_share = np.mean(list(ex.strength_share_by_age_group.values()), axis=0)
    share_by_sex = np.array([ex.strength_share_by_age_group.get(sex, average_share)
                             for sex in config.demographics.sex_shares])
    does["weightlifting"] = rng.random(rows) < share_by_sex[sex_code, age_group]
    return np.stack([does.get(kind, np.zeros(rows, bool)) for kind in EXERCISE_CHOICES], axis=1)


def _sample_strength_level(lifts: np.ndarray, config: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Index into STRENGTH_TRAINING: lifters train balanced or unbalanced, everyone else "none"."""
    balanced = rng.random(len(lifts)) < config.exercise.balanced_share_of_lifters
    return np.where(lifts, np.where(balanced, STRENGTH_TRAINING.index("balanced"),
                                    STRENGTH_TRAINING.index("unbalanced")), STRENGTH_TRAINING.index("none"))


def _strength_probability(level: np.ndarray, lifts: np.ndarray, config: PopulationConfig) -> np.ndarray:
    """P(strength_training answer | lifts), for the level indices of `_sample_strength_level`."""
    balanced = config.exercise.balanced_share_of_lifters
    lifter_probability = np.array([0.0, balanced, 1 - balanced])[level]
    return np.where(lifts, lifter_probability, level == STRENGTH_TRAINING.index("none"))


def _exercise_days_probability(days: np.ndarray, exerciser: np.ndarray, lifts: np.ndarray,
                               config: PopulationConfig) -> np.ndarray:
    """P(exercise days | exerciser, lifts): 0 without exercise, else 1 + Binomial(6, p), lifters at least 2."""
    ex = config.exercise
    pmf = binom.pmf(days - 1, 6, ex.days_per_week_binomial_p)
    floor = ex.lifter_min_days
    lifter = np.where(days == floor, binom.cdf(floor - 1, 6, ex.days_per_week_binomial_p), pmf * (days > floor))
    return np.where(exerciser, np.where(lifts, lifter, pmf), days == 0)


def _sample_stretching(person: dict[str, np.ndarray], config: PopulationConfig,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stretching days in bands 0 / 1-2 / 3-7; before/after answers only for exercisers who stretch."""
    st = config.stretching
    exerciser = person["exerciser"]
    days = _sample_stretching_days(exerciser, config, rng)
    stretches_with_exercise = exerciser & (days > 0)
    after = stretches_with_exercise & (rng.random(len(days)) < st.after_exercise_share)
    before = stretches_with_exercise & (rng.random(len(days)) < st.before_exercise_share)
    return {"stretching_days_per_week": days, "stretches_before_exercise": _spell(NO_YES, before.astype(int)),
            "stretches_after_exercise": _spell(NO_YES, after.astype(int))}


def _stretching_band_shares(exerciser: np.ndarray, config: PopulationConfig) -> np.ndarray:
    st = config.stretching
    return np.where(exerciser[:, None], st.day_band_shares_exercisers, st.day_band_shares_non_exercisers)


def _sample_stretching_days(exerciser: np.ndarray, config: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    band = _draw_level(_stretching_band_shares(exerciser, config), rng)
    return STRETCHING_BAND_LOW[band] + np.floor(rng.random(len(band)) * STRETCHING_BAND_WIDTH[band]).astype(int)


def _stretching_days_probability(days: np.ndarray, exerciser: np.ndarray, config: PopulationConfig) -> np.ndarray:
    """P(stretching days | exerciser): the band's share, spread evenly over its days."""
    band = np.searchsorted(STRETCHING_BAND_LOW, days, side="right") - 1
    shares = _stretching_band_shares(exerciser, config)[np.arange(len(days)), band]
    return shares / STRETCHING_BAND_WIDTH[band]


def _stretches_with_exercise_probability(answer: np.ndarray, share: float, exerciser: np.ndarray,
                                         stretching_days: np.ndarray) -> np.ndarray:
    """P(a before/after-exercise answer | exerciser, stretching days); `answer` is the 0/1 boolean."""
    can = exerciser & (stretching_days > 0)
    return np.where(can, np.where(answer == 1, share, 1 - share), answer == 0)


def _sample_posture_and_pain(terms: pd.DataFrame, latents: dict[str, np.ndarray], config: PopulationConfig,
                             rng: np.random.Generator) -> dict[str, pd.Series]:
    """posture_self_report from the postural patterns; each pain answer from table 3.3."""
    posture = posture_probabilities(has_postural_pattern(latents, config), config)
    answers = {"posture_self_report": _spell(POSTURE, _draw_level(posture, rng))}
    for name, model in config.pain.items():
        levels = pain_level_probabilities(outcome_linear_predictor(model, terms, latents), model.frequent_logit_offset)
        answers[name] = _spell(PAIN, _draw_level(levels, rng))
    return {name: pd.Series(values, index=terms.index) for name, values in answers.items()}


def draw_blank_causes(questionnaire: pd.DataFrame, config: PopulationConfig,
                      rng: np.random.Generator) -> Iterator[Completions]:
    """Completions of the rows with a blank in BLANKABLE_CAUSES, `config.blank_answer_draws` per row, in chunks.

    Blanks are MCAR, so each draw runs the generator's samplers for the blanks and is weighted by
    P(observed answer | parents) for the observed answers downstream of a drawn one (likelihood weighting).
    """
    draws = config.blank_answer_draws
    rows = np.flatnonzero(questionnaire[list(BLANKABLE_CAUSES)].isna().any(axis=1).to_numpy())
    per_chunk = max(1, CHUNK_ROWS // draws)
    for start in range(0, len(rows), per_chunk):
        owners = rows[start:start + per_chunk]
        yield _complete(questionnaire.iloc[owners], owners, draws, config, rng)


def _complete(observed: pd.DataFrame, owners: np.ndarray, draws: int, config: PopulationConfig,
              rng: np.random.Generator) -> Completions:
    """`draws` completions of each row of `observed` (see `draw_blank_causes`), draw-major within a row."""
    def repeated(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, draws, axis=0)

    def number(column: str) -> np.ndarray:
        return repeated(observed[column].to_numpy(float, na_value=np.nan))

    def level(column: str, levels: Sequence[str]) -> np.ndarray:
        return repeated(level_index(observed[column], levels))  # -1 where blank

    rows = len(observed) * draws
    row_of_draw = repeated(np.arange(len(observed)))  # to spread text answers, which keep their dtype
    demo = config.demographics
    evidence = []  # P(observed answer | its parents) for answers whose parents may be drawn

    sex_code = level("sex", list(demo.sex_shares))
    age = number("age").astype(int)
    age_band = np.searchsorted([band.low for band in demo.age_bands], age, side="right") - 1
    height = number("height_cm")
    height = np.where(np.isnan(height), _sample_height(sex_code, config, rng), height)
    weight = number("weight_kg")
    evidence.append(np.where(np.isnan(weight), 1.0, _weight_probability(weight, height, config)))
    weight = np.where(np.isnan(weight), _sample_weight(height, config, rng), weight)

    occupation = level("occupation", list(config.occupations.profiles))
    occupation = np.where(occupation < 0, _sample_occupation(age_band, config, rng), occupation)
    sitting = number("sitting_hours_per_day")
    evidence.append(_sitting_distribution(occupation, config).probability(sitting))
    standing = number("standing_hours_per_day")
    standing_given_job, screen_given_job = _standing_and_screen_distributions(occupation, sitting, config)
    evidence.append(np.where(np.isnan(standing), 1.0, standing_given_job.probability(standing)))
    screen = number("screen_hours_per_day")
    evidence.append(np.where(np.isnan(screen), 1.0, screen_given_job.probability(screen)))
    screen = np.where(np.isnan(screen), screen_given_job.draw(rng), screen)
    breaks = number("movement_breaks_per_day")
    breaks = np.where(np.isnan(breaks), _sample_breaks(sitting, config, rng), breaks)

    types = observed["exercise_types"]
    listed = np.stack([does_exercise(types, kind).to_numpy(bool, na_value=False) for kind in EXERCISE_CHOICES], axis=1)
    strength = level("strength_training", STRENGTH_TRAINING)
    exercise_days = number("exercise_days_per_week")
    minutes = number("exercise_minutes_per_session")
    known_exercise = np.where(np.isnan(exercise_days), np.where(np.isnan(minutes), -1, minutes > 0), exercise_days > 0)
    flags = _draw_exercise_flags(repeated(types.isna().to_numpy()), repeated(listed),
                                 np.where(strength < 0, -1, strength != STRENGTH_TRAINING.index("none")),
                                 known_exercise.astype(int), sex_code, age, config, rng)
    lifts, exerciser = flags[:, LIFTING], flags.any(axis=1)
    evidence.append(np.where(strength < 0, 1.0, _strength_probability(strength, lifts, config)))
    strength = np.where(strength < 0, _sample_strength_level(lifts, config, rng), strength)
    evidence.append(np.where(np.isnan(exercise_days), 1.0,
                             _exercise_days_probability(exercise_days, exerciser, lifts, config)))
    evidence.append(np.where(np.isnan(minutes), 1.0, (minutes > 0) == exerciser))  # up to a constant factor
    stretching = number("stretching_days_per_week")
    evidence.append(np.where(np.isnan(stretching), 1.0,
                             _stretching_days_probability(np.nan_to_num(stretching).astype(int), exerciser, config)))
    stretching = np.where(np.isnan(stretching), _sample_stretching_days(exerciser, config, rng), stretching)
    for column, share in (("stretches_before_exercise", config.stretching.before_exercise_share),
                          ("stretches_after_exercise", config.stretching.after_exercise_share)):
        answer = level(column, NO_YES)
        evidence.append(np.where(answer < 0, 1.0,
                                 _stretches_with_exercise_probability(answer, share, exerciser, stretching)))

    with np.errstate(divide="ignore"):
        log_weight = np.log(np.prod(evidence, axis=0))
    answers = pd.DataFrame({
        "sex": observed["sex"].array.take(row_of_draw), "age": age,
        "height_cm": height, "weight_kg": weight, "occupation": _spell(list(config.occupations.profiles), occupation),
        "sitting_hours_per_day": sitting, "screen_hours_per_day": screen, "movement_breaks_per_day": breaks,
        "exercise_types": _join_exercise_types(flags), "strength_training": _spell(STRENGTH_TRAINING, strength),
        "stretching_days_per_week": stretching,
        **{c: observed[c].array.take(row_of_draw) for c in SYMPTOM_ANSWERS},
    })
    return Completions(answers=answers, owner=repeated(owners), log_weight=log_weight)


def _draw_exercise_flags(blank: np.ndarray, listed: np.ndarray, known_lifting: np.ndarray,
                         known_exercise: np.ndarray, sex_code: np.ndarray, age: np.ndarray, config: PopulationConfig,
                         rng: np.random.Generator) -> np.ndarray:
    """The listed exercise flags, or where `blank` flags drawn until consistent with the known lifting and
    exercising (`known_*`: 1, 0, or -1 if unknown), which scales the proposal by a constant per row."""
    flags = listed.copy()
    todo = blank.copy()
    while todo.any():
        rows = np.flatnonzero(todo)
        drawn = _sample_exercise_flags(sex_code[rows], age[rows], config, rng)
        drawn[:, LIFTING] = np.where(known_lifting[rows] >= 0, known_lifting[rows] == 1, drawn[:, LIFTING])
        drawn &= (known_exercise[rows] != 0)[:, None]  # someone known not to exercise lists nothing
        flags[rows] = drawn
        todo[rows] = (known_exercise[rows] == 1) & ~drawn.any(axis=1)
    return flags


def _wearable_days(answers: pd.DataFrame, true_steps: np.ndarray, wearer: np.ndarray, config: PopulationConfig,
                   rng: np.random.Generator) -> pd.DataFrame:
    """28-35 days per wearer (row positions) around submission, some after it, ~8% non-wear days."""
    wear = config.wearable
    days = rng.integers(wear.days_range[0], wear.days_range[1] + 1, len(wearer))
    days_after = np.where(rng.random(len(wearer)) < wear.share_with_days_after_submission,
                          rng.integers(1, wear.max_days_after_submission + 1, len(wearer)), 0)
    submitted = answers["submitted_at"].to_numpy()[wearer].astype("datetime64[s]").astype("datetime64[D]")
    first_day = submitted - (days - 1 - days_after)
    calendar_start = first_day.min() if len(first_day) else np.datetime64(config.submitted_between[0], "D")
    first_row = np.cumsum(days) - days
    rows = int(days.sum())
    date_code = np.repeat((first_day - calendar_start).astype(int) - first_row, days) + np.arange(rows)

    def per_day(per_person: np.ndarray) -> np.ndarray:
        return np.repeat(per_person, days)

    def around(per_person: np.ndarray, log_sigma: float) -> np.ndarray:
        """Daily values, rounded, whose mean-one lognormal noise leaves the person's average unchanged."""
        return np.round(per_day(per_person) * np.exp(rng.normal(-log_sigma**2 / 2, log_sigma, rows)))

    level = true_steps[wearer].astype(float)
    worn = rng.random(rows) >= wear.non_wear_day_rate
    steps = np.maximum(around(level, wear.day_step_log_sigma), 1)
    mvpa_level = wear.mvpa_minutes_at_median_steps * (level / config.steps.median) ** wear.mvpa_steps_elasticity
    mvpa = np.minimum(around(mvpa_level, wear.day_mvpa_log_sigma), wear.max_mvpa_minutes)
    very = np.round(mvpa * wear.very_active_share_of_mvpa)
    light = np.minimum(np.round(steps * (wear.light_minutes_per_1000_steps / 1000)), wear.awake_minutes - mvpa)
    device_sitting = answers["sitting_hours_per_day"].to_numpy(float)[wearer] * 60 * wear.device_to_self_report_sitting
    sedentary = np.minimum(around(device_sitting, wear.day_sedentary_log_sigma), MINUTES_PER_DAY - light - mvpa)
    bmr = _basal_metabolic_rate(answers).to_numpy()[wearer]
    active_kcal = (per_day(bmr * (wear.bmr_activity_factor - 1)) + steps * wear.kcal_per_step
                   + (mvpa - very) * wear.kcal_per_fairly_minute + very * wear.kcal_per_very_minute)
    calendar = np.datetime_as_string(calendar_start + np.arange(date_code.max(initial=-1) + 1), unit="D")
    counts = {
        "steps": np.where(worn, steps, 0),
        "sedentary_minutes": np.where(worn, sedentary, MINUTES_PER_DAY),
        "lightly_active_minutes": np.where(worn, light, 0),
        "fairly_active_minutes": np.where(worn, mvpa - very, 0),
        "very_active_minutes": np.where(worn, very, 0),
        "calories": np.round(per_day(bmr) + np.where(worn, active_kcal, 0)),
    }
    return pd.DataFrame({
        "respondent_id": pd.Series(answers["respondent_id"].to_numpy()[wearer], dtype="str").array.take(
            np.repeat(np.arange(len(wearer)), days)),
        "date": pd.Series(calendar, dtype="str").array.take(date_code),
        **{name: values.astype(np.int64) for name, values in counts.items()},
    })


def _basal_metabolic_rate(answers: pd.DataFrame) -> pd.Series:
    """Mifflin-St Jeor resting kcal/day: what a tracker reports on a day it was not worn."""
    sex_terms = list(MIFFLIN_ST_JEOR_SEX_TERM.values())
    sex_term = np.array([*sex_terms, np.mean(sex_terms)])[level_index(answers["sex"], list(MIFFLIN_ST_JEOR_SEX_TERM))]
    return 10 * answers["weight_kg"] + 6.25 * answers["height_cm"] - 5 * answers["age"] + sex_term


def _join_exercise_types(flags: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """';'-joined exercise types, or "none" alone; via a lookup over the 2^types combinations."""
    codes = flags.astype(np.int64) @ (1 << np.arange(flags.shape[1]))
    spellings = [";".join(t for bit, t in enumerate(EXERCISE_CHOICES) if combo >> bit & 1) or "none"
                 for combo in range(1 << len(EXERCISE_CHOICES))]
    return _spell(spellings, codes)


def _draw_level(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of the category drawn from each row's probabilities."""
    return (rng.random(len(probabilities))[:, None] > np.cumsum(probabilities, axis=1)[:, :-1]).sum(axis=1)


def _spell(levels: Sequence[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Each code spelled as its answer, as a pandas string array (one fast take, no per-row strings)."""
    return pd.Series(list(levels), dtype="str").array.take(np.asarray(codes))


def _clipped_interval_probability(start: np.ndarray, end: np.ndarray, low: float | np.ndarray,
                                  high: float | np.ndarray, cdf: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """P(clip(X, low, high) in [start, end)) for X with distribution function `cdf`."""
    below = np.where(start <= low, 0.0, cdf(np.maximum(start, low)))
    above = np.where(end > high, 1.0, cdf(np.minimum(end, high)))
    return np.where((end <= low) | (start > high), 0.0, np.clip(above - below, 0.0, 1.0))


def _clip_to_contract(column: str, values: np.ndarray) -> np.ndarray:
    return np.clip(values, SPECS[column].low, SPECS[column].high)
