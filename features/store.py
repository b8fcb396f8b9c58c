"""Features in the warehouse: the answers a query selects, their features computed as everywhere else
(`features.build`: row-wise in NumPy, the wearable window in SQL over the activity table), stored
keyed by respondent and submission."""

from __future__ import annotations

import duckdb
import pandas as pd

from balanceit.config import Settings
from balanceit.data.contract import QUESTIONNAIRE_KEY
from balanceit.features.build import compute_features
from balanceit.warehouse import upsert_frame

_ORDER = ", ".join(QUESTIONNAIRE_KEY)


def _store(con: duckdb.DuckDBPyConnection, answers_sql: str,
           settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute features for the answers a query selects, upsert them, and return both aligned."""
    answers = con.execute(f"SELECT * FROM ({answers_sql}) ORDER BY {_ORDER}").df()
    features = compute_features(con, answers, "activity", settings.activity_window_days)
    upsert_frame(con, "features", features, QUESTIONNAIRE_KEY)
    return answers, features


def batch_features(con: duckdb.DuckDBPyConnection, batch_id: str,
                   settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answers and features of one ingested batch, row for row."""
    escaped = batch_id.replace("'", "''")
    return _store(con, f"""
        SELECT q.* FROM questionnaire q
        JOIN batch_members m USING (respondent_id, submitted_at)
        WHERE m.batch_id = '{escaped}'""", settings)


def labelled_features(con: duckdb.DuckDBPyConnection, settings: Settings,
                      batch_id: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every labelled answer in the warehouse (or in one batch): the training set."""
    if batch_id is None:
        return _store(con, "SELECT * FROM questionnaire WHERE imbalance IS NOT NULL", settings)
    answers, features = batch_features(con, batch_id, settings)
    labelled = answers["imbalance"].notna().to_numpy()
    return answers[labelled].reset_index(drop=True), features[labelled].reset_index(drop=True)
