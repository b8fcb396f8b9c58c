"""Labels with history, the promotion gate's fixed reference set, and label sanity checks.

One wrong file must not take the champion or erase good labels: every ingestion's labels are kept, and
the reference set keeps each champion's held-out rows with their labels frozen, so the gate never judges
a candidate only on rows cut from the file it learnt from.
"""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd

from balanceit.config import Settings
from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.warehouse import registered

# The strongest known associations (domain evidence E14, E15, E22, E53, E54): more sitting goes with
# more imbalance, more stretching with less. A label column that reverses them is not trusted.
KNOWN_DIRECTIONS = {"sitting_hours_per_day": +1, "stretching_days_per_week": -1}

_KEY_MATCH = " AND ".join(f"t.{k} = f.{k}" for k in QUESTIONNAIRE_KEY)


def label_conflicts(con: duckdb.DuckDBPyConnection, accepted: pd.DataFrame) -> pd.DataFrame:
    """Keys of `accepted` that the warehouse already holds with the opposite label."""
    if LABEL not in accepted:
        return pd.DataFrame(columns=[*QUESTIONNAIRE_KEY, LABEL, "ingestion_id"])
    with registered(con, "_incoming", accepted[[*QUESTIONNAIRE_KEY, LABEL]]):
        return con.execute(f"""
            SELECT t.respondent_id, t.submitted_at, t.imbalance, t.ingestion_id
            FROM questionnaire t JOIN _incoming f ON {_KEY_MATCH}
            WHERE t.imbalance IS NOT NULL AND f.imbalance IS NOT NULL AND t.imbalance <> f.imbalance
            ORDER BY t.respondent_id, t.submitted_at""").df()


def record_labels(con: duckdb.DuckDBPyConnection, accepted: pd.DataFrame, ingestion_id: str) -> None:
    """Keep the labels this ingestion gave (again, when it is re-loaded: never twice)."""
    con.execute("DELETE FROM label_history WHERE ingestion_id = ?", [ingestion_id])
    if LABEL not in accepted:
        return
    with registered(con, "_labels", accepted[[*QUESTIONNAIRE_KEY, LABEL]]):
        con.execute("INSERT INTO label_history SELECT respondent_id, submitted_at, imbalance, ? "
                    "FROM _labels WHERE imbalance IS NOT NULL", [ingestion_id])


def restore_labels(con: duckdb.DuckDBPyConnection, ingestion_id: str) -> int:
    """Make one ingestion's labels current again (the training view of the model trained on it)."""
    return con.execute(f"""
        UPDATE questionnaire t SET imbalance = f.imbalance FROM label_history f
        WHERE f.ingestion_id = ? AND {_KEY_MATCH} AND t.imbalance IS DISTINCT FROM f.imbalance""",
                       [ingestion_id]).fetchone()[0]


def add_to_reference_set(con: duckdb.DuckDBPyConnection, keys_and_labels: pd.DataFrame, model_version: str,
                         ingestion_id: str | None) -> int:
    """Add a new champion's held-out rows; a key already in the set keeps its first, verified label."""
    with registered(con, "_held_out", keys_and_labels[[*QUESTIONNAIRE_KEY, LABEL]]):
        return con.execute(f"""
            INSERT INTO reference_set
            SELECT f.respondent_id, f.submitted_at, f.imbalance, ?, ?, ?
            FROM _held_out f
            WHERE NOT EXISTS (SELECT 1 FROM reference_set t WHERE {_KEY_MATCH})""",
                           [model_version, ingestion_id, datetime.now(timezone.utc).replace(tzinfo=None)]).fetchone()[0]


def reference_answers(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The reference rows' answers as the warehouse holds them, with the labels frozen in the set."""
    return con.execute(f"""
        SELECT t.* EXCLUDE (imbalance), f.imbalance
        FROM questionnaire t JOIN reference_set f ON {_KEY_MATCH}
        ORDER BY t.respondent_id, t.submitted_at""").df()


def label_problems(answers: pd.DataFrame, reference: pd.DataFrame, settings: Settings) -> list[str]:
    """Why these labels cannot be trusted for training (empty when they can): a label rate off the reference
    set's, or a known association reversed beyond the limit and three standard errors (1/sqrt(n))."""
    labels = _numbers(answers[LABEL])
    problems = []
    if len(reference):
        rate, reference_rate = float(labels.mean()), float(reference[LABEL].astype(float).mean())
        if abs(rate - reference_rate) > settings.label_rate_tolerance:
            problems.append(f"label rate {rate:.3f} differs from the reference set's {reference_rate:.3f} by more "
                            f"than {settings.label_rate_tolerance} (BALANCEIT_LABEL_RATE_TOLERANCE)")
    for column, direction in KNOWN_DIRECTIONS.items():
        values = _numbers(answers[column])
        answered = ~np.isnan(values)
        values, answered_labels = values[answered], labels[answered]
        if len(values) < 3 or values.std() == 0 or answered_labels.std() == 0:
            continue  # no correlation to judge
        correlation = float(np.corrcoef(values, answered_labels)[0, 1])
        limit = max(settings.label_contradiction_correlation, 3 / np.sqrt(max(len(labels), 1)))
        if direction * correlation < -limit:
            expected = "more" if direction > 0 else "less"
            problems.append(f"{column} correlates {correlation:+.3f} with {LABEL}, but {expected} of it goes with "
                            f"more imbalance (limit {limit:.3f}; BALANCEIT_LABEL_CONTRADICTION_CORRELATION)")
    return problems


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
