"""The champion as a model other tools call: pyfunc in a fresh process, and `mlflow models serve`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run

from balanceit.models.pyfunc import SERVING_PROCESS_VARIABLE

pytestmark = pytest.mark.slow
MODEL_URI = "models:/balanceit-imbalance-risk@champion"

# Loads the model with balanceit's own install hidden, so only the code packaged with the model can serve it.
FRESH_PROCESS = """
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__ and "editable" not in repr(f)]
sys.path = [p for p in sys.path if not p.rstrip("/").endswith("main")]
import importlib.util
assert importlib.util.find_spec("balanceit") is None, "balanceit is importable without the model's code"
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
rows = pd.read_csv(sys.argv[2])
mlflow.pyfunc.load_model(sys.argv[3]).predict(rows).to_parquet(sys.argv[4])
"""
# Headers as survey exports spell them (the contract matches names case-insensitively, trimmed).
VARIANT_HEADERS = {"respondent_id": "RESPONDENT_ID", "sex": " Sex ", "age": "AGE", "sitting_hours_per_day": "Sitting_Hours_Per_Day "}


@pytest.fixture(scope="module")
def fresh_batch(demo_workspace, tmp_path_factory) -> tuple[Path, Path]:
    """Rows nobody has wearable data for, so `balanceit score` and the pyfunc see the same inputs."""
    home, _ = demo_workspace
    rows = pd.read_csv(home / "demo" / "new-batch" / "questionnaire.csv", dtype=str).head(300)
    rows["respondent_id"] = "pyfunc-" + rows["respondent_id"]
    path = tmp_path_factory.mktemp("pyfunc") / "batch.csv"
    rows.to_csv(path, index=False)
    return home, path


def test_pyfunc_in_a_fresh_process_matches_balanceit_score(fresh_batch, tmp_path):
    """A CSV read with plain pandas.read_csv, headers in other case and spacing, columns shuffled and extra
    columns: one answer per row, in order, the same as `balanceit score` on the same file."""
    home, batch = fresh_batch
    rows = pd.read_csv(batch, dtype=str).rename(columns=VARIANT_HEADERS)
    rows["clinic"], rows["Notes"] = "north", "seen twice"
    export = tmp_path / "export.csv"
    rows[list(np.random.default_rng(3).permutation(rows.columns))].to_csv(export, index=False)
    scored = run(home, "score", str(export), "--output", str(tmp_path / "cli.csv"))
    predictions = tmp_path / "pyfunc.parquet"
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, f"sqlite:///{home / 'mlflow.db'}", str(export),
                    MODEL_URI, str(predictions)], check=True, cwd=tmp_path, timeout=300)
    pyfunc = pd.read_parquet(predictions)
    cli = pd.read_csv(tmp_path / "cli.csv").set_index("respondent_id").loc[pyfunc["respondent_id"]]
    assert scored["rows_scored"] == len(cli) == len(pyfunc) == 300
    assert pyfunc["respondent_id"].tolist() == rows["RESPONDENT_ID"].tolist()  # one answer per row sent, in order
    assert pyfunc["error"].isna().all()
    np.testing.assert_allclose(pyfunc["risk"].to_numpy(), cli["risk"].to_numpy(), rtol=0, atol=1e-9)
    assert (pyfunc["driver_1"].fillna("").to_numpy() == cli["driver_1"].fillna("").to_numpy()).all()


LOAD_AND_COUNT_FROZEN = """
import gc, sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.pyfunc.load_model(sys.argv[2])
print(gc.get_freeze_count())
"""


@pytest.mark.parametrize("serving", [False, True], ids=["elsewhere", "in a scoring server"])
def test_only_a_scoring_server_freezes_the_heap_loading_built(fresh_batch, tmp_path, serving):
    """Frozen, a server's ~700k loaded objects stay out of full garbage collections (no 100-340 ms pauses);
    in anyone else's process the model must not freeze objects that could never be collected then."""
    home, _ = fresh_batch
    env = {name: value for name, value in os.environ.items() if name != SERVING_PROCESS_VARIABLE}
    if serving:
        env[SERVING_PROCESS_VARIABLE] = "the served model's folder"
    loaded = subprocess.run([sys.executable, "-c", LOAD_AND_COUNT_FROZEN, f"sqlite:///{home / 'mlflow.db'}", MODEL_URI],
                            env=env, capture_output=True, text=True, check=True, cwd=tmp_path, timeout=300)
    frozen = int(loaded.stdout.split()[-1])
    assert frozen > 100_000 if serving else frozen == 0


def test_the_serving_variable_is_the_one_mlflow_sets():
    from mlflow.pyfunc.scoring_server import _SERVER_MODEL_PATH

    assert SERVING_PROCESS_VARIABLE == _SERVER_MODEL_PATH


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _strict_json(text: bytes) -> dict:
    """JSON as a strict parser (a browser's JSON.parse) reads it: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _strict_json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _strict_json(error.read() or b"{}")


@pytest.fixture(scope="module")
def server(fresh_batch):
    home, _ = fresh_batch
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
         "--host", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, "the scoring server exited"
                time.sleep(0.5)
        else:
            pytest.fail("the scoring server did not answer /ping within 120 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_server_scores_good_rows_and_names_bad_ones(server, fresh_batch):
    _, batch = fresh_batch
    rows = pd.read_csv(batch, dtype=str).head(2)
    rows.loc[1, "age"] = "12"
    body = json.dumps({"dataframe_split": {"columns": list(rows.columns),
                                           "data": rows.astype(object).where(rows.notna(), None).values.tolist()}})
    status, answer = _post(f"{server}/invocations", body.encode())
    assert status == 200, answer
    good, bad = answer["predictions"]
    assert 0 <= good["risk"] <= 1 and good["band"] in {"low", "moderate", "high"} and good["error"] is None
    assert bad["risk"] is None and "age" in bad["error"] and "16" in bad["error"]
    assert bad["respondent_id"] == rows.loc[1, "respondent_id"]  # whose answers the error is about


def test_server_answers_400_to_a_request_that_is_not_a_table(server):
    status, _ = _post(f"{server}/invocations", b'"just a string"')
    assert status == 400


def test_server_answers_each_row_of_a_request_with_only_unknown_columns(server):
    """No row is lost without a word: each gets an error naming a missing required column."""
    body = json.dumps({"dataframe_split": {"columns": ["foo", "bar"], "data": [[1, 2], [3, 4]]}})
    status, answer = _post(f"{server}/invocations", body.encode())
    assert status == 200, answer
    assert len(answer["predictions"]) == 2
    for prediction in answer["predictions"]:
        assert prediction["risk"] is None and "respondent_id" in prediction["error"]


def test_server_answers_400_with_one_line_to_json_too_deep_to_read(server):
    depth = 100_000
    status, answer = _post(f"{server}/invocations", b'{"dataframe_split": ' + b"[" * depth + b"]" * depth + b"}")
    assert status == 400, answer
    assert "nested too deeply" in answer["message"] and "\n" not in answer["message"]
