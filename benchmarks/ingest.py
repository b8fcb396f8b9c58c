"""`balanceit bench ingest`: questionnaire rows/s and activity days/s, validation and warehouse included.

Both files are generated and written as CSV first. Then, each in its own fresh process (so its peak
memory is its own), a file is ingested as `balanceit ingest` does it without Prefect: content hash,
read the CSV as text, parse, check every contract rule, build the quarantine, and write accepted rows,
quarantine, batch and lineage into a new DuckDB warehouse in one committed transaction. Read +
validate is then timed alone in another fresh process, so the warehouse's share shows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import (
    MEMORY_TARGET_MB, Figures, JsonOption, ProfileOption, SeedOption, ThreadsOption, WorkdirOption, fmt_mb,
    fmt_rate, fmt_s, prepared, rate, run_stage, section, work_folder,
)

QUESTIONNAIRE_RATE_TARGET = 200_000  # rows/s


def ingest_stage(path: str, kind: str, warehouse: str) -> dict[str, int]:
    """Child: ingest one file into a new warehouse, timed."""
    import duckdb

    from balanceit.benchmarks.child import measured
    from balanceit.data.load import ingest
    from balanceit.warehouse import SCHEMA

    os.sync()  # earlier stages' pending writes (generated files, the last warehouse) would land in this commit
    with duckdb.connect(warehouse) as con:
        con.execute(SCHEMA)
        with measured(kind):
            summary = ingest(con, Path(path), kind)
    if summary.status != "loaded":
        raise RuntimeError(f"{path}: {summary.status} {summary.message}")
    return {"rows_read": summary.rows_read, "accepted": summary.accepted, "quarantined_rows": summary.quarantined}


def validate_stage(path: str, kind: str) -> dict[str, int]:
    """Child: read + validate the same file alone, timed (the ingest's share before the warehouse)."""
    from balanceit.benchmarks.child import measured
    from balanceit.data.validation import load_activity, load_questionnaire

    load = {"questionnaire": load_questionnaire, "activity": load_activity}[kind]
    with measured(f"{kind}_validate"):
        validated = load(path)
    return {"rows_read": validated.rows_read}


@bench_app.command("ingest")
def ingest(rows: Annotated[int, typer.Option(help="Questionnaire rows to generate and load.")] = 1_000_000,
           activity_days: Annotated[int, typer.Option(help="Activity days (rows) to load.")] = 10_000_000,
           seed: SeedOption = 0, workdir: WorkdirOption = None, profile: ProfileOption = None,
           threads: ThreadsOption = None, as_json: JsonOption = False) -> None:
    """Questionnaire rows/s and activity days/s into the warehouse, validation included, and peak memory.

    At the defaults (1M rows, 10M activity days) this takes minutes and peaks near 2.6 GB;
    --rows 100000 --activity-days 1000000 is a quick first try.
    """
    figures = Figures(f"balanceit bench ingest: {rows:,} questionnaire rows, {activity_days:,} activity days")
    name = f"ingest-r{rows}-d{activity_days}-s{seed}"
    with work_folder(workdir, name) as folder:
        written = prepared(folder, "generate", "balanceit.benchmarks.inputs:write_population",
                           folder=str(folder), rows=rows, seed=seed, labelled=True, activity_days=activity_days)
        answers = {kind: run_stage("balanceit.benchmarks.ingest:ingest_stage", profile=profile, threads=threads,
                                   path=str(folder / f"{kind}.csv"), kind=kind,
                                   warehouse=str(folder / f"{kind}-warehouse.duckdb"))
                   for kind in ("questionnaire", "activity")}
        for kind in answers:
            (folder / f"{kind}-warehouse.duckdb").unlink()
        validations = {kind: run_stage("balanceit.benchmarks.ingest:validate_stage", profile=profile, threads=threads,
                                       path=str(folder / f"{kind}.csv"), kind=kind)
                       for kind in answers}

    data = {"rows": rows, "activity_days": activity_days, "seed": seed, "input": written}
    for kind, answer in answers.items():
        measured_section = section(answer, kind)
        result = answer["result"]
        seconds = measured_section["seconds"]
        per_second = rate(result["rows_read"], seconds)
        data[kind] = {**result, "seconds": seconds, "rows_per_second": per_second,
                      "peak_mb": measured_section["peak_mb"], "process_peak_mb": answer["process_peak_mb"]}
        unit = "questionnaire rows" if kind == "questionnaire" else "activity days"
        figures.heading(f"{kind} ({written[f'{kind}_csv_mb']:,.0f} MB CSV)")
        figures.add(f"{unit} read", f"{result['rows_read']:,}")
        figures.add("accepted / quarantined rows", f"{result['accepted']:,} / {result['quarantined_rows']:,}")
        validate_seconds = section(validations[kind], f"{kind}_validate")["seconds"]
        data[kind]["validate_seconds"] = validate_seconds
        figures.add("seconds (ingest: hash, read, validate, write DuckDB, commit)", fmt_s(seconds))
        figures.add("read + validate alone (another fresh process)", fmt_s(validate_seconds))
        if kind == "questionnaire":
            figures.target("questionnaire_rows_per_second", f"{unit}/s", per_second,
                           f">= {QUESTIONNAIRE_RATE_TARGET:,}", per_second >= QUESTIONNAIRE_RATE_TARGET,
                           fmt_rate(per_second))
        else:
            figures.add(f"{unit}/s", fmt_rate(per_second).replace("rows", "days"))
        peak = measured_section["peak_mb"]
        figures.target(f"{kind}_peak_memory_mb", "peak memory", peak, "< 4 GB", peak < MEMORY_TARGET_MB,
                       fmt_mb(peak))
    figures.data = data
    figures.notes.append("each file is ingested in a fresh process into a new warehouse; peak = that process's "
                         "resident high-water mark during the ingest (interpreter and imports included)")
    figures.finish(as_json, threads, profile)
