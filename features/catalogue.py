"""The feature catalogue: every feature the model sees, named and explained once.

A feature may span several columns of the feature table (reported sitting and the wearable's sedentary
time are one "sitting" feature), so an explanation sums per feature and points back at its answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from balanceit.data.contract import EXERCISE_TYPES, PAIN_COLUMNS

Role = Literal["cause", "sign"]
Encoding = Literal["numeric", "category"]
# Model columns by name: what the model reads, a frame or the arrays of `model_arrays`.
ModelInput = Mapping[str, "np.ndarray | pd.Series | pd.Categorical"]


@dataclass(frozen=True)
class FeatureColumn:
    """One column of the feature table and how the model encodes it."""

    name: str
    encoding: Encoding


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    description: str
    role: Role
    sources: tuple[str, ...]
    columns: tuple[FeatureColumn, ...]
    modifiable: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _num(*names: str) -> tuple[FeatureColumn, ...]:
    return tuple(FeatureColumn(n, "numeric") for n in names)


def _cat(*names: str) -> tuple[FeatureColumn, ...]:
    return tuple(FeatureColumn(n, "category") for n in names)


# Every exercise a feature of its own, but weightlifting (part of strength training) and "none".
MODELLED_EXERCISES = tuple(kind for kind in EXERCISE_TYPES if kind not in ("weightlifting", "none"))

_EXERCISE_LABELS = {kind: kind.replace("_", " ").capitalize() for kind in MODELLED_EXERCISES}
_EXERCISE_LABELS["other"] = "Other exercise"

CATALOGUE: tuple[Feature, ...] = (
    Feature("sitting_hours", "Sitting time",
            "Hours a day spent sitting, as reported and, where a wearable was worn, as measured.",
            "cause", ("sitting_hours_per_day", "sedentary_minutes"),
            _num("sitting_hours", "mean_sedentary_hours", "share_days_sedentary_over_10h"),
            modifiable=True),
    Feature("standing_hours", "Standing time", "Hours a day spent standing.",
            "cause", ("standing_hours_per_day",), _num("standing_hours")),
    Feature("screen_hours", "Screen time", "Hours a day in front of a screen.",
            "cause", ("screen_hours_per_day",), _num("screen_hours"), modifiable=True),
    Feature("movement_breaks", "Movement breaks",
            "How often a day you get up and move, also relative to the hours you sit.",
            "cause", ("movement_breaks_per_day", "sitting_hours_per_day"),
            _num("movement_breaks", "breaks_per_sitting_hour"), modifiable=True),
    Feature("occupation", "Work posture", "The posture load of your main occupation.",
            "cause", ("occupation",), _cat("occupation")),
    Feature("daily_steps", "Daily steps",
            "Steps and active minutes a day, measured by a wearable over the 4 weeks before the survey.",
            "cause", ("steps", "fairly_active_minutes", "very_active_minutes", "lightly_active_minutes"),
            _num("mean_steps", "mean_active_minutes", "mean_light_minutes")),
    *(
        Feature(f"exercise_{kind}", _EXERCISE_LABELS[kind],
                f"Whether {_EXERCISE_LABELS[kind].lower()} is one of your regular activities.",
                "cause", ("exercise_types",), _cat(f"ex_{kind}"), modifiable=True)
        for kind in MODELLED_EXERCISES
    ),
    Feature("exercise_volume", "Exercise volume", "Exercise days a week times minutes a session.",
            "cause", ("exercise_days_per_week", "exercise_minutes_per_session"),
            _num("exercise_volume_minutes"), modifiable=True),
    Feature("strength_training", "Strength-training balance",
            "Whether you train with weights, and whether you train opposing muscles alike "
            "(pushing and pulling, biceps and triceps).",
            "cause", ("strength_training", "exercise_types"),
            _cat("strength_training", "ex_weightlifting"), modifiable=True),
    Feature("stretching", "Stretching habit",
            "Days a week you stretch, and whether you stretch around exercise.",
            "cause", ("stretching_days_per_week", "stretches_before_exercise", "stretches_after_exercise"),
            (*_num("stretching_days"), *_cat("stretches_before", "stretches_after")), modifiable=True),
    Feature("age", "Age", "Your age in years.", "cause", ("age",), _num("age")),
    Feature("sex", "Sex", "Your sex.", "cause", ("sex",), _cat("sex")),
    Feature("bmi", "Body size", "Body-mass index from your height and weight.",
            "cause", ("height_cm", "weight_kg"), _num("bmi")),
    Feature("posture", "Self-rated posture", "How you rate your own posture.",
            "sign", ("posture_self_report",), _cat("posture")),
    *(
        Feature(pain, pain.replace("_", " ").capitalize(), f"How often you have {pain.replace('_', ' ')}.",
                "sign", (pain,), _cat(pain))
        for pain in PAIN_COLUMNS
    ),
)

BY_NAME: dict[str, Feature] = {f.name: f for f in CATALOGUE}
# Words for the columns of features that span several, so a report can name one column (drift);
# a single-column feature's column is called by the feature's label.
_COLUMN_LABELS = {
    "sitting_hours": "Sitting hours a day (reported)",
    "mean_sedentary_hours": "Sedentary hours a day (wearable)",
    "share_days_sedentary_over_10h": "Days sedentary over 10 hours (wearable)",
    "movement_breaks": "Movement breaks a day",
    "breaks_per_sitting_hour": "Movement breaks per hour of sitting",
    "mean_steps": "Steps a day (wearable)",
    "mean_active_minutes": "Active minutes a day (wearable)",
    "mean_light_minutes": "Lightly active minutes a day (wearable)",
    "strength_training": "Strength training: none, balanced or unbalanced",
    "ex_weightlifting": "Weightlifting as a regular activity",
    "stretching_days": "Stretching days a week",
    "stretches_before": "Stretches before exercise",
    "stretches_after": "Stretches after exercise",
}
COLUMN_LABELS: dict[str, str] = {
    column: _COLUMN_LABELS[column] if len(feature.columns) > 1 else feature.label
    for feature in CATALOGUE for column in feature.column_names
}
CAUSES: tuple[str, ...] = tuple(f.name for f in CATALOGUE if f.role == "cause")
SIGNS: tuple[str, ...] = tuple(f.name for f in CATALOGUE if f.role == "sign")


def model_columns() -> list[FeatureColumn]:
    """Every feature-table column the model sees, in catalogue order."""
    return [column for feature in CATALOGUE for column in feature.columns]


def model_arrays(features: pd.DataFrame, coded: bool = False) -> ModelInput:
    """Every model column as a NumPy array (categories as text or None, numbers as floats): explanations
    read these, as a frame per request would cost more than the model. `coded` gives categories as
    `pd.Categorical` instead, which the additive model reads without hashing every row's label again."""
    return {c.name: model_column(c, features[c.name], coded) for c in model_columns()}


def model_input(features: pd.DataFrame) -> pd.DataFrame:
    """`model_arrays` as a frame: the one form every candidate model takes."""
    return pd.DataFrame(model_arrays(features), index=features.index)


def model_column(column: FeatureColumn, values: pd.Series, coded: bool = False) -> np.ndarray | pd.Categorical:
    """One feature-table column in model form (see `model_arrays`); whole numbers become "0", "1", ..."""
    if column.encoding == "numeric":
        if pd.api.types.is_float_dtype(values.dtype):  # most are: no conversion to pay for, per request
            return values.to_numpy(dtype=float, na_value=np.nan)
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # A label per distinct value, not per row (missing is code -1: None, last); rows share the label objects.
    codes, labels = pd.factorize(values)
    labels = np.asarray(labels, dtype="int64").astype(str) if pd.api.types.is_integer_dtype(values) else labels
    if coded:
        return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))
    return np.append(np.asarray(labels, dtype=object), None)[codes]
