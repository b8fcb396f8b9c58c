"""NHANES 2017-2020 scored end to end by the demo's champion through the command line: a survey that
asks fewer questions than the training population lands beside it, and its report says what it did
not ask. Skipped where the shared data are absent (see test_real_data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from balanceit.data.contract import NHANES_NOT_ASKED_EXERCISES as NOT_ASKED_EXERCISES
from conftest import NHANES_P, run, shared

pytestmark = pytest.mark.slow

NOT_ASKED_BY_NHANES = ["occupation", "standing_hours_per_day", "screen_hours_per_day", "movement_breaks_per_day",
                       "strength_training", "stretching_days_per_week", "stretches_before_exercise",
                       "stretches_after_exercise", "posture_self_report", "back_pain", "neck_pain", "shoulder_pain"]


@pytest.fixture(scope="module")
def scored(demo_workspace, tmp_path_factory) -> tuple[Path, dict, Path]:
    """`balanceit score FOLDER` on a copy of the demo workspace, which keeps the shared one's batches
    as the other tests expect them."""
    folder = shared(NHANES_P)
    home, _ = demo_workspace
    workspace = tmp_path_factory.mktemp("nhanes") / "workspace"
    shutil.copytree(home, workspace)
    output = workspace.parent / "nhanes.csv"
    return workspace, run(workspace, "score", str(folder), "--output", str(output)), output


def test_an_nhanes_folder_is_scored_like_a_survey_file(scored):
    _, result, output = scored
    scores = pd.read_csv(output)
    assert result["ingestion"]["kind"] == "nhanes"
    assert result["rows_scored"] == len(scores) == result["ingestion"]["accepted"] == 9610
    assert scores["risk"].between(0, 1).all()


@pytest.fixture(scope="module")
def report(scored) -> dict:
    workspace, result, _ = scored
    return run(workspace, "report", "population", "--batch", result["batch_id"])


def test_its_bands_and_weighted_mean_risk_sit_beside_the_training_population(scored, report):
    """Scored without the questions it never asked, NHANES is not pushed into the high band (99.7% were,
    when they counted as skipped answers) and its survey-weighted mean risk is near training's."""
    workspace, result, _ = scored
    shares = {band: count / result["rows_scored"] for band, count in result["bands"].items()}
    assert 0.3 <= shares.get("high", 0) <= 0.65 and shares.get("low", 0) <= 0.05, shares
    training = run(workspace, "report", "population", "--batch", "training")
    assert report["weighted"] and not training["weighted"]
    assert abs(report["estimates"]["mean_risk"]["value"] - training["estimates"]["mean_risk"]["value"]) <= 0.03


def test_its_report_summary_names_the_questions_the_cycle_did_not_ask(report):
    assert report["not_asked_questions"] == [*NOT_ASKED_BY_NHANES, *NOT_ASKED_EXERCISES]
    html = Path(report["path"]).read_text(encoding="utf-8")
    summary = html[html.index('id="summary"'):html.index("</section>", html.index('id="summary"'))]
    assert f"Not asked in this survey:</strong> {', '.join(report['not_asked_questions'])}." in summary


def test_no_one_is_told_that_a_kind_of_exercise_nhanes_never_asks_about_drives_their_risk(scored):
    """PAQ asks about walking or cycling and recreation only: 'no yoga' there is unknown, not a driver (it was
    driver 2 or 3 for most of the cycle), for the batch and for one person's explanation alike."""
    workspace, _, output = scored
    scores = pd.read_csv(output)
    drivers = scores[["driver_1", "driver_2", "driver_3"]].stack()
    assert not drivers.isin(NOT_ASKED_EXERCISES).any() and drivers.isin(["exercise_walking", "exercise_other"]).any()
    person = run(workspace, "explain", scores["respondent_id"].iloc[0])
    assert not set(NOT_ASKED_EXERCISES) & {driver["feature"] for driver in person["drivers"]}
