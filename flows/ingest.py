"""Ingest flow: a file, or a folder of files, each read and validated by its own task on the settings'
task runner (`flows.cluster`), then loaded here, one transaction per file. Content loaded before is not
read again."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from balanceit.config import Settings, load_settings
from balanceit.data.load import (IngestionSummary, Kind, content_sha256, ingest, loaded_before, now,
                                 refused_unread, store_validated, validate)
from balanceit.data.readers import visible_files
from balanceit.flows.cluster import on_runner
from balanceit.flows.common import InputRefused, stage
from balanceit.warehouse import open_warehouse


def ingest_file(settings: Settings, path: str, kind: Kind, not_asked: tuple[str, ...] = (),
                needed: bool = True) -> IngestionSummary:
    """One input of a run, in this process; the refusal of a file the run cannot go on without (`needed`)
    stops it, with the reason."""
    with open_warehouse(settings) as con:
        summary = ingest(con, path, kind, not_asked)
    if needed and summary.status == "refused":
        raise InputRefused(summary.message)
    return summary


validate_file = stage(name="read and validate a file", retries=2, retry_delay_seconds=1)(validate)


@flow(name="ingest")
def ingest_flow(path: str, kind: Kind = "questionnaire", home: str | None = None,
                cluster: str | None = None, not_asked: tuple[str, ...] = ()) -> list[IngestionSummary]:
    """Every visible file of `path` (sorted), one batch each, or `path` itself if it is a file or an NHANES
    cycle's folder; content loaded before (or earlier in the folder) is answered as `ingest` answers it,
    without validating it again."""
    settings, source = load_settings(home, cluster), Path(path)
    refusal = refused_unread(source, kind, not_asked)
    if refusal:
        return [refusal]
    files = [source] if kind == "nhanes" or not source.is_dir() else visible_files(source)
    if not files:
        return [IngestionSummary(str(source), kind, "refused", message=f"{source}: no files to ingest")]
    started = now()
    shas = {file: content_sha256(file, not_asked) for file in files}
    firsts: dict[str, Path] = {}  # per content not loaded before, its first file: the one file read
    with open_warehouse(settings) as con:
        for file, sha in shas.items():
            if sha not in firsts and not loaded_before(con, file, kind, sha):
                firsts[sha] = file
    todo = list(firsts.values())
    checked = dict(zip(todo, on_runner(settings, validate_file, todo, kind, not_asked), strict=True))
    with open_warehouse(settings) as con:
        return [store_validated(con, checked[file], file, kind, shas[file], started) if file in checked
                else ingest(con, file, kind, not_asked) for file in files]
