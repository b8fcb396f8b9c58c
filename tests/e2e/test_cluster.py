"""The same flows on a Dask cluster (prefect-dask's DaskTaskRunner): same answers, and faults cost a retry.

A fresh workspace trains on a small labelled population; a 50,000-row unlabelled batch is then
scored in this process and on a LocalCluster of 2 worker processes, in partitions of 12,500 rows.
One test kills a worker in the middle of a batch; another crashes a run between scoring and
registration and reruns it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from balanceit.data.synthetic import generate, write
from conftest import run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("own_mlflow_store")]

BATCH_ROWS = 50_000
ROWS_PER_PARTITION = 12_500  # hash partitions: 4 of about 12,500 rows
DRIVERS = ["driver_1", "driver_2", "driver_3"]
KEY = ["respondent_id", "submitted_at"]


def test_cluster_setting_is_parsed_and_default_imports_no_dask():
    import subprocess
    import sys

    from balanceit.flows.cluster import parse_cluster

    assert parse_cluster(None) is None and parse_cluster("") is None and parse_cluster("none") is None
    assert parse_cluster("local:3") == "local:3" and parse_cluster(" local ") == f"local:{os.cpu_count()}"
    assert parse_cluster("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    for bad in ("local:0", "127.0.0.1:8786", "http://x:1", "local:two"):
        with pytest.raises(ValueError):
            parse_cluster(bad)
    code = ("import sys; import balanceit.cli, balanceit.flows.score, balanceit.flows.cluster; "
            "print(any(m == 'dask' or m.startswith(('dask.', 'distributed', 'prefect_dask')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_partition_work_follows_the_cluster_setting(tmp_path, monkeypatch):
    """Ingestion, training features and scoring all map their partition work through `on_runner`: the
    setting (BALANCEIT_CLUSTER, or `--cluster` over it) chooses the task runner and nothing else."""
    from prefect.task_runners import ThreadPoolTaskRunner

    import balanceit.flows.cluster as cluster_flows
    from balanceit.config import load_settings
    from balanceit.flows.cluster import on_runner
    from balanceit.flows.common import stage

    @stage(name="double")
    def double(number: int, factor: int) -> int:
        return number * factor

    chosen = []
    monkeypatch.setattr(cluster_flows, "task_runner", lambda spec: chosen.append(spec) or ThreadPoolTaskRunner())
    monkeypatch.setenv("BALANCEIT_CLUSTER", "local:2")
    assert on_runner(load_settings(tmp_path), double, [1, 2, 3], 2) == [2, 4, 6]
    assert on_runner(load_settings(tmp_path, "tcp://127.0.0.1:8786"), double, [1], 3) == [3]
    assert chosen == ["local:2", "tcp://127.0.0.1:8786"]


def test_flow_runs_send_heartbeats_only_where_asked(tmp_path, monkeypatch):
    """A flow's end waits for its heartbeat thread's one-second sleep: a command's own runs and every subflow send
    none (the parent's heartbeat covers a subflow); PREFECT_FLOWS_HEARTBEAT_FREQUENCY, when set, is obeyed."""
    from prefect.settings import get_current_settings

    from balanceit.config import load_settings
    from balanceit.flows.cluster import on_runner
    from balanceit.flows.common import interactive_runs, stage

    @stage(name="heartbeat")
    def heartbeat(_: int) -> int | None:
        return get_current_settings().flows.heartbeat_frequency

    assert get_current_settings().flows.heartbeat_frequency is not None  # Prefect's default: 180 s
    assert on_runner(load_settings(tmp_path), heartbeat, [1]) == [None]
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    with interactive_runs():
        assert get_current_settings().flows.heartbeat_frequency is None
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    with interactive_runs():
        assert get_current_settings().flows.heartbeat_frequency is not None


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> None:
    """Prefect's state (its temporary server's database) in a folder of the test run, unless PREFECT_HOME is set."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect")))


def test_local_cluster_workers_report_to_the_flows_prefect_server(prefect_home):
    """The workers of `local:N` use the flow's Prefect API: none starts a temporary server of its own."""
    from prefect import flow
    from prefect.context import get_run_context

    from balanceit.flows.cluster import task_runner
    from balanceit.flows.common import stage

    @stage(name="what a worker reports to")
    def worker_prefect() -> dict[str, object]:
        import psutil

        servers = [child.cmdline() for child in psutil.Process().children(recursive=True)
                   if "uvicorn" in child.cmdline()]
        return {"api": str(get_run_context().client.api_url), "servers": servers}

    @flow(name="ask the workers")
    def ask_the_workers(tasks: int) -> tuple[str, list[dict[str, object]]]:
        futures = [worker_prefect.submit() for _ in range(tasks)]
        return str(get_run_context().client.api_url), [future.result() for future in futures]

    flow_api, answers = ask_the_workers.with_options(task_runner=task_runner("local:2"))(4)
    assert [answer["servers"] for answer in answers] == [[]] * 4
    assert {answer["api"] for answer in answers} == {flow_api}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prefect_home) -> dict[str, Path]:
    """A trained workspace and an unlabelled 50,000-row batch (with wearable days) not yet ingested."""
    home = tmp_path_factory.mktemp("cluster-home")
    data = tmp_path_factory.mktemp("cluster-data")
    training = write(generate(4000, seed=11, labelled=True), data / "training")
    batch = write(generate(BATCH_ROWS, seed=12, labelled=False), data / "batch")
    small = write(generate(20_000, seed=13, labelled=False), data / "small")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BALANCEIT_CV_FOLDS", "2")  # the model's quality is not what these tests look at
        run(home, "train", "--data", str(training["questionnaire"]), "--activity", str(training["activity"]))
    return {"home": home, "batch": batch["questionnaire"], "batch_activity": batch["activity"],
            "small": small["questionnaire"], "small_activity": small["activity"]}


@pytest.fixture
def small_partitions(monkeypatch):
    monkeypatch.setenv("BALANCEIT_ROWS_PER_PARTITION", str(ROWS_PER_PARTITION))


def scores_in_warehouse(home: Path, batch_id: str, version: str) -> tuple[int, int]:
    """(rows, duplicate keys) of one batch's scores by one model version."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("""
            SELECT count(*), count(*) - count(DISTINCT (respondent_id, submitted_at, model_version))
            FROM scores WHERE batch_id = ? AND model_version = ?""", [batch_id, version]).fetchone()


def test_local_cluster_scores_like_in_process(workspace, small_partitions, tmp_path):
    home = workspace["home"]
    started = time.perf_counter()
    alone = run(home, "score", str(workspace["batch"]), "--activity", str(workspace["batch_activity"]),
                "--output", str(tmp_path / "in-process.parquet"))
    in_process_seconds = time.perf_counter() - started
    started = time.perf_counter()
    spread = run(home, "score", str(workspace["batch"]), "--output", str(tmp_path / "cluster.parquet"),
                 "--cluster", "local:2")
    cluster_seconds = time.perf_counter() - started
    print(f"\n50,000 rows: in-process {in_process_seconds:.1f} s, LocalCluster(2) {cluster_seconds:.1f} s")

    assert alone["partitions"] == spread["partitions"] >= 4
    assert spread["cluster"] == "local:2" and "cluster" not in alone
    assert alone["rows_scored"] == spread["rows_scored"] == BATCH_ROWS
    a = pd.read_parquet(tmp_path / "in-process.parquet").sort_values(KEY, ignore_index=True)
    b = pd.read_parquet(tmp_path / "cluster.parquet").sort_values(KEY, ignore_index=True)
    assert (a[KEY] == b[KEY]).all().all()
    assert np.max(np.abs(a["risk"].to_numpy() - b["risk"].to_numpy())) <= 1e-9
    assert (a["band"] == b["band"]).all()
    for column in DRIVERS:
        assert (a[column].fillna("") == b[column].fillna("")).all(), column
    assert scores_in_warehouse(home, spread["batch_id"], spread["model_version"]) == (BATCH_ROWS, 0)


def _kill_a_busy_worker(address: str, results: Path, partitions: int, killed: dict, stop: threading.Event) -> None:
    """Once the first partition is scored, SIGKILL a worker process that is scoring another one, noting
    the Prefect servers (uvicorn processes) it had started: a killed worker cannot stop them."""
    import psutil
    from distributed import Client

    with Client(address, timeout=30) as client:
        pids = client.run(os.getpid)
        while not stop.is_set():
            done = len(list(results.glob("*/v*/part-*-scored.parquet")))
            busy = [worker for worker, tasks in client.processing().items() if tasks]
            if done >= 1 and busy:
                if done < partitions:
                    servers = [child.pid for child in psutil.Process(pids[busy[0]]).children(recursive=True)
                               if "uvicorn" in child.cmdline()]
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.update(worker=busy[0], pid=pids[busy[0]], partitions_done=done, prefect_servers=servers)
                return
            time.sleep(0.05)


def test_partitions_behind_an_fsspec_url_reach_the_workers(workspace, monkeypatch, tmp_path):
    """BALANCEIT_SHARED_PATH as a URL: DuckDB, pandas and the workers all reach the partitions through fsspec."""
    monkeypatch.setenv("BALANCEIT_ROWS_PER_PARTITION", "2000")
    monkeypatch.setenv("BALANCEIT_SHARED_PATH", f"file://{tmp_path / 'shared'}")
    batch = write(generate(5000, seed=14, labelled=False), tmp_path / "batch")
    result = run(workspace["home"], "score", str(batch["questionnaire"]), "--activity", str(batch["activity"]),
                 "--cluster", "local:2", "--output", str(tmp_path / "scores.parquet"))
    assert result["rows_scored"] == 5000 and result["partitions"] == 3
    assert scores_in_warehouse(workspace["home"], result["batch_id"], result["model_version"]) == (5000, 0)
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == 5000
    assert not list((tmp_path / "shared").rglob("*.parquet"))  # registered, then cleared away


def test_a_worker_killed_mid_batch_costs_a_retry_not_the_batch(workspace, monkeypatch):
    """On an existing scheduler (tcp://) whose workers have the flow's PREFECT_API_URL: a worker dies
    while the batch is scored; every row is scored once, and the worker leaves no Prefect server behind."""
    from distributed import LocalCluster

    from balanceit.flows.cluster import local_cluster_kwargs

    monkeypatch.setenv("BALANCEIT_ROWS_PER_PARTITION", "2500")  # 8 partitions: most still to do after the first
    home = workspace["home"]
    with LocalCluster(**local_cluster_kwargs(2)) as cluster:
        killed: dict = {}
        stop = threading.Event()
        killer = threading.Thread(target=_kill_a_busy_worker, daemon=True,
                                  args=(cluster.scheduler_address, home / "partitions", 8, killed, stop))
        killer.start()
        try:
            result = run(home, "score", str(workspace["small"]), "--activity", str(workspace["small_activity"]),
                         "--cluster", cluster.scheduler_address)
        finally:
            stop.set()
            killer.join(timeout=30)
    assert killed, "no worker was killed while partitions were still being scored"
    assert killed["prefect_servers"] == [], "the killed worker had started a Prefect server of its own"
    assert result["rows_scored"] == 20_000 and result["partitions"] == 8
    assert killed["partitions_done"] < result["partitions"]
    assert scores_in_warehouse(home, result["batch_id"], result["model_version"]) == (20_000, 0)


def test_a_rerun_after_a_crash_completes_the_batch_and_writes_no_partition_twice(workspace, small_partitions,
                                                                                 monkeypatch):
    """A run that dies after scoring one partition is finished by the next run, which scores only the rest."""
    from balanceit.flows import score as score_flows
    from balanceit.flows.score import score_flow
    from balanceit.models import score as score_module

    home = workspace["home"]
    original_score = score_flows.score_partition

    def die_after_the_first_partition(partition, model, version, settings):
        if partition.number > 0:
            raise OSError(f"worker lost while scoring partition {partition.number}")
        return original_score(partition, model, version, settings)

    monkeypatch.setattr(score_flows, "score_partition", die_after_the_first_partition)
    with pytest.raises(OSError, match="worker lost"):
        score_flow(str(workspace["batch"]), home=str(home))
    monkeypatch.setattr(score_flows, "score_partition", original_score)
    finished = sorted((home / "partitions").glob("*/v*/part-*-scored.parquet"))
    assert [p.name for p in finished] == ["part-00000-scored.parquet"]
    before = finished[0].stat().st_mtime_ns

    written: list[Path] = []
    seen: dict[Path, int] = {}
    original_write = score_module.write_atomically
    monkeypatch.setattr(score_module, "write_atomically",
                        lambda frame, path: (written.append(path), original_write(frame, path))[1])
    original_register = score_flows.register_results

    def register_and_look(con, batch_id, version, partitions, *rest):
        seen.update({p.scored: p.scored.stat().st_mtime_ns for p in partitions})
        return original_register(con, batch_id, version, partitions, *rest)

    monkeypatch.setattr(score_flows, "register_results", register_and_look)
    result = run(home, "score", str(workspace["batch"]))
    assert result["rows_scored"] == BATCH_ROWS and result["partitions"] >= 4
    assert seen[finished[0]] == before, "the partition finished before the crash was written again"
    assert finished[0] not in written and len(written) == 2 * (result["partitions"] - 1)
    assert scores_in_warehouse(home, result["batch_id"], result["model_version"]) == (BATCH_ROWS, 0)


def test_training_features_on_partitions_equal_the_warehouse_query(workspace, small_partitions):
    """Scoring's partition function (features_for_frames on Parquet partitions) gives training's features."""
    from balanceit.config import load_settings
    from conftest import labelled_features
    from balanceit.flows.train import training_features
    from balanceit.warehouse import open_warehouse

    home = workspace["home"]
    os.environ["BALANCEIT_ROWS_PER_PARTITION"] = "1000"  # restored by the fixture's monkeypatch
    answers, features = training_features(load_settings(home), None)
    with open_warehouse(load_settings(home)) as con:
        expected_answers, expected = labelled_features(con, load_settings(home))
    assert len(features) == len(expected) == 4000
    pd.testing.assert_frame_equal(answers, expected_answers)
    pd.testing.assert_frame_equal(features[expected.columns], expected, check_dtype=False, rtol=1e-12)
    assert not list((home / "partitions").glob("training-*"))


def test_a_folder_ingested_and_training_features_built_on_a_local_cluster(tmp_path, monkeypatch):
    """Each file of a folder read and validated by its own task, on a cluster or not; the warehouse gets what
    one-by-one ingestion gives."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # this test's own workspaces, not the module's
    population = generate(3000, seed=41, labelled=True)
    answers = population.questionnaire
    folder = tmp_path / "inbox"
    folder.mkdir()
    answers.iloc[:1500].to_csv(folder / "a.csv", index=False)
    broken = answers.iloc[1500:].copy()
    broken.loc[broken.index[:3], "age"] = 250  # three rows quarantined
    broken.to_csv(folder / "b.csv", index=False)
    activity = tmp_path / "activity.csv"
    population.activity.to_csv(activity, index=False)

    alone, folded, spread = tmp_path / "alone", tmp_path / "folded", tmp_path / "spread"
    run(alone, "ingest", "activity", str(activity))
    for name in ("a.csv", "b.csv"):
        run(alone, "ingest", "questionnaire", str(folder / name))
    run(folded, "ingest", "activity", str(activity))
    assert [f["status"] for f in run(folded, "ingest", "questionnaire", str(folder))["files"]] == ["loaded", "loaded"]
    run(spread, "ingest", "activity", str(activity))
    result = run(spread, "ingest", "questionnaire", str(folder), "--cluster", "local:2")
    assert [f["status"] for f in result["files"]] == ["loaded", "loaded"]
    assert [f["quarantined"] for f in result["files"]] == [0, 3]
    again = run(spread, "ingest", "questionnaire", str(folder), "--cluster", "local:2")
    assert [f["status"] for f in again["files"]] == ["already_loaded", "already_loaded"]

    def table(home: Path, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).df()

    for sql in ("SELECT * FROM questionnaire ORDER BY respondent_id, submitted_at",
                "SELECT * EXCLUDE (file) FROM quarantine ORDER BY ingestion_id, row_number, \"column\"",
                "SELECT batch_id, ingestion_id, kind, rows FROM batches ORDER BY batch_id",
                "SELECT * EXCLUDE (started_at, finished_at) FROM ingestions ORDER BY ingestion_id"):
        pd.testing.assert_frame_equal(table(alone, sql), table(spread, sql))
        pd.testing.assert_frame_equal(table(alone, sql), table(folded, sql))

    monkeypatch.setenv("BALANCEIT_CV_FOLDS", "2")
    trained = run(spread, "train", "--cluster", "local:2")
    assert trained["training_rows"] == 2997 and trained["version"] == "1"
