"""What a newcomer reads on the command line: help for every command, one clean line per error, and
ingest summaries in words."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from balanceit.cli import app


def _command_paths(command=typer.main.get_command(app), path: tuple[str, ...] = ()):
    """Every command and subcommand, `bench ...` included, as the words that call it."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths())


def test_every_command_is_covered():
    assert {"score", "ingest questionnaire", "report person", "bench score", "bench cli"} <= {
        " ".join(path) for path in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda path: " ".join(path) or "balanceit")
def test_help_shows_no_value_placeholder_for_flags_and_describes_arguments(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Usage" in result.output, result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output
    arguments = result.output.split("Arguments", 1)[1].split("╰", 1)[0] if "Arguments" in result.output else ""
    for line in arguments.splitlines()[1:]:
        assert line.split("<", 1)[-1].split(">", 1)[-1].strip(" │[]required*"), f"undescribed argument: {line}"


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"balanceit {version('balanceit')}"


def test_text_summaries_print_figures_as_tables_not_json(capsys):
    from balanceit.cli import _emit

    _emit({"scores_file": "/tmp/x.csv", "held_out_metrics": {"roc_auc": 0.8123, "brier": 0.17}}, False, "Demo")
    printed = capsys.readouterr().out
    assert "scores_file: /tmp/x.csv" in printed
    assert "{" not in printed and "roc_auc" in printed and "0.8123" in printed


def test_a_summary_table_writes_nested_figures_in_words(capsys, monkeypatch):
    """`score`'s ingestion table holds its reasons and first rows: words, not Python's dict and list repr."""
    from balanceit.cli import _emit, console

    monkeypatch.setattr(console, "width", 160)  # the terminal's width (COLUMNS) must not wrap what is checked
    _emit({"ingestion": {"accepted": 9610, "reasons": {"age: missing required value": 83},
                         "first_rows": {"age: missing required value": [243, 289]}, "message": "[bold]x"}},
          False, "Scoring")
    printed = capsys.readouterr().out
    assert "{" not in printed and "'" not in printed and "9,610" in printed
    assert "age: missing required value: 83" in printed and "243, 289" in printed and "[bold]x" in printed


def test_a_population_summary_rounds_its_figures_and_counts_its_group_tables(capsys, monkeypatch):
    """`report population` without --json: estimates to four decimals, the group tables counted, not dumped."""
    from balanceit.cli import _emit, console

    monkeypatch.setattr(console, "width", 160)
    _emit({"n": 5000, "not_asked_note": "", "segments": [{"key": "occupation", "groups": []}] * 7,
           "estimates": {"mean_risk": {"value": 0.595418110827862, "ci_low": 0.5911204436322127}}},
          False, "Population report")
    printed = capsys.readouterr().out
    assert "n: 5,000" in printed and "segments: 7 (--json lists them)" in printed and "occupation" not in printed
    assert "value: 0.5954; ci_low: 0.5911" in printed and "not_asked_note" not in printed


@pytest.mark.parametrize("command", [("score",), ("train", "--data"), ("ingest", "questionnaire")],
                         ids=" ".join)
def test_a_missing_input_is_one_clear_error_at_once(tmp_path, command):
    """What a user sees when a command cannot find its input: the problem, no engine traceback, and at
    once: Prefect (its temporary server, its folder in the workspace) is not started for it."""
    balanceit = Path(sys.executable).parent / "balanceit"
    missing = tmp_path / "no-such-survey.csv"
    workspace = tmp_path / "ws"
    environment = {name: value for name, value in os.environ.items() if name != "PREFECT_HOME"}
    started = time.perf_counter()
    result = subprocess.run([str(balanceit), "--home", str(workspace), *command, str(missing)],
                            capture_output=True, text=True, timeout=300, env=environment)
    assert time.perf_counter() - started < 5
    assert result.returncode == 2
    assert f"error: {missing}: no such file or folder" in result.stderr.splitlines()  # one line, never wrapped
    said = result.stdout + result.stderr
    assert "Traceback" not in said and "ERROR" not in said and "Encountered exception" not in said
    assert not (workspace / "prefect").exists()


@pytest.mark.slow
def test_ingest_counts_rows_and_rules_apart_and_says_already_loaded_in_words(tmp_path):
    """12 rows: row 3 breaks two rules, row 6 one of the same, row 10 two more (its sitting hours)."""
    rows = pd.DataFrame({"respondent_id": [f"r{i}" for i in range(12)], "submitted_at": "2025-01-03",
                         "age": "40", "sex": "male", "sitting_hours_per_day": "4"})
    rows.loc[2, ["age", "sex"]] = ["200", "robot"]
    rows.loc[5, "age"] = "5"
    rows.loc[9, "sitting_hours_per_day"] = "30"
    rows.to_csv(tmp_path / "twelve.csv", index=False)
    command = ["--home", str(tmp_path / "ws"), "ingest", "questionnaire", str(tmp_path / "twelve.csv")]

    first = CliRunner().invoke(app, command, env={"COLUMNS": "80"})
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert "rows read 12, accepted 9, quarantined 3 for breaking 4 rules" in lines[0]
    assert any("2 rows age: must be between 16 and 100 (rows 3, 6)" in line for line in lines)
    assert any("sitting_hours_per_day: must be between 0 and 24 (row 10)" in line for line in lines)

    again = CliRunner().invoke(app, command, env={"COLUMNS": "80"})
    assert again.exit_code == 0 and "already loaded, nothing changed" in again.output
    assert "already_loaded" not in again.output
