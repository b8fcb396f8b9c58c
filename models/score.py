"""Scoring: features, risk and explanations for one batch (one partition in, one frame out)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from balanceit.config import Settings
from balanceit.data.contract import ANSWER_COLUMNS, QUESTIONNAIRE_KEY
from balanceit.data.partitions import Partition, write_atomically
from balanceit.data.readers import TEXT, normalise_column_names
from balanceit.features.build import OPTIONAL_ANSWERS, answers_and_features
from balanceit.models.terms import AdditiveTerms
from balanceit.models.explain import explain_batch, not_asked_questions

EXPLAIN_SLICE_ROWS = 50_000  # large enough that per-call overheads vanish, small enough to bound memory


def request_rows(answers: pd.DataFrame) -> pd.DataFrame:
    """Canonical answers written back as the text a survey export holds (the pyfunc's input form)."""
    out = pd.DataFrame(index=answers.index)
    for column in ANSWER_COLUMNS:
        values = answers[column]
        if column == "submitted_at":
            text = pd.to_datetime(values).dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif pd.api.types.is_bool_dtype(values):
            text = values.map({True: "yes", False: "no"})
        else:
            text = values.astype("string")
        out[column] = text.astype(object).where(values.notna(), None)
    return out.reset_index(drop=True)


def _features_and_scores(model: AdditiveTerms, answers: pd.DataFrame, activity: pd.DataFrame | None,
                         settings: Settings, not_asked: tuple[str, ...] | None = None,
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The answers aligned to the features, the features, and the scores, row for row. Questions nobody
    answered are not asked, unless `not_asked` says which are."""
    aligned, features = answers_and_features(answers, activity, settings.activity_window_days)
    not_asked = not_asked_questions(answers) if not_asked is None else not_asked
    return aligned, features, _scores(model, aligned, features, settings, not_asked)


def _scores(model: AdditiveTerms, aligned: pd.DataFrame, features: pd.DataFrame, settings: Settings,
            not_asked: tuple[str, ...]) -> pd.DataFrame:
    """Explanations slice by slice, so a large batch's model input and contributions never exist for all rows
    at once."""
    starts = range(0, max(len(features), 1), EXPLAIN_SLICE_ROWS)
    return pd.concat([explain_batch(model, aligned.iloc[start:start + EXPLAIN_SLICE_ROWS],
                                    features.iloc[start:start + EXPLAIN_SLICE_ROWS], settings, not_asked)
                      for start in starts], ignore_index=True)


def score_frames(model: AdditiveTerms, answers: pd.DataFrame, activity: pd.DataFrame | None,
                 settings: Settings) -> pd.DataFrame:
    """Score validated answers (and optional activity) without a warehouse."""
    return _features_and_scores(model, answers, activity, settings)[2]


def score_partition(partition: Partition, model: AdditiveTerms, version: str,
                    settings: Settings) -> Partition:
    """One partition in, its features and scores out; one whose results exist (a rerun) is not scored again."""
    if partition.done:
        return partition
    answers, activity = partition.inputs()
    aligned, features = answers_and_features(answers, activity, settings.activity_window_days)
    # Arrow writes Parquet without holding the GIL: the features file is written on a second core while the
    # scores are computed (~0.05 s less per 100,000 rows).
    with ThreadPoolExecutor(1) as writer:
        features_written = writer.submit(write_atomically, features, partition.features)
        scored = _scores(model, aligned, features, settings, partition.not_asked)
        write_atomically(scored.assign(model_version=version), partition.scored)
        features_written.result()
    return partition


def score_raw_rows(model: AdditiveTerms, raw: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Score rows as a survey platform sends them (text, JSON numbers or booleans: validation reads text);
    a bad row gets `error` (column and rule) instead of a risk."""
    from balanceit.data.validation import FileRefused, validate_questionnaire

    row_numbers = np.arange(1, len(raw) + 1)
    try:
        checked = validate_questionnaire(raw, source="request")
    except FileRefused as refused:
        # The request as a whole cannot be read (a required column missing): every row sent gets the reason.
        unscored = pd.array([None] * len(raw), dtype=TEXT)
        return pd.DataFrame({"respondent_id": unscored, "submitted_at": unscored, "risk": np.nan, "band": unscored,
                             "error": refused.problem}, index=pd.RangeIndex(len(raw)))
    # A request's own columns say what was asked: a blank in a column it sent is one person's skip.
    sent = normalise_column_names(raw, "request")
    not_asked = tuple(name for name in OPTIONAL_ANSWERS if name not in sent)
    aligned, _, scored = _features_and_scores(model, checked.accepted, None, settings, not_asked)
    placed = aligned["row_number"].to_numpy()
    result = scored if np.array_equal(placed, row_numbers) else scored.set_axis(placed).reindex(row_numbers)
    quarantined = checked.quarantined
    if quarantined.empty:  # the usual request: every row scored, no error to place
        errors = pd.array([None] * len(row_numbers), dtype=TEXT)
    else:
        problems = quarantined["column"] + ": " + quarantined["rule"]
        errors = problems.groupby(quarantined["row_number"].to_numpy()).agg("; ".join).reindex(row_numbers).array
    result = result.assign(**{key: result[key].astype(TEXT) for key in QUESTIONNAIRE_KEY}, error=errors)
    result = result.reset_index(drop=True)
    scored_rows = np.isin(row_numbers, placed)
    if scored_rows.all():
        return result
    # An unscored row keeps respondent_id and submitted_at as sent: the caller can tell whose error it is.
    return result.assign(**{key: result[key].where(scored_rows, sent[key].astype(TEXT).array)
                            for key in QUESTIONNAIRE_KEY if key in sent})
