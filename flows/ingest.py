"""Ingest flow: one file (or NHANES folder) into the warehouse."""

from __future__ import annotations

from prefect import flow

from balanceit.data.load import IngestionSummary, Kind, ingest
from balanceit.flows.common import stage, workspace
from balanceit.warehouse import open_warehouse


@stage(name="ingest file")
def ingest_file(home: str | None, path: str, kind: Kind, not_asked: tuple[str, ...] = ()) -> IngestionSummary:
    with open_warehouse(workspace(home)) as con:
        return ingest(con, path, kind, not_asked)


@flow(name="ingest")
def ingest_flow(path: str, kind: Kind = "questionnaire", home: str | None = None,
                not_asked: tuple[str, ...] = ()) -> IngestionSummary:
    return ingest_file(home, path, kind, not_asked)
