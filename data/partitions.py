"""Partitions: a batch's rows as Parquet files any worker can read, and their results loaded back.

A batch is split by a hash of respondent id, so a person's wearable days travel with their
answers. Workers turn an input partition into result files (see `models.score.score_partition`);
the warehouse then registers every partition's results in one transaction. File names are
fixed by batch, model version and partition number, and written atomically, so a rerun after a
crash reuses what was finished and never writes a partition twice.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from balanceit.data.contract import QUESTIONNAIRE_KEY
from balanceit.warehouse import transaction, upsert_frame

DRIVER_RANKS = (1, 2, 3)
SCORE_COLUMNS = ["respondent_id", "submitted_at", "batch_id", "model_version", "risk", "band", "scored_at"]
SCORE_KEY = ("respondent_id", "submitted_at", "model_version")


@dataclass(frozen=True)
class Partition:
    """One partition's input files and where its results go."""

    number: int
    questionnaire: Path
    activity: Path
    scored: Path
    features: Path

    @property
    def done(self) -> bool:
        return self.scored.exists() and self.features.exists()


def batch_folder(root: Path, batch_id: str) -> Path:
    return root / batch_id


def export_batch(con: duckdb.DuckDBPyConnection, batch_id: str, root: Path, version: str,
                 rows_per_partition: int) -> list[Partition]:
    """Write the batch's answers and its people's wearable days as Parquet partitions."""
    rows = con.execute("SELECT count(*) FROM batch_members WHERE batch_id = ?", [batch_id]).fetchone()[0]
    count = max(1, math.ceil(rows / rows_per_partition))
    folder = batch_folder(root, batch_id)
    inputs, results = folder / "input", folder / f"v{version}"
    inputs.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE partition_members AS
        SELECT respondent_id, submitted_at, hash(respondent_id) % {count} AS part
        FROM batch_members WHERE batch_id = ?""", [batch_id])
    partitions = []
    for number in range(count):
        partition = Partition(number, inputs / f"part-{number:05d}-questionnaire.parquet",
                              inputs / f"part-{number:05d}-activity.parquet",
                              results / f"part-{number:05d}-scored.parquet",
                              results / f"part-{number:05d}-features.parquet")
        if not partition.done:
            copy_partition_inputs(con, "partition_members", number, partition.questionnaire, partition.activity)
        partitions.append(partition)
    return partitions


def copy_partition_inputs(con: duckdb.DuckDBPyConnection, members: str, number: int,
                          questionnaire: Path, activity: Path) -> None:
    """Partition `number` of a members table (respondent_id, submitted_at, part): its answers and its
    people's wearable days, as Parquet files."""
    _copy_atomically(con, f"""
        SELECT q.* EXCLUDE (ingestion_id) FROM questionnaire q
        JOIN {members} m USING (respondent_id, submitted_at) WHERE m.part = {number}""", questionnaire)
    _copy_atomically(con, f"""
        SELECT a.* EXCLUDE (ingestion_id) FROM activity a
        WHERE a.respondent_id IN (SELECT respondent_id FROM {members} WHERE part = {number})""", activity)


def _copy_atomically(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    partial = path.with_suffix(".partial")
    con.execute(f"COPY ({query}) TO '{partial}' (FORMAT parquet)")
    partial.replace(path)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Parquet written under a temporary name and renamed, so a reader never sees half a file."""
    partial = path.with_suffix(".partial")
    frame.to_parquet(partial, index=False)
    partial.replace(path)


def explanation_rows(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per person and driver rank, with the answers behind the driver."""
    rows = pd.DataFrame({
        "respondent_id": np.repeat(scored["respondent_id"].to_numpy(), len(DRIVER_RANKS)),
        "submitted_at": np.repeat(scored["submitted_at"].to_numpy(), len(DRIVER_RANKS)),
        "model_version": np.repeat(scored["model_version"].to_numpy(), len(DRIVER_RANKS)),
        "kind": "driver",
        "rank": np.tile(np.array(DRIVER_RANKS), len(scored)),
        "feature": np.column_stack([scored[f"driver_{r}"].astype(object) for r in DRIVER_RANKS]).ravel(),
        "contribution": np.column_stack([scored[f"driver_{r}_contribution"] for r in DRIVER_RANKS]).ravel(),
        "sentence": None,
        "answers": np.column_stack([scored[f"driver_{r}_answers"].astype(object) for r in DRIVER_RANKS]).ravel(),
    })
    return rows[rows["feature"].notna()]


def register_results(con: duckdb.DuckDBPyConnection, batch_id: str, version: str,
                     partitions: list[Partition], root: Path) -> pd.DataFrame:
    """Load every partition's features, scores and explanations in one transaction; returns the scores."""
    scored = pd.concat([pd.read_parquet(p.scored) for p in partitions], ignore_index=True)
    features = pd.concat([pd.read_parquet(p.features) for p in partitions], ignore_index=True)
    scored = scored.sort_values(list(QUESTIONNAIRE_KEY), ignore_index=True)
    scored["batch_id"] = batch_id
    scored["scored_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    with transaction(con):
        upsert_frame(con, "features", features, QUESTIONNAIRE_KEY)
        upsert_frame(con, "scores", scored[SCORE_COLUMNS], SCORE_KEY)
        upsert_frame(con, "explanations", explanation_rows(scored), (*SCORE_KEY, "kind", "rank"))
        con.execute("UPDATE batches SET model_version = ? WHERE batch_id = ?", [version, batch_id])
    shutil.rmtree(batch_folder(root, batch_id), ignore_errors=True)
    return scored
