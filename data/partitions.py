"""Partitions: selected rows as Parquet files any worker can read, and their results loaded back.

Rows are split by a hash of respondent id, so a person's wearable days travel with their answers.
Result files have fixed names and are written atomically, so a rerun after a crash reuses what was
finished; the flow loads them in one transaction. Locations are `UPath`s (a folder or any fsspec URL)
and object stores cannot rename a folder atomically, so a `_COMPLETE` file marks a finished export.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
from upath import UPath

from balanceit.config import Settings
from balanceit.data.contract import OUTPUT_COLUMNS, QUESTIONNAIRE_KEY, SCORE_COLUMNS, SCORE_KEY
from balanceit.warehouse import batch_not_asked, transaction, upsert


@dataclass(frozen=True)
class Partition:
    """One partition's input files and where its results go (training writes no scores)."""

    number: int
    questionnaire: UPath
    activity: UPath
    features: UPath
    scored: UPath | None = None
    not_asked: tuple[str, ...] = ()  # the batch's, not the partition's: see `batch_not_asked`

    @property
    def done(self) -> bool:
        return self.features.exists() and (self.scored is None or self.scored.exists())

    def inputs(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The partition's answers and its people's wearable days."""
        return pd.read_parquet(str(self.questionnaire)), pd.read_parquet(str(self.activity))


def partitions_root(settings: Settings) -> UPath:
    """Where partition files go: `shared_path` (a folder or fsspec URL every Dask worker reaches) or
    `<home>/partitions`; a local folder is made absolute, so workers elsewhere find it."""
    if not settings.shared_path:
        return UPath(settings.partitions_path)
    root = UPath(settings.shared_path)
    return root.expanduser().resolve() if isinstance(root, Path) else root


def batch_folder(root: UPath, batch_id: str) -> UPath:
    return root / batch_id


def export_batch(con: duckdb.DuckDBPyConnection, batch_id: str, root: UPath, version: str,
                 rows_per_partition: int) -> list[Partition]:
    """The batch's partitions for scoring by `version`, each carrying what the batch was not asked."""
    return export_partitions(con, f"SELECT * FROM batch_members WHERE batch_id = {_sql_literal(batch_id)}",
                             batch_folder(root, batch_id), rows_per_partition, version, batch_not_asked(con, batch_id))


def export_partitions(con: duckdb.DuckDBPyConnection, selection: str, folder: UPath, rows_per_partition: int,
                      version: str | None = None, not_asked: tuple[str, ...] = ()) -> list[Partition]:
    """The answers a query selects and their people's wearable days as Parquet partitions, in one pass over
    each table; with a model `version`, each has a place for its scores. Partition N is the folders
    `questionnaire/part=N` and `activity/part=N` (read as one table each; an empty one gets a file that
    keeps the columns)."""
    rows = con.execute(f"SELECT count(*) FROM ({selection})").fetchone()[0]
    count = max(1, math.ceil(rows / rows_per_partition))
    inputs = folder / f"input-{count}"
    if not (inputs / "_COMPLETE").exists():
        remove(inputs)
        inputs.mkdir(parents=True, exist_ok=True)
        attach(con, inputs)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE partition_members AS
                        SELECT respondent_id, submitted_at, hash(respondent_id) % {count} AS part FROM ({selection})""")
        _copy_partitioned(con, """SELECT q.* EXCLUDE (ingestion_id), m.part FROM questionnaire q
                                   JOIN partition_members m USING (respondent_id, submitted_at)""",
                          inputs / "questionnaire", count)
        _copy_partitioned(con, """SELECT a.* EXCLUDE (ingestion_id), m.part FROM activity a
                                   JOIN (SELECT DISTINCT respondent_id, part FROM partition_members) m
                                   USING (respondent_id)""", inputs / "activity", count)
        for number in range(count):
            for table in ("questionnaire", "activity"):
                leaf = inputs / table / f"part={number}"
                if not leaf.exists():
                    leaf.mkdir(parents=True, exist_ok=True)
                    con.execute(f"COPY (SELECT * EXCLUDE (ingestion_id) FROM {table} LIMIT 0) "
                                f"TO {_sql_literal(leaf / 'empty.parquet')} (FORMAT parquet)")
        (inputs / "_COMPLETE").touch()
    results = folder / (f"v{version}" if version else "features")
    results.mkdir(parents=True, exist_ok=True)
    return [Partition(number, inputs / "questionnaire" / f"part={number}", inputs / "activity" / f"part={number}",
                      results / f"part-{number:05d}-features.parquet",
                      results / f"part-{number:05d}-scored.parquet" if version else None, not_asked)
            for number in range(count)]


def _copy_partitioned(con: duckdb.DuckDBPyConnection, rows: str, place: UPath, count: int) -> None:
    """`rows` (with their `part`) as the folders `place/part=N`; one partition is a plain COPY into `part=0`,
    which costs ~40% less than DuckDB's partitioned writer."""
    if count > 1:
        con.execute(f"COPY ({rows}) TO {_sql_literal(place)} (FORMAT parquet, PARTITION_BY (part))")
        return
    (place / "part=0").mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY (SELECT * EXCLUDE (part) FROM ({rows})) TO {_sql_literal(place / 'part=0' / 'data_0.parquet')} "
                "(FORMAT parquet)")


def attach(con: duckdb.DuckDBPyConnection, place: UPath) -> None:
    """Let DuckDB read and write `place` when it is an fsspec URL (local folders need nothing), with Parquet
    prefetching off: through fsspec, DuckDB 2.0 misread long text columns with it (1 read in 4, none without)."""
    if isinstance(place, Path):  # a local folder: DuckDB's own file system
        return
    con.execute("SET disable_parquet_prefetching = true")
    protocol = place.fs.protocol
    if (protocol if isinstance(protocol, str) else protocol[0]) not in con.list_filesystems():
        con.register_filesystem(place.fs)


def remove(place: UPath) -> None:
    """Delete a file or a folder with everything in it; nothing there is fine."""
    if place.exists():
        place.fs.rm(place.path, recursive=True)


def _sql_literal(text: UPath | str) -> str:
    """A batch id, path or URL as a SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def write_atomically(frame: pd.DataFrame, path: UPath) -> None:
    """Parquet written under a temporary name and then moved into place, so a reader never sees half a file.
    Without column statistics: partitions are read whole, once, and computing them cost ~0.04 s per 100,000 rows
    and file."""
    partial = path.with_name(f"{path.name}.partial")
    frame.to_parquet(str(partial), index=False, write_statistics=False)
    partial.rename(path)


def register_results(con: duckdb.DuckDBPyConnection, batch_id: str, version: str, partitions: list[Partition],
                     root: UPath, output: Path | None = None) -> dict[str, int]:
    """Load every partition's features and scores (drivers included) in one transaction, DuckDB reading the result
    files itself (streamed, so memory never holds the batch, and no pandas copy: half the time of a load through
    DataFrames), write `output` if asked, and return the batch's people per risk band."""
    attach(con, partitions[0].scored)
    scored = _parquet([p.scored for p in partitions])
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    values = {"batch_id": _sql_literal(batch_id), "scored_at": f"TIMESTAMP '{scored_at}'"}
    scores = ", ".join(f"{values.get(column, column)} AS {column}" for column in SCORE_COLUMNS)
    # `output` goes under a hidden name until the transaction commits; from local partitions it is written on
    # a second core beside the transaction (DuckDB's bridge to fsspec is not one to use from two threads).
    partial = output and output.with_name(f".partial-{output.name}")
    try:
        with con.cursor() as writer, ThreadPoolExecutor(1) as pool:  # the pool waits for the thread, then closes
            beside = partial and isinstance(partitions[0].scored, Path)
            written = beside and pool.submit(write_scores_file, writer, partitions, partial)
            with transaction(con):
                upsert(con, "features", _parquet([p.features for p in partitions]), QUESTIONNAIRE_KEY)
                upsert(con, "scores", f"(SELECT {scores} FROM {scored})", SCORE_KEY)
                con.execute("UPDATE batches SET model_version = ? WHERE batch_id = ?", [version, batch_id])
        if partial:
            (written.result() if written else write_scores_file(con, partitions, partial)).replace(output)
    finally:  # moved into place, or the registration failed: no hidden copy of people's scores stays behind
        if partial:
            partial.unlink(missing_ok=True)
    remove(batch_folder(root, batch_id))
    bands = con.execute("""SELECT band, count(*) FROM scores WHERE batch_id = ? AND model_version = ?
                           GROUP BY band ORDER BY list_position(['low', 'moderate', 'high'], band)""",
                        [batch_id, version]).fetchall()
    return dict(bands)


def _parquet(paths: list[UPath]) -> str:
    """The Parquet files as one table in SQL, columns matched by name: an empty partition, or one where nobody
    has a third driver, stores those columns with no type, which the other files' values could not be cast to."""
    return "read_parquet([" + ", ".join(_sql_literal(path) for path in paths) + "], union_by_name = true)"


def write_scores_file(con: duckdb.DuckDBPyConnection, partitions: list[Partition], path: Path) -> Path:
    """One row per person, sorted by key: the contract's output columns first, then the what-ifs. Parquet when
    `path` ends in .parquet, else CSV (compressed when it ends in .gz), streamed: the batch is never in memory."""
    files = _parquet([p.scored for p in partitions])
    available = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {files}").fetchall()]
    columns = [*OUTPUT_COLUMNS, *[c for c in available if c.startswith("whatif_")]]
    path.parent.mkdir(parents=True, exist_ok=True)
    file_format = "parquet" if path.suffix.lower() == ".parquet" else "csv, HEADER"
    con.execute(f"""COPY (SELECT {", ".join(f'"{c}"' for c in columns)} FROM {files}
                          ORDER BY {", ".join(QUESTIONNAIRE_KEY)})
                    TO {_sql_literal(path)} (FORMAT {file_format})""")
    return path
