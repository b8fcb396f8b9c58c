"""Ingest flow: one file (or NHANES folder) into the warehouse."""

from __future__ import annotations

from prefect import flow

from balanceit.data.load import IngestionSummary, Kind, ingest
from balanceit.flows.common import stage, workspace
from balanceit.warehouse import open_warehouse


@stage(name="ingest file")
def ingest_file(home: str | None, path: str, kind: Kind) -> IngestionSummary:
    with open_warehouse(workspace(home)) as con:
        return ingest(con, path, kind)


@flow(name="ingest")
def ingest_flow(path: str, kind: Kind = "questionnaire", home: str | None = None) -> IngestionSummary:
    return ingest_file(home, path, kind)
