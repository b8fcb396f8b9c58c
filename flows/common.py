"""What every flow shares: a task decorator that never caches (every stage is idempotent on its own:
content-addressed ingestions, keyed upserts, partition files written once), and refusals (a bad file,
an unknown batch, person or version) logged by Prefect without a traceback.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from functools import partial

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE
from prefect.settings import get_current_settings, temporary_settings

from balanceit.flows.temporary_server import tie_temporary_server

stage = partial(prefect_task, cache_policy=NO_CACHE, persist_result=False)


def without_heartbeats() -> AbstractContextManager:
    """Flow runs started inside send no heartbeats. Prefect's heartbeats tell a server that a run a worker
    started still lives; every flow's end waits for its heartbeat thread's one-second sleep (0.5 s on average).
    For runs whose parent flow heartbeats, or that die with the command that shows their outcome. Prefect's
    settings are copied only when they have heartbeats (a copy costs ~0.1 s)."""
    if get_current_settings().flows.heartbeat_frequency is None:
        return nullcontext()
    return temporary_settings(updates={"flows.heartbeat_frequency": None})


def interactive_runs() -> AbstractContextManager:
    """A command's own flow runs: without heartbeats, unless PREFECT_FLOWS_HEARTBEAT_FREQUENCY asks for them
    (scheduled runs, in processes a runner or worker starts, keep Prefect's setting)."""
    return nullcontext() if os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY") else without_heartbeats()


class InputRefused(RuntimeError):
    """A file the flow needs was refused; the message names the file and the problem."""


_REFUSALS = (InputRefused, LookupError)


def _not_a_refusal(record: logging.LogRecord) -> bool:
    """A refused file, or a batch, person or version that does not exist, is a one-line answer, not a crash:
    Prefect's records of the failed run (traceback, exception repeated) are not shown; the run stays failed."""
    if record.exc_info:
        return not isinstance(record.exc_info[1], _REFUSALS)
    message = record.getMessage()
    # A task run's closing record carries no exception, only its final state's message naming the type.
    return not (message.startswith("Finished in state Failed")
                and any(f"exception {refusal.__name__}:" in message for refusal in _REFUSALS))


for _runs in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_runs).addFilter(_not_a_refusal)
tie_temporary_server()
