"""Where partition tasks run: the one thing `cluster` (`--cluster`, `BALANCEIT_CLUSTER`) chooses.

Unset, Prefect's default task runner in this process (no Dask import); `local:N`, a Dask LocalCluster of
N one-thread processes on 127.0.0.1 reporting to the flow's Prefect API; `tcp://HOST:PORT`, an existing
scheduler. Every stage runs the same code either way: only the work on one partition or file is sent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from prefect import Task, flow, unmapped
from prefect.task_runners import TaskRunner

from balanceit.config import Settings

_LOCAL = re.compile(r"^local(?::(\d+))?$")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://[^\s/]+$")


class ClusterConfigError(ValueError):
    """A `cluster` value that is neither `local[:N]` nor a scheduler address."""


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed `cluster` setting: a local cluster of `workers` processes, or a scheduler `address`."""

    address: str | None = None
    workers: int | None = None

    def describe(self) -> str:
        return self.address or f"local:{self.workers}"


def parse_cluster(text: str | None) -> ClusterSpec | None:
    """`None`/`""`/`"none"` -> None (in-process); `local[:N]` -> a LocalCluster; `tcp://HOST:PORT` -> that scheduler."""
    text = (text or "").strip()
    if text.lower() in {"", "none", "in-process", "off"}:
        return None
    local = _LOCAL.match(text)
    if local:
        workers = int(local.group(1)) if local.group(1) else (os.cpu_count() or 1)
        if workers < 1:
            raise ClusterConfigError(f"cluster {text!r}: a local cluster needs at least one worker")
        return ClusterSpec(workers=workers)
    if _ADDRESS.match(text):
        return ClusterSpec(address=text)
    raise ClusterConfigError(f"cluster {text!r} is not understood: use local:N (N worker processes on this "
                             "machine) or tcp://HOST:PORT (an existing Dask scheduler)")


def task_runner(spec: ClusterSpec | None) -> TaskRunner:
    """Prefect's default runner without a cluster, else prefect-dask's `DaskTaskRunner` (the `cluster` extra)."""
    if spec is None:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as missing:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("running on a Dask cluster needs the `cluster` extra: "
                           "pip install 'balanceit[cluster]' (prefect-dask, dask[distributed])") from missing
    if spec.address:
        return DaskTaskRunner(address=spec.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(spec.workers))


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """`LocalCluster` arguments: one-thread processes on loopback, no dashboard, and the flow's Prefect API
    (`PREFECT_API_URL`, else this process's temporary server, started if need be) in the workers'
    environment, so that no worker starts a Prefect server of its own."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
            "dashboard_address": None, "env": {"PREFECT_API_URL": api_url}}


@flow(validate_parameters=False)
def _each(work: Task, items: list, shared: tuple) -> list:
    return [future.result() for future in work.map(items, *(unmapped(value) for value in shared))]


def on_runner(settings: Settings, work: Task, items: list, *shared: Any) -> list:
    """`work(item, *shared)` for every item, as a subflow on the task runner `settings.cluster` chooses."""
    if not items:
        return []
    return _each.with_options(name=work.name, task_runner=task_runner(parse_cluster(settings.cluster)))(
        work, items, shared)
