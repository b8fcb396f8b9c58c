"""What every flow shares: workspace settings and a task decorator that never caches.

Tasks take plain values (paths, ids) and open the warehouse themselves, so the same task runs in
this process or on a Dask worker; nothing is cached between runs because every stage is
idempotent on its own terms (content-addressed ingestions, keyed upserts).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

from balanceit.config import Settings, load_settings

stage = partial(prefect_task, cache_policy=NO_CACHE, persist_result=False)


def workspace(home: str | None) -> Settings:
    return load_settings(Path(home) if home else None)


def partitions_root(settings: Settings) -> Path:
    """Where partition files go: `shared_path` (a folder every Dask worker reaches) or `<home>/partitions`."""
    return Path(settings.shared_path).expanduser().resolve() if settings.shared_path else settings.partitions_path
