"""Prefect's temporary API server dies with the command that started it, even one killed by `kill -9`.

Without PREFECT_API_URL, Prefect 3 starts a uvicorn subprocess and stops it at exit (atexit), which a
killed process never reaches. On Linux the server gets a parent-death signal (prctl PR_SET_PDEATHSIG):
SIGTERM, on which uvicorn shuts down, as soon as its starter ends, however it ends.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from functools import partial, wraps
from typing import Any
from unittest import mock

from prefect._internal.concurrency.threads import in_global_loop, in_run_sync_loop

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _terminate_with(parent: int) -> None:
    """In the child before exec: ask for SIGTERM when the parent ends, and send it now if it already has."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def tie_temporary_server() -> None:
    """Start Prefect's temporary server (when one is started at all) tied to this process; Linux only.
    Called once, where `flows.common` is imported."""
    if not sys.platform.startswith("linux") or os.environ.get("PREFECT_API_URL"):
        return  # elsewhere, or a real server: nothing to tie (and Prefect's server module not worth importing)
    from prefect.server.api.server import SubprocessASGIServer

    run_server = SubprocessASGIServer._run_uvicorn_command

    @wraps(run_server)
    def run_tied(server: Any) -> subprocess.Popen:
        # The signal follows the thread that started the child, so only threads that live as long as the
        # process qualify: the main thread and Prefect's two process-wide event-loop threads.
        if not (threading.current_thread() is threading.main_thread() or in_global_loop() or in_run_sync_loop()):
            return run_server(server)
        tied = partial(subprocess.Popen, preexec_fn=partial(_terminate_with, os.getpid()))
        with mock.patch.object(subprocess, "Popen", tied):
            return run_server(server)

    SubprocessASGIServer._run_uvicorn_command = run_tied
