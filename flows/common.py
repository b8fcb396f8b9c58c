"""What every flow shares: workspace settings and a task decorator that never caches.

Tasks take plain values (paths, ids) and open the warehouse themselves, so the same task runs in
this process or on a Dask worker; nothing is cached between runs because every stage is
idempotent on its own terms (content-addressed ingestions, keyed upserts).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE
from upath import UPath

from balanceit.config import Settings, load_settings

stage = partial(prefect_task, cache_policy=NO_CACHE, persist_result=False)


def workspace(home: str | None) -> Settings:
    return load_settings(Path(home) if home else None)


def partitions_root(settings: Settings) -> UPath:
    """Where partition files go: `shared_path` (a folder or fsspec URL every Dask worker reaches) or
    `<home>/partitions`; a local folder is made absolute, so workers elsewhere find it."""
    if not settings.shared_path:
        return UPath(settings.partitions_path)
    root = UPath(settings.shared_path)
    return root.expanduser().resolve() if isinstance(root, Path) else root


class _RefusalWithoutTraceback(logging.Filter):
    """A refused input is an answer the command prints, not a crash: Prefect still logs that the run
    failed and why, in one line, but not a traceback through its own engine above the user's error."""

    def __init__(self, refusals: tuple[type[Exception], ...]) -> None:
        super().__init__()
        self.refusals = refusals

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.refusals):
            record.exc_info = record.exc_text = None
        return True


def log_refusals_without_traceback(*refusals: type[Exception]) -> None:
    """Keep Prefect's task- and flow-run logs of these exceptions to one line each."""
    for logger in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(logger).addFilter(_RefusalWithoutTraceback(refusals))
