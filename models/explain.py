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


def _as_text(values: np.ndarray) -> pd.Series:
    """Answers as a person wrote them: yes/no, whole numbers without a trailing .0."""
    values = pd.Series(values)
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "yes", False: "no"}).astype("string")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float).round(1).astype("string").str.removesuffix(".0")
    return values.astype("string")


def _answers_text(feature: str, answers: pd.DataFrame, features: pd.DataFrame, rows: np.ndarray) -> pd.Series:
    """`column=value` pairs behind one catalogue feature, for the selected rows."""
    spec = BY_NAME[feature]
    parts = [
        (name + "=" + _as_text(answers[name].to_numpy()[rows]).fillna("missing"))
        for name in spec.sources if name in QUESTIONNAIRE_COLUMNS
    ]
    parts += [
        ("wearable " + name + "=" + _as_text(features[name].to_numpy()[rows])).fillna("")
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
    logit = model.base_logit_ + contributions.to_numpy().sum(axis=1)
    risk = expit(logit)
    out = pd.DataFrame({
        "respondent_id": answers["respondent_id"].to_numpy(),
        "submitted_at": answers["submitted_at"].to_numpy(),
        "risk": risk,
        "band": np.where(risk < settings.low_band_below, "low",
                         np.where(risk >= settings.high_band_from, "high", "moderate")),
    }, index=answers.index)
    names, values = _rank_drivers(contributions, features)
    texts = _driver_answers(names, answers, features)
    for rank in range(DRIVERS):
        out[f"driver_{rank + 1}"] = names[:, rank]
        out[f"driver_{rank + 1}_answers"] = texts[:, rank]
        out[f"driver_{rank + 1}_contribution"] = values[:, rank]
    out["signs"] = _signs_text(answers)
    out["missing_answers"] = _missing_text(answers)
    for what_if in WHAT_IFS:
        out[f"whatif_{what_if.name}"] = _what_if_risk(model, what_if, X, features, contributions, logit)
    return out


def _rank_drivers(contributions: pd.DataFrame, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The (up to) three causes raising each person's risk most: names (None past the last) and values."""
    causes = contributions[list(CAUSES)].to_numpy()
    # A feature whose answers are all missing is named under missing answers, never as a driver.
    present = features.notna().to_numpy()
    answered = np.column_stack([present[:, features.columns.get_indexer(BY_NAME[name].column_names)].any(axis=1)
                                for name in CAUSES])
    causes = np.where(answered, causes, -np.inf)
    order = np.argsort(-causes, axis=1)[:, :DRIVERS]
    top = np.take_along_axis(causes, order, axis=1)
    is_driver = top > 0
    names = np.where(is_driver, np.array(CAUSES, dtype=object)[order], None)
    return names, np.where(is_driver, top, np.nan)


def _driver_answers(names: np.ndarray, answers: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    """The answers behind every driver, built once per feature for the people it drives."""
    texts = np.full(names.shape, None, dtype=object)
    for feature in pd.unique(names[names != None].ravel()):  # noqa: E711 - element-wise
        is_feature = names == feature
        rows = is_feature.any(axis=1)
        text = _answers_text(feature, answers, features, rows).to_numpy(dtype=object)
        position = np.cumsum(rows) - 1
        for rank in range(names.shape[1]):
            chosen = is_feature[:, rank]
            texts[chosen, rank] = text[position[chosen]]
    return texts


def _what_if_risk(model: AdditiveRiskModel, what_if, X: pd.DataFrame, features: pd.DataFrame,
                  contributions: pd.DataFrame, logit: np.ndarray) -> np.ndarray:
    """Risk after one what-if, for the people it applies to (NaN for the rest)."""
    applies = what_if.applies(features).fillna(False).to_numpy(dtype=bool)
    columns = [c for feature in what_if.touches for c in BY_NAME[feature].column_names]
    changed = X[columns].copy()
    for column, values in what_if.change(features).items():
        changed[column] = model_column(column, values)
    new_logit = logit.copy()
    for feature in what_if.touches:
        new_logit += model.feature_contribution(changed, feature) - contributions[feature].to_numpy()
    return np.where(applies, expit(new_logit), np.nan)
