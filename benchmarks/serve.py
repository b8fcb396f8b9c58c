"""`balanceit bench serve`: one-row requests to `mlflow models serve` over loopback, p50 and p99.

Not timed: a small labelled population is generated, a model is trained and registered in a
temporary workspace (in-process, no Prefect), and the scoring server is started on a free
loopback port. Timed: `--requests` sequential one-row `dataframe_split` requests on one
keep-alive connection, each a different respondent, as a survey platform would send them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Annotated

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import Figures, JsonOption, SeedOption, work_folder

P99_TARGET_MS = 50.0
MODEL_URI = "models:/balanceit-imbalance-risk@champion"


def _register_model(home: Path, rows: int, seed: int) -> tuple[str, list[dict[str, object]]]:
    """Train and register a champion in `home`; return its candidate's name and request rows (text, as exported)."""
    import pandas as pd

    from balanceit.config import Settings
    from balanceit.data.contract import LABEL
    from balanceit.data.synthetic import generate
    from balanceit.data.validation import validate_questionnaire
    from balanceit.features.build import answers_and_features
    from balanceit.models.registry import log_and_register
    from balanceit.models.score import request_rows
    from balanceit.models.train import train_model

    settings = Settings(home=home, cv_folds=2)
    settings.root.mkdir(parents=True, exist_ok=True)
    answers = validate_questionnaire(generate(rows, seed=seed, labelled=True).questionnaire.astype("string"),
                                     "generated").accepted
    answers, features = answers_and_features(answers, None, settings.activity_window_days)
    labels = answers[LABEL].astype(bool)
    trained = train_model(features, labels, settings)
    log_and_register(trained, answers, features, labels, settings, "bench serve")
    requests = request_rows(answers)
    return trained.chosen, requests.astype(object).where(pd.notna(requests), None).to_dict("records")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(home: Path, port: int) -> subprocess.Popen:
    bin_folder = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
           "PATH": f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(
        [str(bin_folder / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
         "--host", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the scoring server exited while starting")
        try:
            connection = HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the scoring server did not answer /ping within 120 s")


def _latencies(port: int, rows: list[dict[str, object]], count: int, warmup: int = 20) -> list[float]:
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    columns = list(rows[0])
    seconds = []
    for index in range(warmup + count):
        row = rows[index % len(rows)]
        body = json.dumps({"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns]]}})
        started = time.perf_counter()
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"request {index} answered {response.status}: {answer[:200]!r}")
        if index >= warmup:
            seconds.append(elapsed)
    return seconds


@bench_app.command("serve")
def bench_serve(requests: Annotated[int, typer.Option(help="One-row requests to time.")] = 1000,
                train_rows: Annotated[int, typer.Option(help="Rows the served model is trained on.")] = 5000,
                seed: SeedOption = 0, as_json: JsonOption = False) -> None:
    """Latency of one-row requests to the champion behind `mlflow models serve` (p50, p99).

    Trains a small model and starts a local server first: about a minute at the defaults.
    """
    import numpy as np

    figures = Figures(f"balanceit bench serve: {requests:,} one-row requests over loopback")
    with work_folder(None, "serve") as folder:
        model, rows = _register_model(folder, train_rows, seed)
        port = _free_port()
        server = _start_server(folder, port)
        try:
            latencies_ms = np.array(_latencies(port, rows, requests)) * 1000
        finally:
            server.terminate()
            server.wait(timeout=30)
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    figures.data.update({"model": model, "requests": requests, "p50_ms": p50, "p99_ms": p99, "max_ms": latencies_ms.max()})
    figures.add(f"model served (chosen by cross-validation on {train_rows:,} rows)", model)
    figures.add("requests (sequential, one keep-alive connection)", f"{requests:,}")
    figures.add("p50 latency", f"{p50:.1f} ms")
    figures.target("p99_ms", "p99 latency", p99, f"< {P99_TARGET_MS:.0f} ms", p99 < P99_TARGET_MS, f"{p99:.1f} ms")
    figures.add("max latency", f"{latencies_ms.max():.1f} ms")
    figures.finish(as_json)
