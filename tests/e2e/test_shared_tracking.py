"""Shared tracking for a team: MLflow as a tracking server with its backend store in a real database.

`mlflow server` runs on loopback with a sqlite backend store (PostgreSQL in production, see the
README) and proxies artifacts (`--serve-artifacts`). `balanceit train` and `balanceit score` reach it
through `MLFLOW_TRACKING_URI` only; the registered model, its alias and its artifacts end up in the
server's store, and the workspace keeps no MLflow state of its own. Scoring runs on a 2-worker
LocalCluster, so the workers too load the champion from the server.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from balanceit.data.synthetic import generate, write
from conftest import run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("own_mlflow_store")]

MODEL = "balanceit-imbalance-risk"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> Iterator[dict[str, object]]:
    """`mlflow server` on 127.0.0.1 with a sqlite backend store and proxied artifacts; stopped afterwards."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    store, artifacts = folder / "mlflow.db", folder / "artifacts"
    mlflow = Path(sys.executable).parent / "mlflow"
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{store}",
         "--artifacts-destination", str(artifacts), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{uri}/health", server, folder / "server.log")
        yield {"uri": uri, "store": store, "artifacts": artifacts, "port": port}
    finally:
        stop(server)
        log.close()


def listening_addresses(port: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port}


def test_train_and_score_against_a_tracking_server(tracking_server, tmp_path, monkeypatch):
    from balanceit import config

    # As a user sets it before starting balanceit: read once, at first use, and inherited by the workers.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server["uri"])
    monkeypatch.setattr(config, "user_tracking_uri", lambda: tracking_server["uri"])
    monkeypatch.setenv("BALANCEIT_CV_FOLDS", "3")
    monkeypatch.setenv("BALANCEIT_ROWS_PER_PARTITION", "1000")
    os.environ.setdefault("PREFECT_HOME", str(tmp_path / "prefect"))
    home, data = tmp_path / "home", tmp_path / "data"
    training = write(generate(3000, seed=21, labelled=True), data / "training")
    batch = write(generate(3000, seed=22, labelled=False), data / "batch")

    trained = run(home, "train", "--data", str(training["questionnaire"]), "--activity", str(training["activity"]))
    assert trained["tracking_uri"] == tracking_server["uri"]
    assert trained["alias"] == "champion"
    scored = run(home, "score", str(batch["questionnaire"]), "--activity", str(batch["activity"]),
                 "--cluster", "local:2")
    assert scored["model_version"] == trained["version"] and scored["rows_scored"] == 3000
    assert scored["partitions"] >= 2 and scored["cluster"] == "local:2"

    # The model, its alias and its run live in the server's database, its files under the server's folder.
    with sqlite3.connect(tracking_server["store"]) as store:
        assert store.execute("SELECT name FROM registered_models").fetchall() == [(MODEL,)]
        assert store.execute("SELECT alias, version FROM registered_model_aliases WHERE name = ?",
                             [MODEL]).fetchall() == [("champion", int(trained["version"]))]
        source = store.execute("SELECT source FROM model_versions WHERE name = ? AND version = ?",
                               [MODEL, int(trained["version"])]).fetchone()[0]
        assert store.execute("SELECT count(*) FROM runs WHERE run_uuid = ?", [trained["run_id"]]).fetchone()[0] == 1
    assert source.startswith(("models:/", "mlflow-artifacts:/"))
    assert any(p.name == "MLmodel" for p in Path(tracking_server["artifacts"]).rglob("MLmodel"))
    assert not (home / "mlflow.db").exists() and not list((home / "mlartifacts").glob("*"))

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_server["uri"])
    assert client.get_model_version_by_alias(MODEL, "champion").version == trained["version"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT respondent_id) FROM scores WHERE model_version = ?",
                           [trained["version"]]).fetchone() == (3000, 3000)
    assert listening_addresses(tracking_server["port"]) == {"127.0.0.1"}


# ------------------------------------------------------------------ Prefect: server, work pool, worker

RUN_NOW = """
from prefect.deployments import run_deployment

print(run_deployment("nightly-retrain/nightly-retrain", timeout=0).id)
"""


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_prefect_server_work_pool_and_worker_run_the_nightly_deployment(tmp_path, monkeypatch):
    """`prefect server start` on loopback, a process work pool, the nightly deployment, one worker run."""
    import json

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "home"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-server"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "BALANCEIT_CV_FOLDS": "2", "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    env.pop("BALANCEIT_HOME", None)
    prefect = str(Path(sys.executable).parent / "prefect")
    # Labelled answers waiting in the workspace's inbox: the nightly run ingests them and trains.
    (home / "inbox").mkdir(parents=True)
    generated = write(generate(2000, seed=31, labelled=True), tmp_path / "labelled")
    (home / "inbox" / "labelled.csv").write_bytes(Path(generated["questionnaire"]).read_bytes())
    (home / "inbox" / "activity.csv").write_bytes(Path(generated["activity"]).read_bytes())

    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(f"{api}/health", server, log_path)
            assert listening_addresses(port) == {"127.0.0.1"}
            subprocess.run([prefect, "work-pool", "create", "balanceit", "--type", "process"], env=env,
                           check=True, capture_output=True, timeout=120)
            balanceit = str(Path(sys.executable).parent / "balanceit")
            deployed = subprocess.run([balanceit, "--home", str(home), "deploy", "--pool", "balanceit", "--json"],
                                      env=env, check=True, capture_output=True, text=True, timeout=120)
            assert set(json.loads(deployed.stdout.strip().splitlines()[-1])["deployments"]) == {
                "nightly-retrain", "inbox-scoring"}
            started = subprocess.run([sys.executable, "-c", RUN_NOW], env=env, check=True, capture_output=True,
                                     text=True, timeout=120)
            flow_run_id = started.stdout.strip().splitlines()[-1]
            worker = subprocess.run([prefect, "worker", "start", "--pool", "balanceit", "--run-once"], env=env,
                                    capture_output=True, text=True, timeout=300)
            assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
            with urllib.request.urlopen(f"{api}/flow_runs/{flow_run_id}", timeout=10) as answer:
                state = json.load(answer)["state"]
            assert state["type"] == "COMPLETED", (state["message"], worker.stdout[-4000:], worker.stderr[-4000:])
        finally:
            stop(server)
    assert {p.name for p in (home / "inbox" / "done").iterdir()} == {"labelled.csv", "activity.csv"}
    versions = run(home, "models")["versions"]
    assert [v["aliases"] for v in versions] == [["champion"]]
