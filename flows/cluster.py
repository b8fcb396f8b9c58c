"""Where partition tasks run: the one thing `cluster` (`--cluster`, `BALANCEIT_CLUSTER`) chooses.

Unset, Prefect's default task runner in this process (no Dask import); `local:N`, a Dask LocalCluster of
N one-thread processes on 127.0.0.1 reporting to the flow's Prefect API; `tcp://HOST:PORT`, an existing
scheduler. Every stage runs the same code either way: only the work on one partition or file is sent.
"""

from __future__ import annotations

import os
import re
from typing import Any

from prefect import Task, flow, unmapped
from prefect.task_runners import TaskRunner

from balanceit.config import Settings
from balanceit.flows.common import without_heartbeats

_LOCAL = re.compile(r"^local(?::(\d+))?$")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://[^\s/]+$")


def parse_cluster(text: str | None) -> str | None:
    """`None`/`""`/`"none"` -> None (in-process); `local[:N]` -> `local:N`, a LocalCluster of N processes;
    `tcp://HOST:PORT` -> that scheduler's address; anything else, a ValueError saying what is understood."""
    text = (text or "").strip()
    if text.lower() in {"", "none", "in-process", "off"}:
        return None
    local = _LOCAL.match(text)
    if local:
        workers = int(local.group(1)) if local.group(1) else (os.cpu_count() or 1)
        if workers < 1:
            raise ValueError(f"cluster {text!r}: a local cluster needs at least one worker")
        return f"local:{workers}"
    if _ADDRESS.match(text):
        return text
    raise ValueError(f"cluster {text!r} is not understood: use local:N (N worker processes on this "
                     "machine) or tcp://HOST:PORT (an existing Dask scheduler)")


def task_runner(cluster: str | None) -> TaskRunner:
    """Prefect's thread pool without a cluster, one thread per core (partitions in memory at once: no more than
    cores), else prefect-dask's `DaskTaskRunner` (the `cluster` extra); `cluster` as `parse_cluster` answers it."""
    if cluster is None:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=os.cpu_count())
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as missing:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("running on a Dask cluster needs the `cluster` extra: "
                           "pip install 'balanceit[cluster]' (prefect-dask, dask[distributed])") from missing
    if not cluster.startswith("local:"):
        return DaskTaskRunner(address=cluster)
    workers = int(cluster.removeprefix("local:"))
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(workers))


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
    with without_heartbeats():  # the parent flow's heartbeat covers its subflow
        return _each.with_options(name=work.name, task_runner=task_runner(parse_cluster(settings.cluster)))(
            work, items, shared)
