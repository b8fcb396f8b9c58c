"""Explanations: drivers (causes), signs (symptoms), missing answers, what-ifs, in bulk.

Drivers are ranked among causes only: pain and posture answers move the risk, but they are
consequences of imbalance, so they are reported apart as signs. Everything here is vectorised
over a batch; sentences for one person are built in `balanceit.models.narrative`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from balanceit.config import Settings
from balanceit.data.contract import PAIN_COLUMNS, QUESTIONNAIRE_COLUMNS
from balanceit.features.build import FEATURE_TEXT, OPTIONAL_ANSWERS
from balanceit.features.catalogue import BY_NAME, CATALOGUE, CAUSES, ModelInput, model_arrays
from balanceit.models.terms import AdditiveTerms, expit
from balanceit.models.whatif import WHAT_IFS, WhatIf

DRIVERS = 3
FEATURE_POSITIONS = {feature.name: position for position, feature in enumerate(CATALOGUE)}
CAUSE_POSITIONS = [FEATURE_POSITIONS[name] for name in CAUSES]
SIGN_ANSWERS = (*PAIN_COLUMNS, "posture_self_report")


def _distinct_texts(columns: Sequence[np.ndarray | pd.api.extensions.ExtensionArray],
                    format_row: Callable[..., str]) -> tuple[list[str], np.ndarray]:
    """`format_row(*values)` once per distinct combination of the columns' values, and each row's combination
    (a position in those texts). People share answers, so a million rows need a few thousand calls; one row (a
    scoring request) needs one call and no grouping. Columns stay as stored (Arrow text is grouped without a
    Python object per row); only the values of each combination's first row are read."""
    if len(columns[0]) == 1:
        return [format_row(*(column[0] for column in columns))], np.zeros(1, dtype=np.int64)
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes = pd.factorize(column, use_na_sentinel=False)[0]
        key = pd.factorize(key * (codes.max(initial=0) + 1) + codes)[0]
    # Combinations are numbered 0, 1, ... as they appear: each one's first row is where the key passes its maximum.
    first = np.flatnonzero(np.diff(np.maximum.accumulate(key), prepend=-1) > 0)
    return [format_row(*values) for values in zip(*(column[first] for column in columns))], key


def _text_column(texts: Sequence[str | None], positions: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Each row's text, `texts[position]` (-1: none), as the feature table's text: one take from the distinct
    texts, where pandas converting a column of Python strings took ~0.01 s per 100,000 rows."""
    return pd.array(list(texts), dtype=FEATURE_TEXT).take(positions, allow_fill=True)


def _answer(value: object) -> str | None:
    """An answer as a person wrote it: yes/no, whole numbers without a trailing .0; None when missing."""
    if value is None or value is pd.NA or value != value:  # NaN is the only value unequal to itself
        return None
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{round(float(value), 1)}".removesuffix(".0")
    return str(value)


def _answers_text(feature: str, answers: pd.DataFrame, features: pd.DataFrame,
                  rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """`column=value` pairs behind one catalogue feature for the selected rows, as distinct texts and each row's
    (see `_distinct_texts`); a wearable summary only where one was measured."""
    spec = BY_NAME[feature]
    asked = [name for name in spec.sources if name in QUESTIONNAIRE_COLUMNS]
    measured = [name for name in spec.column_names if name.startswith(("mean_", "share_"))]

    def pairs(*values: object) -> str:
        said = [f"{name}={_answer(value) or 'missing'}" for name, value in zip(asked, values)]
        worn = [f"wearable {name}={text}" for name, value in zip(measured, values[len(asked):])
                if (text := _answer(value)) is not None]
        return "; ".join(said + worn)

    # Only the selected rows: a feature drives a share of the people, not all.
    return _distinct_texts([frame[name].array[rows] for frame, names in ((answers, asked), (features, measured))
                            for name in names], pairs)


def _signs(*values: object) -> str:
    """Pain and posture answers that commonly come with muscle imbalance (see SIGN_ANSWERS)."""
    *pains, posture = values
    signs = [f"{pain} {column.replace('_', ' ')}" for column, pain in zip(PAIN_COLUMNS, pains)
             if _answer(pain) in ("occasional", "frequent")]
    return "; ".join(signs + (["poor posture (self-rated)"] if _answer(posture) == "poor" else []))


def not_asked_questions(answers: pd.DataFrame) -> tuple[str, ...]:
    """The optional questions a batch never asked, absent from its file or empty on every row: such a question
    says nothing about anyone in the batch, unlike one person's skipped answer."""
    return tuple(name for name in OPTIONAL_ANSWERS if name not in answers or answers[name].isna().all())


def unknown_features(not_asked: Sequence[str]) -> np.ndarray:
    """Catalogue features that any not-asked question feeds, or named not asked themselves (a kind of exercise a
    survey never offers): the model treats them as unknown."""
    return np.array([feature.name in not_asked or any(source in not_asked for source in feature.sources)
                     for feature in CATALOGUE])


def explain_batch(model: AdditiveTerms, answers: pd.DataFrame, features: pd.DataFrame,
                  settings: Settings, not_asked: Sequence[str] = ()) -> pd.DataFrame:
    """Risk, band, top drivers with their answers and logit contributions, signs, missing answers
    and what-ifs: one row per person. `answers` and `features` are aligned row for row.

    Features fed by a `not_asked` question (see `not_asked_questions`) are unknown: they add nothing,
    are never drivers, are not listed per person as missing, and what-ifs that change them do not apply.
    """
    X = model_arrays(features, coded=True)
    unknown = unknown_features(not_asked)
    terms = model.terms(X, unknown)
    contributions = model.contributions_from_terms(terms, unknown)
    logit = model.base_logit_ + contributions.sum(axis=1)
    risk = expit(logit)
    out = {
        "respondent_id": answers["respondent_id"].array,
        "submitted_at": answers["submitted_at"].to_numpy(),
        "risk": risk,
        "band": settings.bands(risk),
    }
    drivers, values = _rank_drivers(contributions, X, unknown)
    texts = _driver_answers(drivers, answers, features)
    for rank in range(DRIVERS):
        out[f"driver_{rank + 1}"] = _text_column(CAUSES, drivers[:, rank])
        out[f"driver_{rank + 1}_answers"] = texts[rank]
        out[f"driver_{rank + 1}_contribution"] = values[:, rank]
    out["signs"] = _text_column(*_distinct_texts([answers[name].array for name in SIGN_ANSWERS], _signs))
    asked = [name for name in OPTIONAL_ANSWERS if name not in not_asked]
    missing = [pd.isna(answers[name].array) for name in asked]
    out["missing_answers"] = (
        _text_column(*_distinct_texts(missing, lambda *flags: ";".join(np.array(asked)[list(flags)])))
        if missing else _text_column([""], np.zeros(len(answers), dtype=np.int64)))
    for what_if in WHAT_IFS:
        out[f"whatif_{what_if.name}"] = _what_if_risk(model, what_if, X, terms, unknown)
    return pd.DataFrame(out, index=answers.index)  # built once: adding columns one by one costs ~0.1 ms each


def _rank_drivers(contributions: np.ndarray, X: ModelInput,
                  unknown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (up to) three causes raising each person's risk most: positions in CAUSES (-1 past the last) and
    values; numbers, as comparing names per row and feature cost more than the explanation text."""
    causes = contributions[:, CAUSE_POSITIONS]
    # A feature whose answers are all missing is named under missing answers, never as a driver; one
    # the batch was not asked about is listed once per batch.
    answered = np.column_stack([
        np.logical_or.reduce([~pd.isna(X[column]) for column in BY_NAME[name].column_names]) for name in CAUSES
    ]) & ~unknown[CAUSE_POSITIONS]
    causes = np.where(answered, causes, -np.inf)
    order = np.argsort(-causes, axis=1)[:, :DRIVERS]
    top = np.take_along_axis(causes, order, axis=1)
    is_driver = top > 0
    return np.where(is_driver, order, -1), np.where(is_driver, top, np.nan)


def _driver_answers(drivers: np.ndarray, answers: pd.DataFrame,
                    features: pd.DataFrame) -> list[pd.api.extensions.ExtensionArray]:
    """The answers behind every driver (positions in CAUSES, -1 for none), one column per rank: built once per
    feature for the people it drives, and once per combination of their answers."""
    texts: list[str] = []
    # Rank-major: "at any rank" ORs three contiguous rows; reducing across each person's three ranks was slow.
    by_rank = np.ascontiguousarray(drivers.T)
    positions = np.full(by_rank.shape, -1, dtype=np.int64)
    for cause in np.unique(by_rank[by_rank >= 0]):
        is_feature = by_rank == cause
        rows = np.logical_or.reduce(is_feature)
        distinct, key = _answers_text(CAUSES[cause], answers, features, rows)
        selected = np.cumsum(rows) - 1  # a row's place among the selected rows
        for rank, chosen in enumerate(is_feature):
            positions[rank, chosen] = len(texts) + key[selected[chosen]]
        texts += distinct
    return [_text_column(texts, ranked) for ranked in positions]


def _what_if_risk(model: AdditiveTerms, what_if: WhatIf, X: ModelInput, terms: np.ndarray,
                  unknown: np.ndarray) -> np.ndarray:
    """Risk after one what-if, for the people it applies to (NaN for the rest, and for everyone when it
    changes a feature the batch was not asked about): only the terms of the features it touches are
    computed again."""
    if any(unknown[FEATURE_POSITIONS[feature]] for feature in what_if.touches):
        return np.full(len(terms), np.nan)
    changed = {**X, **what_if.change(X)}
    changed_terms = terms.copy()
    for feature in what_if.touches:
        changed_terms[:, FEATURE_POSITIONS[feature]] = model.feature_term(changed, FEATURE_POSITIONS[feature])
    return np.where(what_if.applies(X), expit(model.logit_from_terms(changed_terms, unknown)), np.nan)
