"""Partitions: a batch's rows as Parquet files any worker can read, and their results loaded back.

A batch is split by a hash of respondent id, so a person's wearable days travel with their
answers, in one pass over each table (DuckDB's `COPY ... PARTITION_BY`) however many partitions. Workers turn an input partition into result files (see `models.score.score_partition`);
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
    results = folder / f"v{version}"
    results.mkdir(parents=True, exist_ok=True)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE partition_members AS
        SELECT respondent_id, submitted_at, hash(respondent_id) % {count} AS part
        FROM batch_members WHERE batch_id = ?""", [batch_id])
    inputs = export_partition_inputs(con, "partition_members", count, folder / f"input-{count}")
    return [Partition(number, questionnaire, activity, results / f"part-{number:05d}-scored.parquet",
                      results / f"part-{number:05d}-features.parquet")
            for number, (questionnaire, activity) in enumerate(inputs)]


def export_partition_inputs(con: duckdb.DuckDBPyConnection, members: str, count: int,
                            folder: Path) -> list[tuple[Path, Path]]:
    """Every partition's answers and its people's wearable days, in one pass over each table.

    `members` is a table (respondent_id, submitted_at, part) with parts 0..count-1. Partition N is
    the folders `questionnaire/part=N` and `activity/part=N` (Parquet; pandas, DuckDB and Dask read a
    folder as one table; a partition without rows gets an empty file that keeps the columns). All is
    written under a temporary name and renamed, so a rerun after a crash finds every input or none.
    Returns the (questionnaire, activity) folders by partition number.
    """
    parts = [(folder / "questionnaire" / f"part={number}", folder / "activity" / f"part={number}")
             for number in range(count)]
    if folder.exists():
        return parts
    partial = folder.with_name(f"{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    con.execute(f"""
        COPY (SELECT q.* EXCLUDE (ingestion_id), m.part FROM questionnaire q
              JOIN {members} m USING (respondent_id, submitted_at))
        TO {_sql_path(partial / "questionnaire")} (FORMAT parquet, PARTITION_BY (part))""")
    con.execute(f"""
        COPY (SELECT a.* EXCLUDE (ingestion_id), m.part FROM activity a
              JOIN (SELECT DISTINCT respondent_id, part FROM {members}) m USING (respondent_id))
        TO {_sql_path(partial / "activity")} (FORMAT parquet, PARTITION_BY (part))""")
    for number in range(count):
        for table in ("questionnaire", "activity"):
            leaf = partial / table / f"part={number}"
            if not leaf.exists():
                leaf.mkdir(parents=True)
                con.execute(f"COPY (SELECT * EXCLUDE (ingestion_id) FROM {table} LIMIT 0) "
                            f"TO {_sql_path(leaf / 'empty.parquet')} (FORMAT parquet)")
    partial.rename(folder)
    return parts


def _sql_path(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


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


def register_results(con: duckdb.DuckDBPyConnection, batch_id: str, version: str, partitions: list[Partition],
                     root: Path, output: Path | None = None) -> dict[str, int]:
    """Load every partition's features, scores and explanations in one transaction, a partition at a
    time (memory holds one partition however large the batch), write `output` if asked, and return
    the batch's people per risk band."""
    scored_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    with transaction(con):
        for partition in partitions:
            upsert_frame(con, "features", pd.read_parquet(partition.features), QUESTIONNAIRE_KEY)
            scored = pd.read_parquet(partition.scored).assign(batch_id=batch_id, scored_at=scored_at)
            upsert_frame(con, "scores", scored[SCORE_COLUMNS], SCORE_KEY)
            upsert_frame(con, "explanations", explanation_rows(scored), (*SCORE_KEY, "kind", "rank"))
        con.execute("UPDATE batches SET model_version = ? WHERE batch_id = ?", [version, batch_id])
    if output is not None:
        write_scores_file(con, partitions, output)
    shutil.rmtree(batch_folder(root, batch_id), ignore_errors=True)
    bands = con.execute("""SELECT band, count(*) FROM scores WHERE batch_id = ? AND model_version = ?
                           GROUP BY band ORDER BY list_position(['low', 'moderate', 'high'], band)""",
                        [batch_id, version]).fetchall()
    return dict(bands)


def write_scores_file(con: duckdb.DuckDBPyConnection, partitions: list[Partition], path: Path) -> Path:
    """One row per person, sorted by key: the contract's output columns first, then the what-ifs.

    Parquet when `path` ends in .parquet, else CSV (compressed when it ends in .gz); DuckDB streams
    the partitions' result files into it, so the batch never sits in memory whole.
    """
    from balanceit.models.score import OUTPUT_COLUMNS

    files = "[" + ", ".join(_sql_path(p.scored) for p in partitions) + "]"
    available = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({files})").fetchall()]
    columns = [*OUTPUT_COLUMNS, *[c for c in available if c.startswith("whatif_")]]
    path.parent.mkdir(parents=True, exist_ok=True)
    file_format = "parquet" if path.suffix.lower() == ".parquet" else "csv, HEADER"
    con.execute(f"""COPY (SELECT {", ".join(f'"{c}"' for c in columns)} FROM read_parquet({files})
                          ORDER BY {", ".join(QUESTIONNAIRE_KEY)})
                    TO {_sql_path(path)} (FORMAT {file_format})""")
    return path
