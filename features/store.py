"""Features in the warehouse: the answers a query selects, their features computed as everywhere else
(`features.build`: row-wise in NumPy, the wearable window in SQL over the activity table), stored
keyed by respondent and submission."""

from __future__ import annotations

import duckdb
import pandas as pd

from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.data.partitions import Partition, write_atomically
from balanceit.features.build import features_for_frames


def selection_sql(batch_id: str | None) -> str:
    """The answers of one batch, or with `None` every labelled answer in the warehouse (the training set)."""
    if batch_id is None:
        return "SELECT * FROM questionnaire WHERE imbalance IS NOT NULL"
    escaped = batch_id.replace("'", "''")
    return f"""SELECT q.* FROM questionnaire q JOIN batch_members m USING (respondent_id, submitted_at)
               WHERE m.batch_id = '{escaped}'"""


def selected_answers(con: duckdb.DuckDBPyConnection, batch_id: str | None) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM ({selection_sql(batch_id)}) ORDER BY {', '.join(QUESTIONNAIRE_KEY)}").df()


def only_labelled(answers: pd.DataFrame, features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows training can learn from (a batch may mix labelled and unlabelled answers)."""
    labelled = answers[LABEL].notna().to_numpy()
    return answers[labelled].reset_index(drop=True), features[labelled].reset_index(drop=True)


def partition_features(partition: Partition, window_days: int) -> Partition:
    """One partition's features, as a worker computes them for training (scoring computes its own)."""
    if not partition.features.exists():
        write_atomically(features_for_frames(*partition.inputs(), window_days), partition.features)
    return partition
