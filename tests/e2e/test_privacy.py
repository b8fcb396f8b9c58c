"""Nothing personal leaks, as a user on a shared machine runs balanceit (each command in its own process).

One workspace trains against a tracking server whose URI carries a password and scores on a Dask
LocalCluster; the password must then be in no output, file, MLflow record or Prefect database.
The same workspace shows the rest: a 1-person batch's report, one-line errors, owner-only files.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from balanceit.data.synthetic import generate, write
from test_shared_tracking import tracking_server  # noqa: F401 - the module's MLflow server

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-pw"
BALANCEIT = str(Path(sys.executable).parent / "balanceit")


def cli(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([BALANCEIT, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == expect, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def workspace(tracking_server, tmp_path_factory):  # noqa: F811
    """A workspace trained and scored (on `--cluster local:1`) against a credentialed tracking URI."""
    folder = tmp_path_factory.mktemp("privacy")
    credentialed = tracking_server["uri"].replace("http://", f"http://analyst:{PASSWORD}@")
    env = {**os.environ, "MLFLOW_TRACKING_URI": credentialed, "PREFECT_HOME": str(folder / "prefect"),
           "BALANCEIT_HOME": str(folder / "home"), "BALANCEIT_CV_FOLDS": "2"}
    training = write(generate(1500, seed=41, labelled=True), folder / "training")
    batch = write(generate(300, seed=42), folder / "batch")
    outputs = [cli(env, "train", "--data", str(training["questionnaire"]), "--activity", str(training["activity"])),
               cli(env, "score", str(batch["questionnaire"]), "--activity", str(batch["activity"]),
                   "--cluster", "local:1", "--output", str(folder / "home" / "exports" / "scores.csv")),
               cli(env, "report", "population")]
    return {"env": env, "home": folder / "home", "prefect": folder / "prefect", "batch": batch,
            "said": "".join(done.stdout + done.stderr for done in outputs), "store": tracking_server["store"]}


def test_a_credentialed_tracking_uri_appears_nowhere(workspace):
    assert "analyst:***@127.0.0.1" in workspace["said"]  # train names the server, masked
    assert PASSWORD not in workspace["said"]
    for folder in (workspace["home"], workspace["prefect"]):  # reports, warehouse, Prefect's database
        for path in folder.rglob("*"):
            assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD.encode() not in Path(workspace["store"]).read_bytes()  # MLflow tags and params


def test_a_one_person_batch_report_shows_no_individual_figure(workspace, tmp_path):
    one = pd.read_csv(workspace["batch"]["questionnaire"]).head(1).assign(respondent_id="solo-1")  # a new person
    one.to_csv(tmp_path / "one.csv", index=False)
    env, scores = workspace["env"], tmp_path / "one-scored.csv"
    batch = json.loads(cli(env, "score", str(tmp_path / "one.csv"), "--output", str(scores), "--json")
                       .stdout.splitlines()[-1])["batch_id"]
    risk = pd.read_csv(scores)["risk"].iloc[0]
    report = json.loads(cli(env, "report", "population", "--batch", batch, "--json").stdout.splitlines()[-1])
    assert report["n"] == 1 and report["estimates"] == {} and report["segments"] == []
    html = Path(report["path"]).read_text(encoding="utf-8")
    assert "Too few people to show figures" in html
    about_people = html[html.index('id="summary"'):html.index('id="model"')]  # the model card's calibration is not theirs
    assert f"{risk:.1%}" not in about_people and f"{risk:.0%}" not in about_people
    assert "What if habits changed" not in html and "Population estimates" not in html


def test_each_refusal_is_one_line_without_a_traceback(workspace, tmp_path):
    empty = {**workspace["env"], "BALANCEIT_HOME": str(tmp_path / "empty")}
    del empty["MLFLOW_TRACKING_URI"]  # its own registry, with no champion
    survey = tmp_path / "survey[draft].csv"
    pd.read_csv(workspace["batch"]["questionnaire"]).head(5).to_csv(survey, index=False)
    commands = [(workspace["env"], ["report", "person", "UNKNOWN"], "no scored submission for respondent 'UNKNOWN'"),
                (workspace["env"], ["report", "population", "--batch", "UNKNOWN"], "no batch 'UNKNOWN'"),
                (empty, ["score", str(survey)], "no champion model yet"),
                (workspace["env"], ["promote", "abc"], "no version 'abc'"),
                (workspace["env"], ["promote", "99"], "no version '99'"),
                (workspace["env"], ["score", str(tmp_path / "export[" / "b].csv")], "export[/b].csv")]
    for env, args, message in commands:
        done = cli(env, *args, expect=2)
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)


def test_health_data_is_readable_by_its_owner_only(workspace):
    home = workspace["home"]
    person = pd.read_csv(home / "exports" / "scores.csv")["respondent_id"].iloc[0]
    personal = Path(json.loads(cli(workspace["env"], "report", "person", person, "--json")
                               .stdout.splitlines()[-1])["path"])
    for path in (home, home / "reports", personal.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (home / "warehouse.duckdb", home / "reports" / "population-latest.html", personal,
                 home / "exports" / "scores.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_killed_command_leaves_no_prefect_server(tmp_path):
    """`kill -9` of a command that started Prefect's temporary server takes the server with it."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "BALANCEIT_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    command = subprocess.Popen([BALANCEIT, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        servers = []
        deadline = time.monotonic() + 240
        while not servers and time.monotonic() < deadline and command.poll() is None:
            time.sleep(1)
            servers = [child for child in psutil.Process(command.pid).children(recursive=True)
                       if "uvicorn" in child.cmdline()]
        assert servers, "the command started no Prefect server"
        os.kill(command.pid, signal.SIGKILL)
        command.wait()
        gone, alive = psutil.wait_procs(servers, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if command.poll() is None:
            command.kill()
