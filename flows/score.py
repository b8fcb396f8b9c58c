"""Score flow: ingest a survey batch, score its partitions with the champion, register, export.

The batch is exported as Parquet partitions, each scored by its own task (in this process by
default), and the results are registered in the warehouse in one transaction.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
from prefect import flow, unmapped

from balanceit.data.partitions import Partition, export_batch, register_results
from balanceit.flows.common import stage, workspace
from balanceit.flows.train import ingest_or_fail
from balanceit.models.pyfunc import RiskModel
from balanceit.models.registry import champion_version, load_model
from balanceit.models.score import OUTPUT_COLUMNS, score_partition
from balanceit.warehouse import open_warehouse


def write_output(scored: pd.DataFrame, path: Path) -> Path:
    """One row per person: the contract's output columns first, then the what-ifs."""
    ordered = scored[[*OUTPUT_COLUMNS, *[c for c in scored.columns if c.startswith("whatif_")]]]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        ordered.to_parquet(path, index=False)
    else:
        ordered.to_csv(path, index=False)
    return path


@lru_cache(maxsize=4)
def _model(home: str | None, version: str) -> RiskModel:
    """The registered version, loaded from MLflow once per worker process."""
    return load_model(workspace(home), version)[0]


@stage(name="export partitions")
def export_partitions(home: str | None, batch_id: str, version: str) -> list[Partition]:
    settings = workspace(home)
    with open_warehouse(settings) as con:
        return export_batch(con, batch_id, settings.partitions_path, version, settings.rows_per_partition)


@stage(name="score partition", retries=2, retry_delay_seconds=1)
def score_partition_task(home: str | None, partition: Partition, version: str) -> Partition:
    return score_partition(partition, _model(home, version).model, version, workspace(home))


@stage(name="register results")
def register(home: str | None, batch_id: str, version: str, partitions: list[Partition],
             output: str | None) -> dict[str, object]:
    settings = workspace(home)
    with open_warehouse(settings) as con:
        scored = register_results(con, batch_id, version, partitions, settings.partitions_path)
    written = write_output(scored, Path(output)) if output else None
    return {"batch_id": batch_id, "rows_scored": len(scored), "model_version": version,
            "partitions": len(partitions), "bands": scored["band"].value_counts().to_dict(),
            "output": str(written) if written else None}


def score_stage(home: str | None, batch_id: str, output: str | None) -> dict[str, object]:
    """Score one ingested batch with the champion: export, score every partition, register."""
    version = champion_version(workspace(home))
    partitions = export_partitions(home, batch_id, version)
    futures = score_partition_task.map(unmapped(home), partitions, unmapped(version))
    return register(home, batch_id, version, [future.result() for future in futures], output)


@flow(name="score")
def score_flow(path: str, activity: str | None = None, output: str | None = None,
               home: str | None = None) -> dict[str, object]:
    if activity:
        ingest_or_fail(home, activity, "activity")
    ingestion = ingest_or_fail(home, path, "questionnaire")
    return {"ingestion": ingestion.to_dict(), **score_stage(home, ingestion.ingestion_id, output)}
