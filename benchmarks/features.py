"""`balanceit bench features`: the features (row-wise in NumPy, the wearable window on DuckDB) of
already-validated canonical frames.

The population is generated, written as CSV and validated once (not timed); the accepted frames are
kept as Parquet. A fresh process loads them and times only `features_for_frames`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import (
    MEMORY_TARGET_MB, Figures, JsonOption, ProfileOption, SeedOption, ThreadsOption, WorkdirOption, fmt_mb,
    fmt_rate, fmt_s, prepared, rate, run_stage, section, work_folder,
)

SECONDS_TARGET = 30.0


def features_stage(folder: str, window_days: int) -> dict[str, float]:
    """Child: load the canonical frames, then time the features alone."""
    from pathlib import Path

    import pandas as pd

    from balanceit.benchmarks.child import measured
    from balanceit.features.build import features_for_frames

    answers = pd.read_parquet(Path(folder) / "questionnaire.parquet")
    activity = pd.read_parquet(Path(folder) / "activity.parquet")
    with measured("features"):
        features = features_for_frames(answers, activity, window_days)
    return {"questionnaire_rows": len(answers), "activity_days": len(activity), "feature_rows": len(features),
            "feature_columns": features.shape[1], "rows_with_wearable_days": int((features["days_worn"] > 0).sum())}


@bench_app.command("features")
def features(rows: Annotated[int, typer.Option(help="Questionnaire rows.")] = 1_000_000,
             activity_days: Annotated[int, typer.Option(help="Activity days (rows).")] = 10_000_000,
             window_days: Annotated[int | None, typer.Option(
                 help="Wearable window in days (default: the setting, 28).")] = None,
             seed: SeedOption = 0, workdir: WorkdirOption = None, profile: ProfileOption = None,
             threads: ThreadsOption = None, as_json: JsonOption = False) -> None:
    """Time and peak memory of the features (features_for_frames) of validated frames.

    At the defaults (1M people, 10M activity days) generating the inputs takes minutes and the features
    peak near 1.9 GB; --rows 100000 --activity-days 1000000 is a quick first try.
    """
    figures = Figures(f"balanceit bench features: {rows:,} questionnaire rows, {activity_days:,} activity days")
    if window_days is None:
        from balanceit.config import Settings

        window_days = Settings().activity_window_days
    name = f"features-r{rows}-d{activity_days}-s{seed}"
    with work_folder(workdir, name) as folder:
        written = prepared(folder, "generate", "balanceit.benchmarks.inputs:write_population",
                           folder=str(folder), rows=rows, seed=seed, labelled=True, activity_days=activity_days)
        validated = prepared(folder, "validate", "balanceit.benchmarks.inputs:validate_files", folder=str(folder))
        answer = run_stage("balanceit.benchmarks.features:features_stage", profile=profile, threads=threads,
                           folder=str(folder), window_days=window_days)

    result = answer["result"]
    measured_section = section(answer, "features")
    seconds, peak = measured_section["seconds"], measured_section["peak_mb"]
    figures.add("questionnaire rows in", f"{result['questionnaire_rows']:,}")
    figures.add("activity days in", f"{result['activity_days']:,}")
    figures.add("feature rows out (columns)", f"{result['feature_rows']:,} ({result['feature_columns']})")
    figures.add("rows with wearable days in window", f"{result['rows_with_wearable_days']:,}")
    figures.target("features_seconds", "seconds (features)", seconds, f"<= {SECONDS_TARGET:.0f} s",
                   seconds <= SECONDS_TARGET, fmt_s(seconds))
    figures.add("questionnaire rows/s", fmt_rate(rate(result["questionnaire_rows"], seconds)))
    figures.add("frames resident before the features", fmt_mb(measured_section["rss_before_mb"]))
    figures.target("features_peak_memory_mb", "peak memory (features, frames resident)", peak, "< 4 GB",
                   peak < MEMORY_TARGET_MB, fmt_mb(peak))
    figures.add("peak memory of the whole process (incl. Parquet load)", fmt_mb(answer["process_peak_mb"]))
    figures.data = {"rows": rows, "activity_days": activity_days, "window_days": window_days, "seed": seed,
                    "input": {**written, **validated}, **result, "seconds": seconds,
                    "rows_per_second": rate(result["questionnaire_rows"], seconds), "peak_mb": peak,
                    "rss_before_mb": measured_section["rss_before_mb"],
                    "process_peak_mb": answer["process_peak_mb"]}
    figures.notes.append("validation ran once beforehand (not timed); the features run in a fresh process "
                         "that first loads the canonical frames from Parquet")
    figures.finish(as_json, threads, profile)
