"""Explanations: drivers (causes), signs (symptoms), missing answers, what-ifs, in bulk.

Drivers are ranked among causes only: pain and posture answers move the risk, but they are
consequences of imbalance, so they are reported apart as signs. Everything here is vectorised
over a batch; sentences for one person are built in `balanceit.models.narrative`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from balanceit.config import Settings
from balanceit.data.contract import PAIN_COLUMNS, QUESTIONNAIRE_COLUMNS
from balanceit.features.build import OPTIONAL_ANSWERS
from balanceit.features.catalogue import BY_NAME, CAUSES, model_column, model_input
from balanceit.models.additive import AdditiveRiskModel, expit
from balanceit.models.whatif import WHAT_IFS

DRIVERS = 3


def _as_text(values: pd.Series) -> pd.Series:
    """Answers as a person wrote them: yes/no, whole numbers without a trailing .0."""
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "yes", False: "no"}).astype("string")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float).round(1).astype("string").str.removesuffix(".0")
    return values.astype("string")


def _answers_text(feature: str, answers: pd.DataFrame, features: pd.DataFrame) -> pd.Series:
    """`column=value` pairs behind one catalogue feature, for every row."""
    spec = BY_NAME[feature]
    parts = [
        (name + "=" + _as_text(answers[name]).fillna("missing"))
        for name in spec.sources if name in QUESTIONNAIRE_COLUMNS
    ]
    parts += [
        ("wearable " + name + "=" + _as_text(features[name])).fillna("")
        for name in spec.column_names if name.startswith(("mean_", "share_"))
    ]
    text = parts[0]
    for part in parts[1:]:
        text = text.str.cat(part, sep="; ").str.rstrip("; ")
    return text


def _signs_text(answers: pd.DataFrame) -> pd.Series:
    """Pain and posture answers that commonly come with muscle imbalance."""
    pieces = [
        pd.Series(np.where(answers[column].isin(["occasional", "frequent"]).fillna(False).to_numpy(dtype=bool),
                           answers[column].astype("string") + " " + column.replace("_", " "), ""),
                  index=answers.index)
        for column in PAIN_COLUMNS
    ]
    pieces.append(pd.Series(np.where(answers["posture_self_report"].eq("poor").fillna(False).to_numpy(dtype=bool), "poor posture (self-rated)", ""),
                            index=answers.index))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = joined.str.cat(piece, sep="; ")
    return joined.str.replace(r"(; )+", "; ", regex=True).str.strip("; ")


def _missing_text(answers: pd.DataFrame) -> pd.Series:
    missing = answers[list(OPTIONAL_ANSWERS)].isna()
    names = np.array(OPTIONAL_ANSWERS, dtype=object)
    return pd.Series([";".join(names[row]) for row in missing.to_numpy()], index=answers.index)


def explain_batch(model: AdditiveRiskModel, answers: pd.DataFrame, features: pd.DataFrame,
                  settings: Settings) -> pd.DataFrame:
    """Risk, band, top drivers with their answers and logit contributions, signs, missing answers
    and what-ifs: one row per person. `answers` and `features` are aligned row for row.
    """
    X = model_input(features)
    contributions = model.contributions(X)
    logit = model.base_logit_ + contributions.sum(axis=1).to_numpy()
    risk = expit(logit)
    causes = contributions[list(CAUSES)].to_numpy()
    # A feature whose answers are all missing is named under missing answers, never as a driver.
    answered = np.column_stack([features[list(BY_NAME[name].column_names)].notna().any(axis=1).to_numpy()
                                for name in CAUSES])
    causes = np.where(answered, causes, -np.inf)
    order = np.argsort(-causes, axis=1)[:, :DRIVERS]
    top_values = np.take_along_axis(causes, order, axis=1)
    cause_names = np.array(CAUSES, dtype=object)

    out = pd.DataFrame({
        "respondent_id": answers["respondent_id"].to_numpy(),
        "submitted_at": answers["submitted_at"].to_numpy(),
        "risk": risk,
        "band": np.where(risk < settings.low_band_below, "low",
                         np.where(risk >= settings.high_band_from, "high", "moderate")),
    }, index=answers.index)
    for rank in range(DRIVERS):
        is_driver = top_values[:, rank] > 0
        names = np.where(is_driver, cause_names[order[:, rank]], None)
        out[f"driver_{rank + 1}"] = names
        answers_text = pd.Series(None, index=answers.index, dtype="string")
        for feature in pd.unique(names[is_driver]):
            rows = names == feature
            answers_text[rows] = _answers_text(feature, answers[rows], features[rows])
        out[f"driver_{rank + 1}_answers"] = answers_text
        out[f"driver_{rank + 1}_contribution"] = np.where(is_driver, top_values[:, rank], np.nan)
    out["signs"] = _signs_text(answers)
    out["missing_answers"] = _missing_text(answers)

    for what_if in WHAT_IFS:
        applies = what_if.applies(features).fillna(False).to_numpy(dtype=bool)
        changed = X.copy()
        edits = what_if.change(features)
        for column in edits.columns:
            changed[column] = model_column(column, edits[column])
        new_logit = logit.copy()
        for feature in what_if.touches:
            new_logit += model.feature_contribution(changed, feature) - contributions[feature].to_numpy()
        out[f"whatif_{what_if.name}"] = np.where(applies, expit(new_logit), np.nan)

    return out
