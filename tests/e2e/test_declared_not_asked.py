"""A survey may declare the questions it did not ask (`--not-asked`), whatever its file holds there:
stored blank, scored as unknown, and part of what makes an ingestion itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from balanceit.cli import app
from balanceit.config import Settings
from balanceit.data.load import ingest
from balanceit.data.synthetic import generate
from balanceit.warehouse import open_warehouse
from conftest import run

DECLARED = ("back_pain", "neck_pain")


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    """Every row answers the pain questions; one row's neck pain is not even an allowed answer."""
    answers = generate(300, seed=31).questionnaire
    answers.loc[0, "neck_pain"] = "unbearable"
    path = tmp_path_factory.mktemp("survey") / "survey.csv"
    answers.to_csv(path, index=False)
    return path


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "ws")


def test_declared_questions_are_stored_blank_and_never_judged(settings, survey):
    with open_warehouse(settings) as con:
        summary = ingest(con, survey, "questionnaire", DECLARED)
        answered = con.execute("SELECT count(back_pain), count(neck_pain), count(shoulder_pain) FROM questionnaire "
                               "WHERE ingestion_id = ?", [summary.ingestion_id]).fetchone()
    assert (summary.status, summary.accepted, summary.quarantined) == ("loaded", 300, 0)
    assert answered[:2] == (0, 0) and answered[2] > 250


def test_the_declaration_is_part_of_the_ingestion(settings, survey):
    """The same file declared otherwise is a new ingestion; declared alike, in any order, it is not."""
    with open_warehouse(settings) as con:
        undeclared = ingest(con, survey, "questionnaire")
        declared = ingest(con, survey, "questionnaire", DECLARED)
        again = ingest(con, survey, "questionnaire", DECLARED[::-1])
    assert undeclared.quarantined == 1  # "unbearable" breaks the rule when the question counts
    assert declared.status == "loaded" and declared.ingestion_id != undeclared.ingestion_id
    assert (again.status, again.ingestion_id) == ("already_loaded", declared.ingestion_id)


def test_an_unknown_or_required_question_is_a_one_line_error(tmp_path, survey):
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "ws"), "ingest", "questionnaire", str(survey),
                                      "--not-asked", "back_pain,age,bak_pain"], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot be declared not asked: 'age', 'bak_pain' ("), lines


@pytest.mark.slow
def test_a_scored_batch_is_scored_and_reported_without_the_declared_questions(demo_workspace, survey, tmp_path):
    """On a copy of the demo workspace: the shared one's latest batch stays what the other tests expect."""
    home = tmp_path / "workspace"
    shutil.copytree(demo_workspace[0], home)
    scored = run(home, "score", str(survey), "--not-asked", ",".join(DECLARED), "--output", str(tmp_path / "s.csv"))
    assert scored["rows_scored"] == 300
    report = run(home, "report", "population", "--batch", scored["batch_id"])
    assert report["not_asked_questions"] == list(DECLARED)
    assert "Not asked in this survey:</strong> back_pain, neck_pain." in Path(report["path"]).read_text("utf-8")
    scores = pd.read_csv(tmp_path / "s.csv")
    assert not scores["missing_answers"].fillna("").str.contains("back|neck").any()
    # One person explained as the batch was scored: the same risk, and the undeclared questions unknown too.
    person = scores.iloc[0]
    explained = run(home, "explain", person["respondent_id"])
    assert explained["risk"] == pytest.approx(person["risk"], abs=1e-12)
    assert not {"back_pain", "neck_pain"} & set(explained["missing_answers"])
