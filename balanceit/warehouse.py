"""The DuckDB warehouse: schema, one writer at a time (a file lock, since DuckDB fails a second writer
mid-work), all-or-nothing batches."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import duckdb
import pandas as pd
import pyarrow
from filelock import FileLock, Timeout

from balanceit.config import Settings
from balanceit.data.contract import (ACTIVITY, ACTIVITY_KEY, DRIVER_RANKS, NHANES_NOT_ASKED_EXERCISES,
                                     OPTIONAL_ANSWERS, QUESTIONNAIRE, QUESTIONNAIRE_KEY, ColumnSpec)


def _input_table(name: str, specs: tuple[ColumnSpec, ...], key: tuple[str, ...], integer: str,
                 added: tuple[str, ...]) -> str:
    """An input file's table, typed by the contract (the key NOT NULL; whole numbers as `integer`, as each
    table was first made), with `added` and the lineage that loading adds."""
    sql_types = {"integer": integer, "number": "DOUBLE", "boolean": "BOOLEAN", "datetime": "TIMESTAMP", "date": "DATE"}
    columns = [f"{spec.name} {sql_types.get(spec.type, 'VARCHAR')}{' NOT NULL' * (spec.name in key)}" for spec in specs]
    return (f"CREATE TABLE IF NOT EXISTS {name} ({', '.join([*columns, *added])}, "
            "row_number BIGINT, extras VARCHAR, ingestion_id VARCHAR NOT NULL);")


# Tables are keyed without an index: `upsert_frame` replaces a file's keys in one transaction under the
# workspace lock, so an index would guard nothing more and cost 15-20% of every large ingestion.
SCHEMA = _input_table("questionnaire", QUESTIONNAIRE, QUESTIONNAIRE_KEY, "INTEGER", ()) + _input_table(
    "activity", ACTIVITY, ACTIVITY_KEY, "BIGINT", ("worn BOOLEAN",)) + """
CREATE TABLE IF NOT EXISTS ingestions (
    ingestion_id VARCHAR PRIMARY KEY, file VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    rows_read BIGINT, accepted BIGINT, quarantined BIGINT, started_at TIMESTAMP, finished_at TIMESTAMP,
    status VARCHAR NOT NULL, message VARCHAR
);
CREATE TABLE IF NOT EXISTS quarantine (
    ingestion_id VARCHAR NOT NULL, file VARCHAR NOT NULL, row_number BIGINT,
    "column" VARCHAR, rule VARCHAR, raw_value VARCHAR
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id VARCHAR PRIMARY KEY, ingestion_id VARCHAR, file VARCHAR, kind VARCHAR,
    model_version VARCHAR, rows BIGINT, created_at TIMESTAMP
);
-- No key: a batch's members are written whole, once, in the transaction that loads its file.
CREATE TABLE IF NOT EXISTS batch_members (
    batch_id VARCHAR NOT NULL, respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL
);
-- Every label each ingestion gave a key: a later file never erases an earlier one's answer.
CREATE TABLE IF NOT EXISTS label_history (
    respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL, imbalance BOOLEAN NOT NULL,
    ingestion_id VARCHAR NOT NULL
);
-- The promotion gate's fixed rows: held out when a champion was trained, labels frozen as they were.
CREATE TABLE IF NOT EXISTS reference_set (
    respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL, imbalance BOOLEAN NOT NULL,
    model_version VARCHAR NOT NULL, ingestion_id VARCHAR, added_at TIMESTAMP
);
-- Results have no index either: re-registering 100,000 scores through a primary key took 30 s, not 3 s.
-- A person's drivers are columns, replaced with the score: as rows of their own, 300,000 per 100,000 people.
CREATE TABLE IF NOT EXISTS scores (
    respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL, batch_id VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL, risk DOUBLE NOT NULL, band VARCHAR NOT NULL,
    scored_at TIMESTAMP, """ + ", ".join(f"driver_{rank} VARCHAR, driver_{rank}_contribution DOUBLE, "
                                         f"driver_{rank}_answers VARCHAR" for rank in DRIVER_RANKS) + """
);
"""


def _ranked(part: str) -> str:
    return "UNNEST([" + ", ".join(f"driver_{rank}{part}" for rank in DRIVER_RANKS) + "])"


# One row per person and driver, as the table it replaced had them (`kind` and `sentence` kept for queries
# written against that table).
EXPLANATIONS_VIEW = f"""CREATE VIEW explanations AS SELECT * FROM (
    SELECT respondent_id, submitted_at, model_version, 'driver' AS kind, UNNEST({list(DRIVER_RANKS)}) AS rank,
           {_ranked("")} AS feature, {_ranked("_contribution")} AS contribution, NULL::VARCHAR AS sentence,
           {_ranked("_answers")} AS answers
    FROM scores) WHERE feature IS NOT NULL"""


@contextmanager
def open_warehouse(settings: Settings, wait_seconds: float = 600.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse under the workspace lock; readers and writers alike take it."""
    settings.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = FileLock(str(settings.lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"Another balanceit command is using {settings.root}; waiting up to "
              f"{wait_seconds:.0f} s for it to finish...", file=sys.stderr)
        try:
            lock.acquire(timeout=wait_seconds)
        except Timeout:
            raise RuntimeError(f"the workspace {settings.root} is still busy after "
                               f"{wait_seconds:.0f} s; try again when the other command has ended") from None
    try:
        with duckdb.connect(str(settings.warehouse_path)) as con:
            # No vacuum at checkpoints: it merged the small row group a small batch leaves at a table's end into
            # its neighbours, rewriting ~100,000 rows of every table when the next batch committed (+0.8 s for a
            # 100,000-row batch scored after a 1,000-row one). Rows go a batch at a time, and a row group left
            # empty is freed without it: scoring a batch again and again keeps the file the same size.
            con.execute("SET max_vacuum_tasks = 0")
            con.execute(SCHEMA)
            _upgrade_results(con)
            yield con
    finally:
        lock.release()


def _upgrade_results(con: duckdb.DuckDBPyConnection) -> None:
    """Results of a warehouse made by an earlier version, brought to this schema once, in one transaction: the
    drivers of an `explanations` table become columns of `scores` (both lose the primary key older warehouses
    gave them, which DuckDB cannot drop in place), and `explanations` becomes a view of them."""
    found = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' "
                        "AND table_name = 'explanations'").fetchall()
    if found == [("VIEW",)]:
        return
    with transaction(con):
        if found == [("BASE TABLE",)]:
            drivers = ", ".join(f"any_value({column}) FILTER (rank = {rank}) AS driver_{rank}{part}"
                                for rank in DRIVER_RANKS for column, part in (
                                    ("feature", ""), ("contribution", "_contribution"), ("answers", "_answers")))
            con.execute("ALTER TABLE scores RENAME TO scores_before")
            con.execute(SCHEMA)
            con.execute(f"""INSERT INTO scores BY NAME SELECT * FROM scores_before LEFT JOIN (
                                SELECT respondent_id, submitted_at, model_version, {drivers} FROM explanations
                                WHERE kind = 'driver' GROUP BY ALL)
                            USING (respondent_id, submitted_at, model_version)""")
            con.execute("DROP TABLE scores_before")
            con.execute("DROP TABLE explanations")
        con.execute(EXPLANATIONS_VIEW)


def batch_not_asked(con: duckdb.DuckDBPyConnection, batch_id: str) -> tuple[str, ...]:
    """What a batch's survey did not ask, unknown wherever the batch is scored or explained: the optional
    questions none of its rows answers (the batch's, so a partition where everyone happened to skip one still
    reads its blanks as skips), and for an NHANES cycle the kinds of exercise it never asks about."""
    counts = ", ".join(f"count({name}) = 0" for name in OPTIONAL_ANSWERS)
    unanswered = con.execute(f"SELECT {counts} FROM questionnaire JOIN batch_members USING (respondent_id, "
                             "submitted_at) WHERE batch_id = ?", [batch_id]).fetchone()
    nhanes = con.execute("SELECT kind = 'nhanes' FROM batches WHERE batch_id = ?", [batch_id]).fetchone() == (True,)
    return (*(name for name, none in zip(OPTIONAL_ANSWERS, unanswered) if none),
            *(NHANES_NOT_ASKED_EXERCISES if nhanes else ()))


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str,
               frame: pd.DataFrame | pyarrow.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """`frame` queryable as `name` while inside."""
    con.register(name, frame)
    try:
        yield con
    finally:
        con.unregister(name)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: an exception (or Ctrl-C) rolls the whole batch back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def upsert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> None:
    """Insert a DataFrame, replacing rows with the same key; a missing table is created with its columns."""
    # Arrow, inserted in any order, takes 0.8 s per million answers where pandas' columns took 2.2 s;
    # queries that need an order say ORDER BY.
    with registered(con, "_upsert_frame", pyarrow.Table.from_pandas(frame, preserve_index=False)):
        upsert(con, table, "_upsert_frame", key)


def upsert(con: duckdb.DuckDBPyConnection, table: str, rows: str, key: tuple[str, ...]) -> None:
    """Insert `rows` (a registered name, `read_parquet(...)` or a query in parentheses), replacing rows with the
    same key. A missing table is created with their columns, a column of nothing but NULL typed as text: one
    made from a batch that never answered a question would get a column no value fits."""
    described = [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {rows}").fetchall()]
    columns = ", ".join(f'"{name}"' for name, _ in described)
    typed = ", ".join(f'NULL::VARCHAR AS "{name}"' if kind.strip('"') == "NULL" else f'"{name}"'
                      for name, kind in described)
    key_match = " AND ".join(f't."{k}" = f."{k}"' for k in key)
    # Reset only on success: in a failed transaction the RESET would fail too and hide the first error.
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT {typed} FROM {rows} WHERE false")
    con.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM {rows} f WHERE {key_match})")
    con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}")
    con.execute("RESET preserve_insertion_order")


@cache
def _scratch_database(pid: int) -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def scratch_cursor() -> duckdb.DuckDBPyConnection:
    """A cursor of its own (registered frames never meet another thread's) on this process's in-memory
    DuckDB, opened once per pid since opening costs ~10 ms of a one-row request."""
    return _scratch_database(os.getpid()).cursor()
