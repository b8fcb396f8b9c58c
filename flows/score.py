"""Score flow: a survey batch ingested, exported as Parquet partitions each scored with the champion by its
own task on the settings' task runner (`flows.cluster`), the results registered in one transaction."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from prefect import flow

from balanceit.config import Settings, load_settings
from balanceit.data.partitions import Partition, export_batch, partitions_root, register_results
from balanceit.flows.cluster import on_runner, parse_cluster
from balanceit.flows.common import stage
from balanceit.flows.ingest import ingest_file
from balanceit.models.terms import AdditiveTerms
from balanceit.models.registry import champion_version, load_model
from balanceit.models.score import score_partition
from balanceit.warehouse import open_warehouse


@lru_cache(maxsize=4)
def _model(settings: Settings, version: str) -> AdditiveTerms:
    """The registered version, loaded from MLflow once per worker process, through MLFLOW_TRACKING_URI in
    the worker's environment: a URI may carry a password, and Prefect stores parameters in its database."""
    return load_model(settings, version)[0]


@stage(name="score partition", retries=2, retry_delay_seconds=1)
def score_partition_task(partition: Partition, settings: Settings, version: str) -> Partition:
    return score_partition(partition, _model(settings, version), version, settings)


def score_stage(settings: Settings, batch_id: str, output: str | None) -> dict[str, object]:
    """Score one ingested batch with the champion: export, score every partition, register."""
    version = champion_version(settings)
    root = partitions_root(settings)
    with open_warehouse(settings) as con:
        partitions = export_batch(con, batch_id, root, version, settings.rows_per_partition)
    done = on_runner(settings, score_partition_task, partitions, settings, version)
    with open_warehouse(settings) as con:
        bands = register_results(con, batch_id, version, done, root, Path(output) if output else None)
    cluster = parse_cluster(settings.cluster)
    return {"batch_id": batch_id, "rows_scored": sum(bands.values()), "model_version": version,
            "partitions": len(done), "bands": bands, "output": output,
            **({"cluster": cluster} if cluster else {})}


@flow(name="score")
def score_flow(path: str, activity: str | None = None, output: str | None = None, home: str | None = None,
               cluster: str | None = None, not_asked: tuple[str, ...] = ()) -> dict[str, object]:
    settings = load_settings(home, cluster)
    if activity:
        ingest_file(settings, activity, "activity")
    # A folder is an NHANES cycle, the only input that comes as one (DEMO + PAQ files, BMX optional).
    ingestion = ingest_file(settings, path, "nhanes" if Path(path).is_dir() else "questionnaire", not_asked)
    return {"ingestion": ingestion.to_dict(), **score_stage(settings, ingestion.ingestion_id, output)}
