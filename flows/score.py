"""Score flow: ingest a survey batch, score its partitions with the champion, register, export.

The batch is exported as Parquet partitions, each scored by its own task (in this process by
default, or on a Dask cluster when `cluster` is set: see `flows.cluster`), and the results are
registered in the warehouse in one transaction.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from prefect import flow, unmapped

from balanceit.data.partitions import Partition, export_batch, register_results
from balanceit.flows.common import partitions_root, stage, workspace
from balanceit.flows.train import ingest_or_fail
from balanceit.models.pyfunc import RiskModel
from balanceit.models.registry import champion_version, load_model
from balanceit.models.score import score_partition
from balanceit.warehouse import open_warehouse


@lru_cache(maxsize=4)
def _model(home: str | None, version: str) -> RiskModel:
    """The registered version, loaded from MLflow once per worker process.

    A Dask worker reads the flow's registry through MLFLOW_TRACKING_URI in its environment (a local
    cluster's workers inherit the flow's; remote workers are started with it), never through a task
    parameter: a URI may carry a password, and Prefect stores parameters in its database.
    """
    return load_model(workspace(home), version)[0]


@stage(name="export partitions")
def export_partitions(home: str | None, batch_id: str, version: str) -> list[Partition]:
    settings = workspace(home)
    with open_warehouse(settings) as con:
        return export_batch(con, batch_id, partitions_root(settings), version, settings.rows_per_partition)


@stage(name="score partition", retries=2, retry_delay_seconds=1)
def score_partition_task(home: str | None, partition: Partition, version: str) -> Partition:
    return score_partition(partition, _model(home, version).model, version, workspace(home))


@flow(name="score partitions", validate_parameters=False)
def score_partitions_flow(home: str | None, partitions: list[Partition], version: str) -> list[Partition]:
    """Score every partition with the flow's task runner (a Dask cluster's, see `flows.cluster`)."""
    futures = score_partition_task.map(unmapped(home), partitions, unmapped(version))
    return [future.result() for future in futures]


@stage(name="register results")
def register(home: str | None, batch_id: str, version: str, partitions: list[Partition],
             output: str | None) -> dict[str, object]:
    settings = workspace(home)
    with open_warehouse(settings) as con:
        bands = register_results(con, batch_id, version, partitions, partitions_root(settings),
                                 Path(output) if output else None)
    return {"batch_id": batch_id, "rows_scored": sum(bands.values()), "model_version": version,
            "partitions": len(partitions), "bands": bands, "output": output}


def score_stage(home: str | None, batch_id: str, output: str | None,
                cluster: str | None = None) -> dict[str, object]:
    """Score one ingested batch with the champion: export, score every partition, register.

    With a cluster (`cluster`, else `Settings.cluster`) the partitions are scored by a subflow whose
    task runner is Prefect's DaskTaskRunner; export and registration stay in this process.
    """
    settings = workspace(home)
    version = champion_version(settings)
    partitions = export_partitions(home, batch_id, version)
    if cluster or settings.cluster:
        from balanceit.flows.cluster import cluster_for, task_runner

        spec = cluster_for(settings, cluster)
        if spec is not None:
            runner = score_partitions_flow.with_options(task_runner=task_runner(spec))
            done = runner(home, partitions, version)
            return {**register(home, batch_id, version, done, output), "cluster": spec.describe()}
    futures = score_partition_task.map(unmapped(home), partitions, unmapped(version))
    return register(home, batch_id, version, [future.result() for future in futures], output)


@flow(name="score")
def score_flow(path: str, activity: str | None = None, output: str | None = None, home: str | None = None,
               cluster: str | None = None, not_asked: tuple[str, ...] = ()) -> dict[str, object]:
    if activity:
        ingest_or_fail(home, activity, "activity")
    # A folder is an NHANES cycle, the only input that comes as one (DEMO + PAQ files, BMX optional).
    ingestion = ingest_or_fail(home, path, "nhanes" if Path(path).is_dir() else "questionnaire", not_asked)
    return {"ingestion": ingestion.to_dict(), **score_stage(home, ingestion.ingestion_id, output, cluster)}
