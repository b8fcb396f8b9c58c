"""`balanceit bench ingest`: questionnaire rows/s and activity days/s through reading + validation.

Both files are generated and written as CSV first; then each `load_*` call (read the CSV as text,
parse, check every contract rule, build the quarantine) runs in its own fresh process, so its peak
memory is its own.
"""

from __future__ import annotations

from typing import Annotated

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import (
    MEMORY_TARGET_MB, Figures, JsonOption, ProfileOption, SeedOption, ThreadsOption, WorkdirOption, fmt_mb,
    fmt_rate, fmt_s, prepared, rate, run_stage, section, work_folder,
)

QUESTIONNAIRE_RATE_TARGET = 200_000  # rows/s


def ingest_stage(path: str, kind: str) -> dict[str, int]:
    """Child: load (read + validate) one file, timed."""
    from balanceit.benchmarks.child import measured
    from balanceit.data.validation import load_activity, load_questionnaire

    load = {"questionnaire": load_questionnaire, "activity": load_activity}[kind]
    with measured(kind):
        validated = load(path)
    return {"rows_read": validated.rows_read, "accepted": len(validated.accepted),
            "quarantined_rows": validated.quarantined_rows}


@bench_app.command("ingest")
def ingest(rows: Annotated[int, typer.Option(help="Questionnaire rows to generate and load.")] = 1_000_000,
           activity_days: Annotated[int, typer.Option(help="Activity days (rows) to load.")] = 10_000_000,
           seed: SeedOption = 0, workdir: WorkdirOption = None, profile: ProfileOption = None,
           threads: ThreadsOption = None, as_json: JsonOption = False) -> None:
    """Questionnaire rows/s and activity days/s, validation included, and the peak memory of each."""
    figures = Figures(f"balanceit bench ingest: {rows:,} questionnaire rows, {activity_days:,} activity days")
    name = f"ingest-r{rows}-d{activity_days}-s{seed}"
    with work_folder(workdir, name) as folder:
        written = prepared(folder, "generate", "balanceit.benchmarks.inputs:write_population",
                           folder=str(folder), rows=rows, seed=seed, labelled=True, activity_days=activity_days)
        answers = {kind: run_stage("balanceit.benchmarks.ingest:ingest_stage", profile=profile, threads=threads,
                                   path=str(folder / f"{kind}.csv"), kind=kind)
                   for kind in ("questionnaire", "activity")}

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
        figures.add("seconds (read + validate)", fmt_s(seconds))
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
    figures.notes.append("each load runs in a fresh process; peak = that process's resident high-water mark "
                         "(interpreter and imports included)")
    figures.finish(as_json, threads, profile)
