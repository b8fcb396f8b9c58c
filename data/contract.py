"""The input contract (shared/reference/input-contract.md) as data.

Validation, the synthetic generator and the features all read these constants, so a change
to the contract is made here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["text", "datetime", "integer", "number", "category", "multi", "boolean", "date"]


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    required: bool = False
    low: float | None = None
    high: float | None = None
    allowed: tuple[str, ...] = ()
    low_exclusive: bool = False  # the value must be above `low`, not equal to it
    required_if_present: bool = False  # optional column, but when a file has it every row needs a value


SEX = ("female", "male", "other", "unknown")
OCCUPATIONS = ("desk", "standing", "manual", "driving", "student", "retired", "other")
EXERCISE_TYPES = ("walking", "running", "cycling", "swimming", "weightlifting", "yoga", "pilates", "team_sports",
                  "racket_sports", "other", "none")
STRENGTH_TRAINING = ("none", "balanced", "unbalanced")
POSTURE = ("good", "fair", "poor")
PAIN = ("none", "occasional", "frequent")
PAIN_COLUMNS = ("back_pain", "neck_pain", "shoulder_pain")

RESPONDENT_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
EXERCISE_SEPARATORS = r"[;|]"
CHOICE_JOINER = ";"  # a multi answer's canonical form: its choices, sorted, joined by this
TRUE_SPELLINGS = ("yes", "true", "1")
FALSE_SPELLINGS = ("no", "false", "0")

QUESTIONNAIRE: tuple[ColumnSpec, ...] = (
    ColumnSpec("respondent_id", "text", required=True),
    ColumnSpec("submitted_at", "datetime", required=True),
    ColumnSpec("age", "integer", required=True, low=16, high=100),
    ColumnSpec("sex", "category", required=True, allowed=SEX),
    ColumnSpec("height_cm", "number", low=120, high=230),
    ColumnSpec("weight_kg", "number", low=30, high=300),
    ColumnSpec("occupation", "category", allowed=OCCUPATIONS),
    ColumnSpec("sitting_hours_per_day", "number", required=True, low=0, high=24),
    ColumnSpec("standing_hours_per_day", "number", low=0, high=24),
    ColumnSpec("screen_hours_per_day", "number", low=0, high=24),
    ColumnSpec("movement_breaks_per_day", "integer", low=0, high=48),
    ColumnSpec("exercise_types", "multi", allowed=EXERCISE_TYPES),
    ColumnSpec("exercise_days_per_week", "integer", low=0, high=7),
    ColumnSpec("exercise_minutes_per_session", "integer", low=0, high=600),
    ColumnSpec("strength_training", "category", allowed=STRENGTH_TRAINING),
    ColumnSpec("stretching_days_per_week", "integer", low=0, high=7),
    ColumnSpec("stretches_before_exercise", "boolean"),
    ColumnSpec("stretches_after_exercise", "boolean"),
    ColumnSpec("posture_self_report", "category", allowed=POSTURE),
    ColumnSpec("back_pain", "category", allowed=PAIN),
    ColumnSpec("neck_pain", "category", allowed=PAIN),
    ColumnSpec("shoulder_pain", "category", allowed=PAIN),
    ColumnSpec("imbalance", "boolean"),
    ColumnSpec("survey_weight", "number", low=0, low_exclusive=True, required_if_present=True),
    ColumnSpec("survey_stratum", "text"),
    ColumnSpec("survey_psu", "text"),
)
QUESTIONNAIRE_COLUMNS = tuple(c.name for c in QUESTIONNAIRE)
QUESTIONNAIRE_SPECS = {c.name: c for c in QUESTIONNAIRE}
QUESTIONNAIRE_KEY = ("respondent_id", "submitted_at")
LABEL = "imbalance"
# What a person answers: not the clinician's label, nor a survey's design columns.
ANSWER_COLUMNS = tuple(c for c in QUESTIONNAIRE_COLUMNS if c != LABEL and not c.startswith("survey_"))
OPTIONAL_ANSWERS = tuple(c.name for c in QUESTIONNAIRE if c.name in ANSWER_COLUMNS and not c.required)
# Section 3: NHANES's PAQ asks about walking or cycling (mapped to walking) and recreation (other), no other kind:
# that nobody there reports yoga says nothing about yoga. These kinds' features (as the catalogue names them) are
# unknown for an NHANES batch.
NHANES_NOT_ASKED_EXERCISES = tuple(f"exercise_{kind}" for kind in EXERCISE_TYPES
                                   if kind not in ("walking", "other", "weightlifting", "none"))

ACTIVITY: tuple[ColumnSpec, ...] = (
    ColumnSpec("respondent_id", "text", required=True),
    ColumnSpec("date", "date", required=True),
    ColumnSpec("steps", "integer", required=True, low=0),
    ColumnSpec("sedentary_minutes", "integer", required=True, low=0, high=1440),
    ColumnSpec("lightly_active_minutes", "integer", required=True, low=0, high=1440),
    ColumnSpec("fairly_active_minutes", "integer", required=True, low=0, high=1440),
    ColumnSpec("very_active_minutes", "integer", required=True, low=0, high=1440),
    ColumnSpec("calories", "integer", low=0),
)
ACTIVITY_COLUMNS = tuple(c.name for c in ACTIVITY)
ACTIVITY_KEY = ("respondent_id", "date")
MINUTES_PER_DAY = 1440

# The Fitbit export `dailyActivity_merged.csv`, accepted unchanged (contract section 2): its names (lowercased)
# are the canonical ones without underscores, but for the key and the steps.
FITBIT_DAILY_ACTIVITY = {"id": "respondent_id", "activitydate": "date", "totalsteps": "steps", **{
    name.replace("_", ""): name for name in ACTIVITY_COLUMNS if name not in ("respondent_id", "date", "steps")}}


def is_non_wear_day(steps, sedentary_minutes):
    """A day with no steps and a full day sedentary: the device was not worn (kept raw, not a feature)."""
    return (steps == 0) & (sedentary_minutes >= MINUTES_PER_DAY)


# What scoring writes: the ranks of the drivers each person gets, the output file's leading columns, and
# the scores table's columns (drivers included) and key.
DRIVER_RANKS = (1, 2, 3)
OUTPUT_COLUMNS = ("respondent_id", "submitted_at", "risk", "band", "model_version",
                  *(f"driver_{rank}{part}" for rank in DRIVER_RANKS for part in ("", "_answers")),
                  "signs", "missing_answers")
SCORE_COLUMNS = ["respondent_id", "submitted_at", "batch_id", "model_version", "risk", "band", "scored_at",
                 *(f"driver_{rank}{part}" for rank in DRIVER_RANKS for part in ("", "_contribution", "_answers"))]
SCORE_KEY = ("respondent_id", "submitted_at", "model_version")
