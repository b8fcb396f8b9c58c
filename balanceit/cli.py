"""The `balanceit` command line: one command per stage, each running its Prefect flow. Prefect and MLflow are
imported only inside commands, so `--help` is instant, and their environment is set before they load."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from typer.core import TyperOption

from balanceit.benchmarks.cli import bench_app
from balanceit.config import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Muscle-imbalance risk pipeline: ingest, train, score, explain, report.")
ingest_app = typer.Typer(no_args_is_help=True, help=(
    "Load a file into the warehouse (validated, never twice); each file of a folder is read and validated by "
    "its own task, on the cluster with --cluster."))
report_app = typer.Typer(no_args_is_help=True, help="Write HTML reports into the workspace.")
app.add_typer(ingest_app, name="ingest")
app.add_typer(report_app, name="report")
app.add_typer(bench_app, name="bench")

STATUS_WORDS = {"loaded": "loaded", "already_loaded": "already loaded, nothing changed"}

# An error is one line, however long; numbers in sentences are not coloured.
console = Console(soft_wrap=True, highlight=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False)

# A flag takes no value, but Typer 0.29 prints `<bool>` beside every one (--help, bench's too): print none.
if hasattr(TyperOption, "display_type_rich"):
    _value_type = TyperOption.display_type_rich
    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _value_type(self, ctx)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
RespondentArgument = Annotated[str, typer.Argument(help="The respondent's id, as in the questionnaire.")]
ClusterOption = Annotated[str | None, typer.Option(
    "--cluster", envvar="BALANCEIT_CLUSTER",
    help="Run the partition tasks on Dask: local:N (N worker processes on this machine) or "
         "tcp://HOST:PORT (an existing scheduler). Default: in this process.")]
NotAskedOption = Annotated[str, typer.Option(
    "--not-asked", metavar="Q1,Q2", help="Questions this survey did not ask (contract names, comma-separated): "
                                         "stored blank whatever the file holds, and scored as unknown.")]


def _questions(names: str) -> tuple[str, ...]:
    return tuple(name.strip().lower() for name in names.split(",") if name.strip())


class _State:
    home: str | None = None  # as text: flows take their parameters as Prefect can record them


def _prepare(flows: bool = False) -> Settings:
    """Workspace settings; for a command that runs `flows`, Prefect's home is made inside the workspace
    before Prefect is imported (a command that runs none never imports it)."""
    # Health data on a shared machine: whatever this command and its processes create is its owner's only.
    os.umask(0o077)
    settings = load_settings(_State.home)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ["BALANCEIT_HOME"] = str(settings.root)
    if flows:
        prefect_home = Path(os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home)))
        prefect_home.mkdir(mode=0o700, parents=True, exist_ok=True)  # Prefect makes only the last folder
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # The temporary Prefect server's first start sets up its database (20 s or more); Prefect waits 20 s.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    return settings


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    """One JSON object for scripts; for people, `key: value` lines (paths never cut) and a table per group."""
    if as_json:
        print(json.dumps(result, default=str))
        return
    console.print(f"[bold]{title}[/]")
    for key, value in result.items():  # records (a report's group tables) are counted: --json lists them
        if not isinstance(value, dict) and value != "":
            text = (f"{len(value)} (--json lists them)" if value and isinstance(value[0], dict) else
                    json.dumps(value, default=str)) if isinstance(value, list) else _cell(value)
            console.print(f"  [cyan]{key}[/]: {escape(text)}")
    for key, value in result.items():
        if isinstance(value, dict):
            table = Table("figure", Column("value", justify="right"), title=key.replace("_", " "),
                          title_justify="left")
            for name, figure in value.items():
                table.add_row(name, escape(_cell(figure)))
            console.print(table)


def _cell(figure: object) -> str:
    """A figure as a person reads it: numbers with separators, `name: value` pairs and lists as words."""
    if isinstance(figure, dict):
        return "; ".join(f"{name}: {_cell(value)}" for name, value in figure.items())
    if isinstance(figure, list):
        return ", ".join(_cell(value) for value in figure)
    return f"{round(figure, 4):,}" if isinstance(figure, (int, float)) and not isinstance(figure, bool) else str(figure)


def _fail(message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"status": "error", "message": message}))
    else:
        errors.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


@contextmanager
def _refusals_fail(as_json: bool, *refusals: type[Exception]) -> Iterator[None]:
    """A refusal (a bad input, an unknown batch, person or version) is one error line, not a traceback."""
    try:
        yield
    except refusals as problem:
        _fail(str(problem), as_json)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        print(f"balanceit {version('balanceit')}")
        raise typer.Exit()


@app.callback()
def main(home: Annotated[Path | None, typer.Option(
        "--home", envvar="BALANCEIT_HOME", help="Workspace folder for all state (default ./.balanceit).")] = None,
         _version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print the installed version and exit.")] = False) -> None:
    _State.home = str(home) if home else None


@app.command()
def generate(rows: Annotated[int, typer.Option(help="Respondents to generate.")] = 1000,
             out: Annotated[Path, typer.Option(help="Folder for questionnaire.csv, activity.csv, truth.csv.")]
             = Path("generated"),
             labelled: Annotated[bool, typer.Option("--labelled", help="Fill the `imbalance` column.")] = False,
             seed: Annotated[int, typer.Option(help="Random seed (same seed, same population).")] = 0,
             as_json: JsonOption = False) -> None:
    """Write a synthetic population (questionnaire, wearable days, and the truth behind them)."""
    from balanceit.data.synthetic import generate as make_population, write

    paths = write(make_population(rows, seed=seed, labelled=labelled), out)
    _emit({name: str(path) for name, path in paths.items()}, as_json, "Generated")


@contextmanager
def _flow_run(cluster: str | None, as_json: bool, *inputs: Path | None) -> Iterator[str | None]:
    """Prepared for a flow run in this process: the --cluster value if it parses (a clear error otherwise), None
    for in-process. A missing input is refused first, at once: Prefect and its temporary server take 10-40 s
    to start."""
    for path in inputs:
        if path and not path.exists():
            _fail(f"{path}: no such file or folder", as_json)
    _prepare(flows=True)
    from balanceit.flows.cluster import parse_cluster
    from balanceit.flows.common import interactive_runs

    with _refusals_fail(as_json, ValueError):
        cluster = cluster if parse_cluster(cluster) else None
    with interactive_runs():
        yield cluster


def _ingest(kind: str, path: Path, as_json: bool, cluster: str | None = None, not_asked: str = "") -> None:
    """A file, or a folder of files, each read and validated by its own task."""
    with _flow_run(cluster, as_json, path) as cluster:
        from balanceit.flows.ingest import ingest_flow

        summaries = ingest_flow(str(path), kind, _State.home, cluster, _questions(not_asked))
    refused = [s for s in summaries if s.status == "refused"]
    if as_json:
        folder = {"files": [s.to_dict() for s in summaries], "cluster": cluster, "refused": len(refused)}
        print(json.dumps(summaries[0].to_dict() if len(summaries) == 1 else folder, default=str))
    elif len(summaries) == 1 and refused:
        _fail(refused[0].message, False)
    else:
        for summary in summaries:
            _show_ingestion(summary, alone=len(summaries) == 1)
    if refused:
        raise typer.Exit(2)


def _show_ingestion(summary: Any, alone: bool) -> None:
    """A file's figures; alone, why rows were quarantined or skipped; in a folder, why it was refused."""
    rules = f" for breaking {len(summary.reasons)} rules (a row can break several)" if len(summary.reasons) > 1 else ""
    line = (f"[bold]{escape(summary.file)}[/]: {STATUS_WORDS.get(summary.status, summary.status)}. "
            f"rows read {summary.rows_read:,}, accepted {summary.accepted:,}, quarantined {summary.quarantined:,}{rules}")
    if not alone:
        console.print(line + (f" ({escape(summary.message)})" if summary.status == "refused" else ""))
        return
    console.print(line)
    for reason, count in summary.reasons.items():
        rows = summary.first_rows.get(reason, [])
        where = f" (row{'s' if count > 1 else ''} {', '.join(map(str, rows))}{', …' if count > len(rows) else ''})" \
            if rows else ""
        console.print(f"  {count:>7,} row{'s' if count > 1 else ' '} {reason}{where}")
    for reason, count in summary.skipped.items():
        console.print(f"  skipped     {count:>7} rows  {reason}")
    if summary.message:
        console.print(escape(summary.message))


@ingest_app.command("questionnaire")
def ingest_questionnaire(file: Annotated[Path, typer.Argument(help="The questionnaire file (or a folder of them).")],
                         as_json: JsonOption = False, cluster: ClusterOption = None,
                         not_asked: NotAskedOption = "") -> None:
    """Questionnaire answers (CSV, CSV.GZ, Parquet or JSON Lines, as the input contract says)."""
    _ingest("questionnaire", file, as_json, cluster, not_asked)


@ingest_app.command("activity")
def ingest_activity(file: Annotated[Path, typer.Argument(help="The daily activity file (or a folder of them).")],
                    as_json: JsonOption = False, cluster: ClusterOption = None) -> None:
    """Daily wearable activity (canonical columns or a Fitbit dailyActivity_merged.csv export)."""
    _ingest("activity", file, as_json, cluster)


@ingest_app.command("nhanes")
def ingest_nhanes(folder: Annotated[Path, typer.Argument(help="Folder with the cycle's P_DEMO, P_PAQ "
                                                             "(and P_BMX) XPT files.")], as_json: JsonOption = False) -> None:
    """An NHANES cycle folder (DEMO and PAQ required, BMX optional) as questionnaire rows."""
    _ingest("nhanes", folder, as_json)


@app.command()
def train(data: Annotated[Path | None, typer.Option(help="Labelled questionnaire file.")] = None,
          activity: Annotated[Path | None, typer.Option(help="Wearable days for the same people.")] = None,
          truth: Annotated[Path | None, typer.Option(
              help="Generator truth file: adds the Bayes-optimal ceiling to the metrics.")] = None,
          as_json: JsonOption = False, cluster: ClusterOption = None) -> None:
    """Train candidates, register the chosen model in MLflow, promote it if it is not worse.

    With --cluster, the training features are computed per partition on the Dask cluster.
    """
    with _flow_run(cluster, as_json, activity, data, truth) as cluster:
        from balanceit.flows.train import InputRefused, train_flow

        with _refusals_fail(as_json, InputRefused):
            result = train_flow(*(str(p) if p else None for p in (data, activity, truth)), _State.home, cluster)
    _emit(result, as_json, "Training")


@app.command()
def score(file: Annotated[Path, typer.Argument(help="The survey batch to score: a questionnaire file, "
                                                 "or an NHANES cycle folder.")],
          activity: Annotated[Path | None, typer.Option(help="Wearable days for the same people.")] = None,
          output: Annotated[Path | None, typer.Option(help="Write one row per person (.csv or .parquet).")] = None,
          as_json: JsonOption = False, cluster: ClusterOption = None, not_asked: NotAskedOption = "") -> None:
    """Score a survey batch with the champion model, with drivers, signs and what-ifs."""
    with _flow_run(cluster, as_json, activity, file) as cluster, \
            _refusals_fail(as_json, RuntimeError, LookupError):  # InputRefused is a RuntimeError
        from balanceit.flows.score import score_flow

        result = score_flow(str(file), str(activity) if activity else None, str(output) if output else None,
                            _State.home, cluster, _questions(not_asked))
    _emit(result, as_json, "Scoring")


@report_app.command("population")
def report_population(batch: Annotated[str | None, typer.Option(
        help="Batch id (default: the latest scored batch; 'training' for the training population).")] = None,
                      target: Annotated[Path | None, typer.Option(
                          help="Reweight the batch to this population: margins (CSV column,level,share or YAML) "
                               "or reference rows (CSV/Parquet, weighted by survey_weight).")] = None,
                      as_json: JsonOption = False) -> None:
    """The population report: risk bands, segments, drivers, what-ifs, model card, data quality, drift."""
    settings = _prepare()
    from balanceit.reports.build import write_population_report
    from balanceit.reports.reweight import TargetRefused

    with _refusals_fail(as_json, LookupError, TargetRefused):
        result = write_population_report(settings, batch, str(target) if target else None)
    _emit(result, as_json, "Population report")


@report_app.command("person")
def report_person(respondent_id: RespondentArgument, as_json: JsonOption = False) -> None:
    """One respondent's personal report (their data only)."""
    settings = _prepare()
    from balanceit.reports.build import write_person_report

    with _refusals_fail(as_json, LookupError):
        result = write_person_report(settings, respondent_id)
    _emit(result, as_json, "Personal report")


@app.command()
def explain(respondent_id: RespondentArgument, as_json: JsonOption = False) -> None:
    """Why one respondent's risk is what it is, and what would lower it."""
    settings = _prepare()
    from balanceit.reports.build import person_explanation

    with _refusals_fail(as_json, LookupError):
        explanation = person_explanation(settings, respondent_id)
    if as_json:
        print(json.dumps(explanation, default=str))
        return
    console.print(f"[bold]{escape(explanation['respondent_id'])}[/] ({explanation['submitted_at']}): "
                  f"risk {explanation['risk']:.0%}, [bold]{explanation['band']}[/]")
    console.print(explanation["summary"])
    for driver in explanation["drivers"]:
        answers = ", ".join(f"{a['question']}={a['value']}" for a in driver["answers"])
        console.print(f"  • {driver['sentence']}  [dim]({answers})[/]")
    for sign in explanation["signs"]:
        console.print(f"  sign: {sign}")
    if explanation["missing_answers"]:
        console.print(f"  missing answers: {', '.join(explanation['missing_answers'])}")
    for what_if in explanation["what_ifs"]:
        console.print(f"  what if {what_if['label']}: {what_if['risk_before']:.0%} -> {what_if['risk_after']:.0%}")
    for advice in explanation["recommendations"]:
        console.print(f"  → {advice['title']}: {advice['text']}")


@app.command()
def models(as_json: JsonOption = False) -> None:
    """Registered model versions with their aliases and held-out metrics."""
    settings = _prepare()
    from balanceit.models.registry import list_versions

    versions = list_versions(settings)
    if as_json:
        print(json.dumps({"model": settings.registered_model_name, "versions": versions}, default=str))
        return
    table = Table("version", "aliases", "roc_auc", "brier", "gate_reason",
                  title=settings.registered_model_name)
    for row in versions:
        table.add_row(row["version"], ", ".join(row["aliases"]),
                      *(f"{row[k]:.4f}" if row[k] is not None else "" for k in ("roc_auc", "brier")),
                      row["gate_reason"] or "")
    console.print(table)


@app.command()
def promote(version: Annotated[str, typer.Argument(help="The model version to make the champion.")]) -> None:
    """Make VERSION the champion (the current champion is remembered for rollback)."""
    settings = _prepare()
    from balanceit.models.registry import promote as promote_version

    with _refusals_fail(False, LookupError):
        promote_version(settings, version)
    console.print(f"version {escape(version)} is now the champion")


@app.command()
def rollback() -> None:
    """Give the champion alias back to the previous champion."""
    settings = _prepare()
    from balanceit.data.labels import restore_labels
    from balanceit.models.registry import rollback as roll_back, training_ingestion
    from balanceit.warehouse import open_warehouse

    with _refusals_fail(False, RuntimeError):
        version = roll_back(settings)
    console.print(f"version {version} is the champion again")

    ingestion = training_ingestion(settings, version)
    if ingestion:
        with open_warehouse(settings) as con:
            restored = restore_labels(con, ingestion)
        console.print(f"training data view restored: the labels of ingestion {ingestion} are current again "
                      f"({restored} changed back)")


@app.command()
def demo(rows: Annotated[int, typer.Option(help="Respondents in the built-in population.")] = 20000,
         seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
         as_json: JsonOption = False, cluster: ClusterOption = None) -> None:
    """Run the whole pipeline on a generated population: train, score a new batch, write reports.

    With --cluster, the training features and the new batch's partitions are computed on the Dask cluster.
    """
    with _flow_run(cluster, as_json) as cluster:
        from balanceit.flows.demo import demo_flow

        result = demo_flow(rows, seed, home=_State.home, cluster=cluster)
    _emit(result, as_json, "balanceit demo: where everything is")


@app.command()
def serve() -> None:
    """Run the schedules: nightly retraining and inbox scoring (Ctrl-C stops)."""
    settings = _prepare(flows=True)
    from balanceit.flows.schedule import serve_schedules

    serve_schedules(settings)


@app.command()
def deploy(pool: Annotated[str, typer.Option(help="Prefect work pool (type process) whose workers run the flows.")]
           = "balanceit",
           as_json: JsonOption = False) -> None:
    """Register the nightly retraining and inbox scoring as deployments on a Prefect server's work pool.

    For a team: `prefect server start`, PREFECT_API_URL pointing at it, `prefect work-pool create POOL
    --type process`, this command, then `prefect worker start --pool POOL` (see the README).
    """
    settings = _prepare(flows=True)
    from balanceit.flows.schedule import deploy_schedules

    try:
        result = deploy_schedules(settings, pool)
    except Exception as problem:  # no server, no such pool: say which
        _fail(f"could not deploy to work pool {pool!r}: {problem}", as_json)
    _emit(result, as_json, "Deployed")
