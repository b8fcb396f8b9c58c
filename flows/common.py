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
