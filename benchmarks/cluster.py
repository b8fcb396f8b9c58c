"""`balanceit bench cluster`: a batch's partitions scored in this process and on 1 and 2 Dask workers.

Not timed: a labelled population is generated and `balanceit train` registers a model in a bench
workspace's MLflow store (workers load it from there, as in production); the new batch of N rows is
generated, validated once and loaded into the workspace's warehouse as one batch.

Timed, each configuration in a fresh process, with Prefect's temporary server started beforehand:
  * export: the batch's rows written as Parquet partitions by hash of respondent id (`export_batch`);
  * for Dask: LocalCluster start (N worker processes, one thread each, loopback, reporting to the
    child's temporary Prefect server, as `--cluster local:N` starts it);
  * cold scoring: `score_partition_task` over every partition (in this process: Prefect's default
    task runner, exactly the default path; Dask: prefect-dask's DaskTaskRunner); includes each
    worker's imports and its first model load from MLflow;
  * warm scoring: the same flow again on the same workers (results written to fresh files);
  * register: every partition's results loaded into the warehouse in one transaction;
  * in the in-process child also one partition scored alone, and the features of that
    partition with its activity days and with 8x as many, for a cost per activity day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import (
    Figures, JsonOption, SeedOption, WorkdirOption, fail, fmt_mb, fmt_rate, fmt_s, prepared, rate, run_stage,
    section, work_folder,
)

ACTIVITY_MULTIPLE = 8  # the features timed on a partition's days and on this many times as many


def _quiet_prefect(home: Path) -> None:
    import os

    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# ---------------------------------------------------------------- preparation (child processes)

def train_workspace(home: str, folder: str) -> dict[str, Any]:
    """Child: `balanceit train` on the labelled population, registering the champion in the workspace."""
    import json
    import subprocess
    import sys

    data = Path(folder)
    command = [str(Path(sys.executable).parent / "balanceit"), "--home", home, "train",
               "--data", str(data / "questionnaire.csv"), "--activity", str(data / "activity.csv"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"balanceit train failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"version": result["version"], "training_rows": result["training_rows"]}


def load_batch(home: str, folder: str) -> dict[str, Any]:
    """Child: the validated batch into the warehouse as one batch (what `ingest` loads, without re-validating)."""
    import pandas as pd

    from balanceit.config import load_settings
    from balanceit.data.contract import ACTIVITY_KEY, QUESTIONNAIRE_KEY
    from balanceit.data.load import _record_batch
    from balanceit.warehouse import open_warehouse, transaction, upsert_frame

    data = Path(folder)
    batch_id = "bench-cluster-batch"
    answers = pd.read_parquet(data / "questionnaire.parquet").assign(ingestion_id=batch_id)
    activity = pd.read_parquet(data / "activity.parquet").assign(ingestion_id="bench-cluster-activity")
    with open_warehouse(load_settings(Path(home))) as con, transaction(con):
        upsert_frame(con, "activity", activity, ACTIVITY_KEY)
        upsert_frame(con, "questionnaire", answers, QUESTIONNAIRE_KEY)
        _record_batch(con, batch_id, str(data / "questionnaire.csv"), "questionnaire", len(answers))
    return {"batch_id": batch_id, "rows": len(answers), "activity_days": len(activity)}


# ---------------------------------------------------------------- measured stage (child processes)

def score_on(home: str, batch_id: str, workers: int, rows_per_partition: int) -> dict[str, Any]:
    """Child: export, score cold and warm (in this process when workers == 0, else on a LocalCluster), register."""
    import dataclasses
    import time

    _quiet_prefect(Path(home))
    from prefect import flow

    from balanceit.benchmarks.child import measured
    from balanceit.config import load_settings
    from balanceit.data.partitions import batch_folder, export_batch, partitions_root, register_results, remove
    from balanceit.flows.cluster import on_runner
    from balanceit.flows.score import score_partition_task
    from balanceit.models.registry import champion_version
    from balanceit.warehouse import open_warehouse

    settings = load_settings(Path(home))
    root = partitions_root(settings)
    version = champion_version(settings)

    @flow(name="bench warm-up")
    def warm_up() -> None:
        return None

    warm_up()  # Prefect's temporary server starts here, not inside a timed section
    remove(batch_folder(root, batch_id))  # nothing left from an interrupted run
    with measured("export"), open_warehouse(settings) as con:
        partitions = export_batch(con, batch_id, root, version, rows_per_partition)
    cluster = None
    runner_settings = settings
    if workers:
        from distributed import LocalCluster

        from balanceit.flows.cluster import local_cluster_kwargs

        cluster_kwargs = local_cluster_kwargs(workers)  # as `--cluster local:N` starts it
        with measured("cluster_start"):
            cluster = LocalCluster(**cluster_kwargs)
        runner_settings = load_settings(home, cluster.scheduler_address)
    try:
        with measured("score_cold"):
            on_runner(runner_settings, score_partition_task, partitions, settings, version)
        warm_folder = partitions[0].scored.parent.with_name("warm")
        warm_folder.mkdir(exist_ok=True)
        warm = [dataclasses.replace(p, scored=warm_folder / p.scored.name, features=warm_folder / p.features.name)
                for p in partitions]
        with measured("score_warm"):
            on_runner(runner_settings, score_partition_task, warm, settings, version)
    finally:
        if cluster is not None:
            with measured("cluster_stop"):
                cluster.close()
    sizes = [_partition_size(p) for p in partitions]
    extra: dict[str, Any] = {}
    if not workers:
        extra = _one_partition(home, partitions[0], version, settings)
        # Registration runs in the flow's process whatever the task runner: timed once, here.
        started = time.perf_counter()
        with measured("register"), open_warehouse(settings) as con:
            extra["scored_rows"] = sum(register_results(con, batch_id, version, partitions, root).values())
        extra["register_wall_seconds"] = time.perf_counter() - started
    return {"partitions": len(partitions), "rows": int(sum(s[0] for s in sizes)),
            "activity_days": int(sum(s[1] for s in sizes)), "partition_rows": [s[0] for s in sizes],
            "partition_activity_days": [s[1] for s in sizes], **extra}


def _partition_size(partition) -> tuple[int, int]:
    import pyarrow.dataset as ds

    return ds.dataset(str(partition.questionnaire)).count_rows(), ds.dataset(str(partition.activity)).count_rows()


def _one_partition(home: str, partition, version: str, settings) -> dict[str, Any]:
    """One partition scored alone (model already loaded), and the features' cost per activity day."""
    import dataclasses

    import pandas as pd

    from balanceit.benchmarks.child import measured
    from balanceit.features.build import features_for_frames
    from balanceit.flows.score import _model
    from balanceit.models.score import score_partition

    model = _model(settings, version)
    alone = partition.scored.parent.with_name("alone")
    alone.mkdir(exist_ok=True)
    copy = dataclasses.replace(partition, scored=alone / partition.scored.name,
                               features=alone / partition.features.name)
    with measured("one_partition"):
        score_partition(copy, model, version, settings)
    answers = pd.read_parquet(str(partition.questionnaire))
    activity = pd.read_parquet(str(partition.activity))
    more = _more_days(activity, ACTIVITY_MULTIPLE)
    features_for_frames(answers.head(1000), activity.head(1000), settings.activity_window_days)  # warm-up
    with measured("features_1x"):
        features_for_frames(answers, activity, settings.activity_window_days)
    with measured("features_more"):
        features_for_frames(answers, more, settings.activity_window_days)
    return {"one_partition_rows": len(answers), "one_partition_activity_days": len(activity),
            "more_activity_days": len(more)}


def _more_days(activity, multiple: int):
    """`multiple` copies of the wearable days, each shifted 64 days earlier (the keys stay unique)."""
    import pandas as pd

    dates = pd.to_datetime(activity["date"])
    pieces = [activity]
    for copy in range(1, multiple):
        shifted = dates - pd.Timedelta(days=64 * copy)
        shifted = shifted.dt.date if activity["date"].dtype == object else shifted.astype(activity["date"].dtype)
        pieces.append(activity.assign(date=shifted))
    return pd.concat(pieces, ignore_index=True)


# ---------------------------------------------------------------- the command

@bench_app.command("cluster")
def cluster(rows: Annotated[int, typer.Option(help="Rows N of the batch to score.")] = 1_000_000,
            rows_per_partition: Annotated[int, typer.Option(
                help="Rows per partition (the setting's default is 250,000).")] = 250_000,
            train_rows: Annotated[int, typer.Option(help="Labelled rows the model is trained on.")] = 20_000,
            workers: Annotated[str, typer.Option(help="Dask worker counts to compare, comma-separated.")] = "1,2",
            seed: SeedOption = 0, workdir: WorkdirOption = None, as_json: JsonOption = False) -> None:
    """Scoring rows/s in this process and on 1 and 2 Dask workers (LocalCluster), speed-up, per-partition cost.

    At the defaults (1M rows, three runs) this takes many minutes and several GB; --rows 250000 is quicker.
    """
    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        fail("--workers must be comma-separated integers, e.g. 1,2", as_json)
    if rows < rows_per_partition or any(w < 1 for w in counts):
        fail("--rows must be at least --rows-per-partition, and worker counts at least 1", as_json)
    figures = Figures(f"balanceit bench cluster: {rows:,} rows in partitions of {rows_per_partition:,}")
    name = f"cluster-r{rows}-t{train_rows}-s{seed}"
    answers: dict[int, dict[str, Any]] = {}
    with work_folder(workdir, name) as folder:
        home = folder / "home"
        prepared(folder, "generate-train", "balanceit.benchmarks.inputs:write_population",
                 folder=str(folder / "train"), rows=train_rows, seed=seed + 1, labelled=True)
        trained = prepared(folder, "train", "balanceit.benchmarks.cluster:train_workspace",
                           home=str(home), folder=str(folder / "train"))
        prepared(folder, "generate-batch", "balanceit.benchmarks.inputs:write_population",
                 folder=str(folder / "batch"), rows=rows, seed=seed + 2, labelled=False)
        prepared(folder, "validate-batch", "balanceit.benchmarks.inputs:validate_files", folder=str(folder / "batch"))
        batch = prepared(folder, "load-batch", "balanceit.benchmarks.cluster:load_batch",
                         home=str(home), folder=str(folder / "batch"))
        for count in [0, *counts]:
            answers[count] = run_stage("balanceit.benchmarks.cluster:score_on", home=str(home),
                                       batch_id=batch["batch_id"], workers=count,
                                       rows_per_partition=rows_per_partition)

    base = answers[0]
    n, parts = base["result"]["rows"], base["result"]["partitions"]
    days = base["result"]["activity_days"]
    warm_rate = {k: rate(n, section(a, "score_warm")["seconds"]) for k, a in answers.items()}
    cold_rate = {k: rate(n, section(a, "score_cold")["seconds"]) for k, a in answers.items()}
    one = section(base, "one_partition")["seconds"]
    one_rows = base["result"]["one_partition_rows"]
    one_days = base["result"]["one_partition_activity_days"]
    f1, fm = section(base, "features_1x")["seconds"], section(base, "features_more")["seconds"]
    more_days = base["result"]["more_activity_days"]
    per_day = (fm - f1) / (more_days - one_days) if more_days > one_days else float("nan")
    figures.title = (f"balanceit bench cluster: {n:,} rows ({days:,} activity days) in {parts} partitions "
                     f"of ~{rows_per_partition:,}; model v{trained['version']} from MLflow")
    figures.heading("one partition, in a fresh process (model already loaded)")
    figures.add(f"score_partition: {one_rows:,} rows, {one_days:,} activity days", fmt_s(one))
    figures.add("per row", f"{one / one_rows * 1e6:,.1f} µs")
    figures.add(f"features alone ({one_days:,} days)", fmt_s(f1))
    figures.add(f"features with {ACTIVITY_MULTIPLE}x the days ({more_days:,})", fmt_s(fm))
    figures.add("marginal feature cost per activity day", f"{per_day * 1e6:,.3f} µs")
    figures.heading("the batch: export, score (cold, warm), register")
    for count, answer in answers.items():
        label = "in-process (default runner)" if count == 0 else f"Dask LocalCluster, {count} worker(s)"
        extra = ""
        if count:
            extra = (f"; cluster start {fmt_s(section(answer, 'cluster_start')['seconds'])}, "
                     f"stop {fmt_s(section(answer, 'cluster_stop')['seconds'])}")
        warm_seconds = section(answer, "score_warm")["seconds"]
        figures.add(f"{label}: warm", f"{fmt_rate(warm_rate[count])} ({fmt_s(warm_seconds)})")
        figures.add(f"{label}: cold{extra}",
                    f"{fmt_rate(cold_rate[count])} ({fmt_s(section(answer, 'score_cold')['seconds'])})")
    for count in counts:
        figures.add(f"speed-up, {count} worker(s) vs in-process (warm / cold)",
                    f"{warm_rate[count] / warm_rate[0]:.2f}x / {cold_rate[count] / cold_rate[0]:.2f}x")
    if len(counts) > 1:
        figures.add(f"speed-up, {counts[-1]} vs {counts[0]} worker(s) (warm)",
                    f"{warm_rate[counts[-1]] / warm_rate[counts[0]]:.2f}x")
    figures.add("export to Parquet partitions (in-process child)", fmt_s(section(base, "export")["seconds"]))
    figures.add("register results, one transaction", fmt_s(section(base, "register")["seconds"]))
    figures.add("peak memory, in-process warm scoring", fmt_mb(section(base, "score_warm")["peak_mb"]))
    figures.notes.append("cold = first flow run: includes each worker's imports and its model load from MLflow; "
                         "warm = the same workers again (results to fresh files)")
    figures.notes.append("in-process = Prefect's default task runner (threads in one process), the default path")
    figures.data = {
        "rows": n, "activity_days": days, "partitions": parts, "rows_per_partition": rows_per_partition,
        "trained": trained, "batch": batch,
        "configurations": {("in_process" if k == 0 else f"dask_{k}"): {
            "workers": k, "sections": a["sections"], "process_peak_mb": a["process_peak_mb"],
            "warm_rows_per_second": warm_rate[k], "cold_rows_per_second": cold_rate[k], "result": a["result"]}
            for k, a in answers.items()},
        "one_partition": {"rows": one_rows, "activity_days": one_days, "seconds": one,
                          "features_seconds": f1, "features_more_seconds": fm, "more_activity_days": more_days,
                          "feature_seconds_per_activity_day": per_day},
        "speed_up_warm": {k: warm_rate[k] / warm_rate[0] for k in counts},
        "speed_up_cold": {k: cold_rate[k] / cold_rate[0] for k in counts},
    }
    figures.finish(as_json)
