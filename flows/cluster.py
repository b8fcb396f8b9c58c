"""Beyond one machine: the flows' partition tasks on a Dask cluster, through Prefect's own integration.

Where partition tasks run is one setting, `cluster` (`Settings.cluster`, `BALANCEIT_CLUSTER`, or
`--cluster` on the command line):

| value | where |
|---|---|
| unset (default) | in this process, Prefect's default task runner; nothing from Dask is imported |
| `local:N` | a Dask `LocalCluster` of N worker processes (one thread each), started for the run, on 127.0.0.1 |
| `local` | the same with one worker per CPU |
| `tcp://HOST:PORT` (or `tls://`) | an existing Dask scheduler (`dask scheduler` + `dask worker`) |

Only the partition work goes to the workers: scoring a partition, computing a partition's
features, reading and validating one input file. Everything that touches the DuckDB warehouse
(exporting partitions, registering results, loading validated rows) stays in the flow's process, one
transaction per batch. Partitions travel as Parquet files under the partitions folder
(`Settings.shared_path`, default `<home>/partitions`), which every worker must be able to read and
write; workers load the model from MLflow (`MLFLOW_TRACKING_URI` / the workspace's sqlite store),
never from a local pickle.

Prefect's API: each task run is recorded by the Prefect server its worker talks to. The workers of a
`local:N` cluster are given the flow's API (`prefect_api_url`): `PREFECT_API_URL`, or when it is unset
the temporary server Prefect starts in the flow's process, which listens on 127.0.0.1, where those
workers run. Without it, every worker process would start a temporary server of its own (a `uvicorn`
subprocess, seconds of start-up), which a worker killed mid-batch leaves running. Workers behind
a scheduler address are not started here: when `PREFECT_API_URL` is set where the flow runs, Prefect
sends it with every task (it wins over the worker's own), so that server must be reachable from the
workers; when it is unset, nothing is sent, and each worker process reports to its own
`PREFECT_API_URL` or else starts a temporary server of its own, as above. So with an existing
cluster, run a Prefect server and set `PREFECT_API_URL` for the flow (see the README).

Faults: Dask re-runs a task whose worker died on another worker (up to
`distributed.scheduler.allowed-failures`, 3 by default), and each Prefect task has its own retries;
a partition's result files are written under fixed names and atomically, and a partition whose
results exist is not computed again, so a retry or a rerun after a crash never writes a partition twice.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import flow, unmapped
from upath import UPath

from balanceit.config import Settings
from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.data.partitions import export_partition_inputs, remove, write_atomically
from balanceit.flows.common import partitions_root, stage, workspace
from balanceit.warehouse import open_warehouse, transaction, upsert_frame

if TYPE_CHECKING:  # only for type hints: the default path never imports Dask
    from prefect_dask import DaskTaskRunner

    from balanceit.data.load import IngestionSummary

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
    if text is None or not text.strip() or text.strip().lower() in {"none", "in-process", "off"}:
        return None
    text = text.strip()
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


def cluster_for(settings: Settings, override: str | None = None) -> ClusterSpec | None:
    """The cluster a run uses: `override` (a flow parameter, `--cluster`) or else the setting."""
    return parse_cluster(override if override else settings.cluster)


def task_runner(spec: ClusterSpec) -> DaskTaskRunner:
    """Prefect's `DaskTaskRunner` for a cluster spec (imports prefect-dask, the `cluster` extra)."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as missing:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("running on a Dask cluster needs the `cluster` extra: "
                           "pip install 'balanceit[cluster]' (prefect-dask, dask[distributed])") from missing
    if spec.address:
        return DaskTaskRunner(address=spec.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(spec.workers))


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """`LocalCluster` arguments: `workers` one-thread processes on loopback, no dashboard, and the flow's
    Prefect API in the workers' environment, so that no worker starts a Prefect server of its own."""
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
            "dashboard_address": None, "env": {"PREFECT_API_URL": prefect_api_url()}}


def prefect_api_url() -> str:
    """The Prefect API this process's flow runs report to: `PREFECT_API_URL`, or else Prefect's temporary
    server, started here if need be; it is one per process, so the flow run then uses the same one."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url)


# ------------------------------------------------------------------ training features per partition

@dataclass(frozen=True)
class FeaturePartition:
    """One partition of a training selection: its input files and where its features go."""

    number: int
    questionnaire: UPath
    activity: UPath
    features: UPath

    @property
    def done(self) -> bool:
        return self.features.exists()


def _training_selection(batch_id: str | None) -> str:
    """The rows whose features training builds (as `features.store.labelled_features` selects them)."""
    if batch_id is None:
        return "SELECT * FROM questionnaire WHERE imbalance IS NOT NULL"
    escaped = batch_id.replace("'", "''")
    return f"""SELECT q.* FROM questionnaire q JOIN batch_members m USING (respondent_id, submitted_at)
               WHERE m.batch_id = '{escaped}'"""


def export_training_partitions(con, batch_id: str | None, folder: UPath,
                               rows_per_partition: int) -> tuple[pd.DataFrame, list[FeaturePartition]]:
    """The selection's answers (sorted by key) and its rows as Parquet partitions by hash of respondent id."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW training_selection AS {_training_selection(batch_id)}")
    answers = con.execute(f"SELECT * FROM training_selection ORDER BY {', '.join(QUESTIONNAIRE_KEY)}").df()
    count = max(1, math.ceil(len(answers) / rows_per_partition))
    folder.mkdir(parents=True, exist_ok=True)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE training_members AS
                    SELECT respondent_id, submitted_at, hash(respondent_id) % {count} AS part
                    FROM training_selection""")
    inputs = export_partition_inputs(con, "training_members", count, folder / "input")
    return answers, [FeaturePartition(number, questionnaire, activity, folder / f"part-{number:05d}-features.parquet")
                     for number, (questionnaire, activity) in enumerate(inputs)]


@stage(name="features of a partition", retries=2, retry_delay_seconds=1)
def partition_features_task(partition: FeaturePartition, window_days: int) -> FeaturePartition:
    """Scoring's feature function (`features_for_frames`) on one Parquet partition."""
    from balanceit.features.build import features_for_frames

    if partition.done:
        return partition
    answers = pd.read_parquet(str(partition.questionnaire))
    activity = pd.read_parquet(str(partition.activity))
    write_atomically(features_for_frames(answers, activity, window_days), partition.features)
    return partition


@flow(name="features on partitions", validate_parameters=False)
def features_partitions_flow(partitions: list[FeaturePartition], window_days: int) -> list[FeaturePartition]:
    futures = partition_features_task.map(partitions, unmapped(window_days))
    return [future.result() for future in futures]


def partitioned_training_features(home: str | None, batch_id: str | None,
                                  cluster: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`flows.train.training_features` with the features computed per partition on the cluster.

    Same answers and features, row for row (sorted by key), and the features are upserted into
    the warehouse in one transaction, as the in-process stage does.
    """
    settings = workspace(home)
    spec = cluster_for(settings, cluster)
    folder = partitions_root(settings) / f"training-{uuid.uuid4().hex[:12]}"
    try:
        with open_warehouse(settings) as con:
            answers, partitions = export_training_partitions(con, batch_id, folder, settings.rows_per_partition)
        if answers.empty:
            features = pd.DataFrame(columns=list(QUESTIONNAIRE_KEY))
        else:
            runner = features_partitions_flow if spec is None else features_partitions_flow.with_options(
                task_runner=task_runner(spec))
            done = runner(partitions, settings.activity_window_days)
            features = pd.concat([pd.read_parquet(str(p.features)) for p in done], ignore_index=True)
            features = features.sort_values(list(QUESTIONNAIRE_KEY), ignore_index=True)
            if len(features) != len(answers):
                raise RuntimeError(f"partitioned features have {len(features)} rows for {len(answers)} answers")
            with open_warehouse(settings) as con, transaction(con):
                upsert_frame(con, "features", features, QUESTIONNAIRE_KEY)
    finally:
        remove(folder)
    if batch_id is not None and not answers.empty:
        labelled = answers[LABEL].notna().to_numpy()
        return answers[labelled].reset_index(drop=True), features[labelled].reset_index(drop=True)
    return answers, features


# ------------------------------------------------------------------ ingestion: one task per input file

def input_files(path: Path) -> list[Path]:
    """A file, or every visible file of a folder (sorted): each is one batch, read by its own task."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path]


@stage(name="read and validate a file", retries=2, retry_delay_seconds=1)
def validate_file_task(path: str, kind: str, folder: str) -> dict[str, Any]:
    """On a worker: read and validate one file; accepted and quarantined rows go to Parquet in `folder`."""
    from balanceit.data.validation import FileRefused, load_activity, load_questionnaire

    out = UPath(folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        validated = (load_activity if kind == "activity" else load_questionnaire)(Path(path))
    except FileRefused as refused:
        return {"path": path, "refused": str(refused)}
    write_atomically(validated.accepted, out / "accepted.parquet")
    write_atomically(validated.quarantined, out / "quarantined.parquet")
    return {"path": path, "refused": None, "rows_read": validated.rows_read, "skipped": validated.skipped,
            "folder": folder}


@flow(name="validate files", validate_parameters=False)
def validate_files_flow(jobs: list[tuple[str, str]], kind: str) -> list[dict[str, Any]]:
    futures = validate_file_task.map([path for path, _ in jobs], unmapped(kind), [folder for _, folder in jobs])
    return [future.result() for future in futures]


def _load_validated(con, path: Path, kind: str, sha: str, checked: dict[str, Any]) -> IngestionSummary:
    """`data.load.ingest`'s loading step for rows a worker validated: one transaction per file (batch)."""
    from balanceit.data.load import IngestionSummary, _now, ingestion_id_for, store_validated
    from balanceit.data.validation import Validated

    ingestion_id = ingestion_id_for(kind, sha)
    if checked["refused"]:
        return IngestionSummary(str(path), kind, "refused", ingestion_id, message=checked["refused"])
    folder = UPath(checked["folder"])
    validated = Validated(kind, str(path), checked["rows_read"], pd.read_parquet(str(folder / "accepted.parquet")),
                          pd.read_parquet(str(folder / "quarantined.parquet")), checked["skipped"])
    return store_validated(con, validated, path, kind, sha, _now())


@flow(name="ingest files")
def cluster_ingest_flow(path: str, kind: str = "questionnaire", home: str | None = None,
                        cluster: str | None = None) -> list[IngestionSummary]:
    """Ingest a file or a folder of files: each file read and validated by its own task (on the
    cluster when one is configured), then loaded here, one transaction per file. Content loaded
    before is skipped without being read again, as `balanceit ingest` does."""
    from balanceit.data.load import IngestionSummary, content_sha256, ingest, ingestion_id_for

    if kind not in ("questionnaire", "activity"):
        raise ValueError(f"{kind}: only questionnaire and activity files are ingested per file on a cluster")
    settings = workspace(home)
    spec = cluster_for(settings, cluster)
    if not Path(path).exists():
        return [IngestionSummary(path, kind, "refused", message=f"{path}: no such file or folder")]
    files = input_files(Path(path))
    if not files:
        return [IngestionSummary(path, kind, "refused", message=f"{path}: no files to ingest")]
    shas = {f: content_sha256(f) for f in files}
    with open_warehouse(settings) as con:
        loaded = {row[0] for row in con.execute(
            "SELECT ingestion_id FROM ingestions WHERE status = 'loaded'").fetchall()}
    todo, seen = [], set(loaded)
    for f in files:  # each content once; a repeat is answered by `ingest` as already loaded
        ingestion_id = ingestion_id_for(kind, shas[f])
        if ingestion_id not in seen:
            seen.add(ingestion_id)
            todo.append(f)
    root = partitions_root(settings) / f"ingest-{uuid.uuid4().hex[:12]}"
    try:
        checked: dict[Path, dict[str, Any]] = {}
        if todo:
            jobs = [(str(f.resolve()), str(root / f"file-{i:05d}")) for i, f in enumerate(todo)]
            runner = validate_files_flow if spec is None else validate_files_flow.with_options(
                task_runner=task_runner(spec))
            checked = {f: result for f, result in zip(todo, runner(jobs, kind), strict=True)}
        summaries = []
        with open_warehouse(settings) as con:
            for f in files:
                if f in checked:
                    summaries.append(_load_validated(con, f, kind, shas[f], checked[f]))
                else:  # loaded before: the same answer `ingest` gives
                    summaries.append(ingest(con, f, kind))
    finally:
        remove(root)
    return summaries


# ------------------------------------------------------------------ a Prefect server, a work pool, workers

def deploy_schedules(settings: Settings, pool: str) -> dict[str, Any]:
    """The two scheduled flows as deployments on `pool`, loaded by the pool's workers from this install.

    The flows' source is the folder that holds `flows/schedule.py` (the repository for an editable
    install), which every worker of a process pool on this machine can read.
    """
    from datetime import timedelta

    from balanceit.flows import schedule

    source = Path(schedule.__file__).resolve().parents[1]
    parameters = {"home": str(settings.root)}
    ids = {}
    for name, function, timing in (
            ("nightly-retrain", "nightly_retrain_flow", {"cron": settings.retrain_cron}),
            ("inbox-scoring", "inbox_scoring_flow",
             {"interval": timedelta(minutes=settings.inbox_interval_minutes)})):
        loaded = flow.from_source(source=str(source), entrypoint=f"flows/schedule.py:{function}")
        ids[name] = str(loaded.deploy(name=name, work_pool_name=pool, parameters=parameters,
                                      print_next_steps=False, **timing))
    return {"work_pool": pool, "deployments": ids, "source": str(source), "home": str(settings.root)}
