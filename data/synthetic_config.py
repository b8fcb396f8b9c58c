"""Every number of the synthetic population, in one typed, frozen config (override with `dataclasses.replace`).

Sources tag shared/reference/domain-evidence.md: E# = evidence row, "table 3.x" = section 3's model,
assumption, derived (arithmetic on sourced numbers), tuned (to hit the section 3.4 / 3.3 targets, which
tests/data/test_synthetic.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

LATENTS = ("U", "Lc", "P", "A")  # upper-crossed, lower-crossed, posterior-chain, agonist:antagonist (section 3.1)

# Explanation factors: the model's explanation features. Every latent term belongs to exactly one.
FACTORS = ("sitting_hours", "screen_hours", "movement_breaks", "occupation", "daily_steps", "exercise_running",
           "exercise_walking", "exercise_cycling", "exercise_swimming", "exercise_yoga", "exercise_team_sports",
           "strength_training", "stretching", "sex", "age", "bmi")

Exposure = Literal["desk_like", "standing_like", "reference"]


@dataclass(frozen=True)
class LatentTerm:
    """One design column x_j of table 3.2: the factor it explains and its odds ratio per latent."""

    factor: str
    odds_ratios: Mapping[str, float]  # latent -> OR per unit of x_j; a latent not listed has OR 1
    source: str


@dataclass(frozen=True)
class OutcomeModel:
    """Table 3.3: logit P(outcome) = intercept + sum ln OR(latent) z + sum ln OR(direct term) x; pain
    answers are proportional-odds, P(frequent) using `intercept - frequent_logit_offset`."""

    intercept: float
    latent_odds_ratios: Mapping[str, float]
    direct_odds_ratios: Mapping[str, float]  # design term -> OR (exposure -> outcome, not via a latent)
    source: str
    frequent_logit_offset: float | None = None  # pain answers only


@dataclass(frozen=True)
class TermDefinitions:
    """Cut-offs that turn answers into the design terms of tables 3.2 and 3.3."""

    sitting_reference_hours: float = 4.0  # table 3.2 "per h above 4"
    sitting_cap_hours: float = 12.0  # table 3.2 "cap 12"
    long_sitting_hours: float = 8.0  # table 3.3 back pain "sitting > 8 h"; E15
    low_steps_below: float = 5_000  # table 3.2 "<5,000 vs >=7,500"; 5,000-7,500 joins the reference: assumption
    obese_bmi: float = 30.0  # tables 3.2, 3.3 "BMI >= 30"; 25-30 joins the reference: assumption
    stretching_min_days: int = 3  # table 3.2 "stretching >= 3x/wk"
    hourly_breaks_per_sitting_hour: float = 1.0  # E22 "changes position every hour": breaks >= sitting hours
    age_reference_years: float = 40.0  # centring only; absorbed by the intercepts


@dataclass(frozen=True)
class LatentModel:
    """logit p_k = b0_k + sum_j ln(OR_jk) x_j + u_i, u_i ~ N(0, sigma^2) shared by the four latents."""

    intercepts: Mapping[str, float] = field(default_factory=lambda: {  # tuned to the section 3.4 targets
        "U": -2.48, "Lc": -2.61, "P": -0.87, "A": -1.98})
    terms: Mapping[str, LatentTerm] = field(default_factory=lambda: {  # table 3.2
        "sitting_hours_over_reference": LatentTerm("sitting_hours", {"U": 1.08, "Lc": 1.08, "P": 1.05},
                                            "anchor E14 (1.42), E15 (1.47-1.73); E16 keeps it modest"),
        "desk_like_occupation": LatentTerm("occupation", {"U": 1.3, "Lc": 1.2, "P": 1.1},
                                           "anchor E14 (office 1.23), E17"),
        "standing_like_occupation": LatentTerm("occupation", {"U": 1.1, "Lc": 1.1, "P": 1.1},
                                               "assumption; E12, E24 (standing 1.0-1.4)"),
        "screen_hours": LatentTerm("screen_hours", {"U": 1.15}, "anchor E17 (1.20/h), E27"),
        "hourly_breaks": LatentTerm("movement_breaks", {"U": 0.7, "Lc": 0.7, "P": 0.8},
                                    "anchor E22 (>30% lower MSD risk)"),
        "low_steps": LatentTerm("daily_steps", {"U": 1.2, "Lc": 1.3, "P": 1.2},
                                "assumption; anchor E14 (sedentary lifestyle 1.24)"),
        "exercise_running": LatentTerm("exercise_running", {"P": 1.6, "A": 1.1}, "direction E39; size assumption"),
        "exercise_walking": LatentTerm("exercise_walking", {"P": 1.1}, "assumption"),
        "exercise_cycling": LatentTerm("exercise_cycling", {"Lc": 1.3, "P": 1.2}, "assumption"),
        "exercise_swimming": LatentTerm("exercise_swimming", {"U": 1.1, "A": 1.2}, "E52; assumption"),
        "exercise_yoga": LatentTerm("exercise_yoga", {"U": 0.8, "Lc": 0.8, "P": 0.6}, "assumption via E59"),
        "exercise_team_sports": LatentTerm("exercise_team_sports", {"P": 1.1, "A": 1.3}, "direction E43, E49"),
        "unbalanced_lifting": LatentTerm("strength_training", {"U": 1.5, "Lc": 1.1, "A": 2.5},
                                         "direction E40, E46, E51; size assumption"),
        "balanced_lifting": LatentTerm("strength_training", {"U": 0.8, "Lc": 0.8, "A": 0.8},
                                       "anchor E55, E58 (strength RR 0.315), shrunk"),
        # No "meets the MSA guideline" answer: it equals balanced + unbalanced (collinear) - assumption.
        "meets_msa_guideline": LatentTerm("strength_training", {"U": 0.85, "Lc": 0.85, "A": 0.9},
                                          "assumption; anchor E55, E58"),
        "stretching_3_plus_days": LatentTerm("stretching", {"U": 0.8, "Lc": 0.8, "P": 0.5},
                                             "E59 derived (SMD 0.96), heavily shrunk; E54 dose"),
        "female": LatentTerm("sex", {"U": 1.5, "Lc": 1.5, "P": 0.7},
                             "E30 (OR 1.8 derived), E35, E39 (men tighter); shrunk"),
        "age_decades": LatentTerm("age", {"U": 1.05, "Lc": 1.1, "P": 1.15}, "assumption; direction E3, E4"),
        "bmi_30_plus": LatentTerm("bmi", {"U": 1.1, "Lc": 1.3, "P": 1.1}, "assumption; E35"),
    })
    person_effect_sigma: float = 0.5  # section 3.1, assumption
    quadrature_nodes: int = 12  # Gauss-Hermite nodes for u; vs 60 nodes the truth moves < 1e-10 (measured)


@dataclass(frozen=True)
class PostureModel:
    """posture_self_report is generated FROM the postural patterns, never used as a cause (section 3.1)."""

    pattern_latents: tuple[str, ...] = ("U", "Lc")  # "poor" tracks having U or Lc: section 3.1
    poor_with_pattern: float = 0.60  # P(poor | U or Lc): section 3.1, assumption
    poor_without_pattern: float = 0.25  # P(poor | neither): section 3.1, assumption
    fair_share_of_rest_with_pattern: float = 0.60  # of the not-poor: assumption
    fair_share_of_rest_without_pattern: float = 0.40  # of the not-poor: assumption


@dataclass(frozen=True)
class AgeBand:
    low: int
    high: int  # inclusive
    share: float


@dataclass(frozen=True)
class Demographics:
    age_bands: tuple[AgeBand, ...] = (  # E64 NHANES shares; ages 18-69 (the 65+ share sits in 65-69)
        AgeBand(18, 34, 0.30), AgeBand(35, 44, 0.16), AgeBand(45, 64, 0.35), AgeBand(65, 69, 0.19))
    sex_shares: Mapping[str, float] = field(default_factory=lambda: {
        "male": 0.48,  # E64
        "female": 0.51,  # E64 remainder
        "other": 0.005, "unknown": 0.005})  # assumption; effects = the male/female average
    height_cm_mean: Mapping[str, float] = field(default_factory=lambda: {  # assumption (US adult norms)
        "male": 175.5, "female": 161.5})
    height_cm_sd: float = 7.2  # assumption
    bmi_median: float = 28.8  # assumption, tuned so BMI >= 30 is ~42% (E63)
    bmi_log_sigma: float = 0.20  # assumption, tuned with bmi_median


@dataclass(frozen=True)
class OccupationProfile:
    """Where an occupation sits on every behaviour that depends on it."""

    share_of_workers: float  # among people who are neither students nor retired
    exposure: Exposure  # which occupation OR of table 3.2 applies
    manual_handling: bool  # table 3.3 back pain "lifting/manual 1.7" (E24)
    sitting_mean_h: float
    sitting_sd_h: float
    standing_mean_h: float
    screen_mean_h: float
    log_steps_shift: float  # added to the log of the step median


@dataclass(frozen=True)
class Occupations:
    # Mix and behaviours: assumption (section 3.5) unless tagged.
    profiles: Mapping[str, OccupationProfile] = field(default_factory=lambda: {
        # E68 (activPAL 10.6 h), E69: desk sitting shifted to 9-11 h.
        "desk": OccupationProfile(0.45, "desk_like", False, 9.5, 1.8, 1.5, 8.0, -0.10),
        # Teachers and service work: E12, E24.
        "standing": OccupationProfile(0.27, "standing_like", False, 4.5, 1.8, 6.5, 3.5, 0.15),
        "manual": OccupationProfile(0.23, "reference", True, 4.0, 1.8, 6.0, 3.0, 0.25),
        # Seated all shift: sits and gets the occupation OR like desk work (E14: driving -> LBP 2.03).
        "driving": OccupationProfile(0.03, "desk_like", False, 9.5, 1.8, 1.0, 3.0, -0.25),
        # Mixed jobs: the middle occupation OR (standing-like).
        "other": OccupationProfile(0.02, "standing_like", False, 6.5, 2.5, 3.5, 5.0, 0.0),
        # Lectures and screens: desk-like.
        "student": OccupationProfile(0.0, "desk_like", False, 8.5, 2.0, 2.0, 8.0, 0.0),
        # No occupational exposure: the reference OR, general-population sitting (E66 median 6-8 h).
        "retired": OccupationProfile(0.0, "reference", False, 6.5, 2.5, 3.0, 5.0, -0.10),
    })
    student_share_by_age_band: tuple[float, ...] = (0.07, 0.0, 0.0, 0.0)  # assumption, per Demographics.age_bands
    retired_share_by_age_band: tuple[float, ...] = (0.0, 0.0, 0.02, 0.25)  # assumption
    min_lying_hours: float = 6.0  # standing is capped at 24 - sleep - sitting: assumption
    standing_sd_h: float = 1.5  # assumption
    screen_sd_h: float = 2.0  # assumption
    screen_per_sitting_hour: float = 0.3  # screen time rises with sitting within an occupation: assumption
    breaks_per_sitting_hour_median: float = 0.7  # lognormal person rate: assumption (~28% break hourly)
    breaks_per_sitting_hour_log_sigma: float = 0.6  # assumption


@dataclass(frozen=True)
class Exercise:
    type_shares: Mapping[str, float] = field(default_factory=lambda: {  # independent yes/no per type
        "walking": 0.40, "running": 0.12, "cycling": 0.10, "swimming": 0.07,  # assumption
        "yoga": 0.15,  # E78 (14-17%)
        "pilates": 0.05, "team_sports": 0.07, "racket_sports": 0.05, "other": 0.08})  # assumption
    # Strength training >= 2 d/wk by sex and age group 18-44 / 45-64 / 65+ (E76, NHIS 2020); ~30% overall (E75).
    strength_share_by_age_group: Mapping[str, tuple[float, float, float]] = field(default_factory=lambda: {
        "male": (0.445, 0.299, 0.220), "female": (0.341, 0.238, 0.172)})
    strength_age_group_starts: tuple[int, int, int] = (18, 45, 65)  # E76
    balanced_share_of_lifters: float = 0.50  # section 3.5, assumption
    days_per_week_binomial_p: float = 0.40  # days = 1 + Binomial(6, p), 1-7, for exercisers: assumption
    lifter_min_days: int = 2  # the MSA guideline is >= 2 d/wk (E75)
    minutes_median: float = 45.0  # per session, lognormal: assumption
    minutes_log_sigma: float = 0.45  # assumption
    minutes_range: tuple[int, int] = (10, 180)  # assumption


@dataclass(frozen=True)
class Stretching:
    # P(0 days, 1-2 days, 3-7 days): >= 3 d/wk ~30% overall (section 3.5, assumption); more among exercisers (E79).
    day_band_shares_exercisers: tuple[float, float, float] = (0.28, 0.37, 0.35)
    day_band_shares_non_exercisers: tuple[float, float, float] = (0.70, 0.20, 0.10)
    after_exercise_share: float = 0.72  # E79 (72.4% stretch after training)
    before_exercise_share: float = 0.45  # assumption


@dataclass(frozen=True)
class Steps:
    """True daily steps level: lognormal, fitted to the quartile medians 3.6k/5.8k/7.8k/10.9k (E72)."""

    median: float = 6_430  # derived from E72 (6,750 centre), tuned down for the shifts
    log_sigma: float = 0.43  # person noise after the shifts: derived from E72 (total ~0.48), tuned
    shift_by_exercise: Mapping[str, float] = field(default_factory=lambda: {  # assumption
        "walking": 0.15, "running": 0.15, "team_sports": 0.10})
    shift_per_decade_of_age: float = -0.04  # per 10 y from TermDefinitions.age_reference_years: assumption
    shift_if_obese: float = -0.12  # assumption


@dataclass(frozen=True)
class Wearable:
    share_with_device: float = 0.40  # assumption
    days_range: tuple[int, int] = (28, 35)  # days of data per person, inclusive
    share_with_days_after_submission: float = 0.50  # so point-in-time logic has something to drop
    max_days_after_submission: int = 5
    non_wear_day_rate: float = 0.08  # 0 steps + 1440 sedentary minutes (contract section 2)
    day_step_log_sigma: float = 0.35  # day-to-day variation around the person's level: assumption
    device_to_self_report_sitting: float = 1.34  # E67: self-report ~34% below recall/device
    day_sedentary_log_sigma: float = 0.12  # assumption
    light_minutes_per_1000_steps: float = 17.0  # assumption (7,000 steps ~ 2 h light)
    mvpa_minutes_at_median_steps: float = 6.5  # E74: ~64 min/wk measured MVPA (mean; tuned)
    mvpa_steps_elasticity: float = 1.5  # assumption
    day_mvpa_log_sigma: float = 0.8  # assumption
    very_active_share_of_mvpa: float = 0.40  # assumption
    max_mvpa_minutes: float = 240  # keeps heavy days plausible: assumption
    awake_minutes: float = 1080  # light + MVPA fit in 18 waking hours: assumption
    bmr_activity_factor: float = 1.15  # calories = Mifflin-St Jeor BMR x factor + activity: assumption
    kcal_per_step: float = 0.04  # assumption
    kcal_per_fairly_minute: float = 5.0  # assumption
    kcal_per_very_minute: float = 8.0  # assumption


@dataclass(frozen=True)
class TopFactorRule:
    """A top factor is "clear" when it is big enough and well ahead of the runner-up."""

    min_delta: float = 0.02
    min_ratio_to_second: float = 1.5


@dataclass(frozen=True)
class PopulationConfig:
    latent: LatentModel = field(default_factory=LatentModel)
    terms: TermDefinitions = field(default_factory=TermDefinitions)
    # table 3.3. Intercepts tuned (neck 45% and back 47% among desk workers, shoulder 30% among lifters);
    # frequent_logit_offset 1.5: assumption (about a third of those with pain report it as frequent).
    pain: Mapping[str, OutcomeModel] = field(default_factory=lambda: {
        "neck_pain": OutcomeModel(
            intercept=-2.33, latent_odds_ratios={"U": 1.8},
            direct_odds_ratios={"female": 1.5, "screen_hours": 1.2, "no_hourly_breaks": 1.4},
            source="E20, E25 (U); E21 (female); E17 (computer h); E22 (breaks). Prior NP (7.2) is not asked",
            frequent_logit_offset=1.5),
        "back_pain": OutcomeModel(
            intercept=-0.49, latent_odds_ratios={"Lc": 1.4, "P": 1.2},
            direct_odds_ratios={"bmi_30_plus": 1.33, "manual_handling_occupation": 1.7, "long_sitting": 1.2},
            source="E28, E29 (weak latent links); E61 (BMI); E24 (lifting); E15 (sitting)",
            frequent_logit_offset=1.5),
        "shoulder_pain": OutcomeModel(
            intercept=-1.20, latent_odds_ratios={"A": 2.0},
            direct_odds_ratios={"unbalanced_lifting": 1.5},
            source="E51, E44 (A); push-dominant lifting = unbalanced strength training",
            frequent_logit_offset=1.5),
    })
    # table 3.3 signs a clinician would see; not questionnaire answers. Intercepts tuned to mid-range targets.
    clinical_signs: Mapping[str, OutcomeModel] = field(default_factory=lambda: {
        "rounded_shoulders": OutcomeModel(-0.13, {"U": 4.0}, {"exercise_swimming": 1.1}, "E31-E33; OR assumption"),
        "forward_head": OutcomeModel(-1.01, {"U": 3.0}, {"screen_hours": 1.1}, "E31, E32, E34; assumption"),
        "excessive_pelvic_tilt": OutcomeModel(-1.53, {"Lc": 2.5}, {}, "E36, E37; cut-off derived"),
        "tight_hamstrings": OutcomeModel(-0.99, {"P": 6.0}, {}, "E38; cut-off assumption"),
    })
    posture: PostureModel = field(default_factory=PostureModel)
    demographics: Demographics = field(default_factory=Demographics)
    occupations: Occupations = field(default_factory=Occupations)
    exercise: Exercise = field(default_factory=Exercise)
    stretching: Stretching = field(default_factory=Stretching)
    steps: Steps = field(default_factory=Steps)
    wearable: Wearable = field(default_factory=Wearable)
    top_factor: TopFactorRule = field(default_factory=TopFactorRule)
    missing_rate: float = 0.03  # per optional answer, MCAR: assumption
    blank_answer_draws: int = 64  # per person with a blank behaviour answer, for true_risk; AUC moves < 1e-4 vs 128
    submitted_between: tuple[str, str] = ("2025-01-01", "2026-01-01")  # reference period, end exclusive


DEFAULT = PopulationConfig()
