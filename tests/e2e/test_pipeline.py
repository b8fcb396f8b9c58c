"""End to end through the command line: the demo, its outputs, repeat runs, the gate, the nightly flow.

Prefect starts a temporary local server once per test process, so the whole module shares one
demo workspace and runs its commands in this process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from balanceit.data.contract import LABEL
from balanceit.data.contract import OUTPUT_COLUMNS
from conftest import DEMO_ROWS, run

pytestmark = pytest.mark.slow


def table_count(home: Path, sql: str) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


@pytest.fixture(scope="module")
def demo(demo_workspace) -> tuple[Path, dict]:
    return demo_workspace


def test_demo_prints_where_everything_is(demo):
    home, result = demo
    for key in ("duckdb", "population_report", "training_population_report", "person_report", "scores_file"):
        assert Path(result[key]).is_file(), key
    assert result["mlflow_run_id"]
    assert result["registered_model"].endswith("version 1 (champion)")
    html = Path(result["person_report"]).read_text()
    assert "screening aid" in html


def test_mlflow_holds_the_champion_with_metrics_and_signature(demo):
    import mlflow
    from mlflow import MlflowClient

    home, result = demo
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    champion = client.get_model_version_by_alias("balanceit-imbalance-risk", "champion")
    run = client.get_run(champion.run_id)
    assert {"roc_auc", "pr_auc", "brier", "ece"} <= set(run.data.metrics)
    assert int(float(run.data.params["training_rows"])) == DEMO_ROWS * 3 // 4
    info = mlflow.models.get_model_info(f"models:/balanceit-imbalance-risk/{champion.version}")
    # The contract's columns are documented in the model's metadata, not enforced as a named input
    # schema: MLflow would drop every column not spelt exactly as declared (issue 19).
    assert info.signature is not None and info.signature.inputs is None and info.signature.outputs is not None
    assert [column["name"] for column in info.metadata["input_contract"]][:4] == ["respondent_id", "submitted_at",
                                                                                  "age", "sex"]


def test_scores_file_has_the_contract_columns_first(demo):
    _, result = demo
    scores = pd.read_csv(result["scores_file"])
    assert tuple(scores.columns[: len(OUTPUT_COLUMNS)]) == OUTPUT_COLUMNS
    assert len(scores) == DEMO_ROWS - DEMO_ROWS * 3 // 4
    assert scores["risk"].between(0, 1).all()
    assert set(scores["band"]) <= {"low", "moderate", "high"}


def test_explain_names_causes_and_keeps_signs_apart(demo):
    home, result = demo
    person = pd.read_csv(result["scores_file"]).iloc[0]["respondent_id"]
    explanation = run(home, "explain", person)
    assert explanation["respondent_id"] == person
    assert 0 <= explanation["risk"] <= 1
    assert all(d["feature"] not in {"posture", "back_pain", "neck_pain", "shoulder_pain"}
               for d in explanation["drivers"])
    assert explanation["recommendations"]


def test_population_report_json_has_estimates_and_segments_with_intervals(demo):
    home, _ = demo
    result = run(home, "report", "population")
    assert Path(result["path"]).is_file()
    assert result["weighted"] is False and result["n"] > 0  # the generated population carries no weights
    for name in ("mean_sitting_hours", "share_sitting_over_8h", "mean_risk", "share_high_risk"):
        figure = result["estimates"][name]
        assert figure["ci_low"] <= figure["value"] <= figure["ci_high"], name
    sitting = next(segment for segment in result["segments"] if segment["key"] == "sitting")
    shown = [group for group in sitting["groups"] if not group["suppressed"]]
    assert shown and all(g["mean_risk"]["ci_low"] <= g["mean_risk"]["value"] <= g["mean_risk"]["ci_high"]
                         for g in shown)


def test_population_report_names_questions_nobody_answered(demo, tmp_path):
    """A survey that never asked about pain is scored without those questions: the report says so."""
    from balanceit.data.synthetic import generate

    home, _ = demo
    assert run(home, "report", "population")["not_asked_questions"] == []
    generate(300, seed=22).questionnaire.drop(columns=["back_pain", "neck_pain"]).to_csv(
        tmp_path / "no-pain.csv", index=False)
    batch = run(home, "score", str(tmp_path / "no-pain.csv"))["batch_id"]
    result = run(home, "report", "population", "--batch", batch)
    assert result["not_asked_questions"] == ["back_pain", "neck_pain"]
    html = Path(result["path"]).read_text(encoding="utf-8")
    assert "Not asked in this survey:</strong> back_pain, neck_pain." in html
    assert "<dt>Not asked here</dt><dd>back_pain, neck_pain: risks in this report are computed without them" in html


def test_a_survey_that_never_asked_about_pain_posture_or_strength_stays_calibrated(demo, tmp_path):
    """Scoring the same people with the pain, posture and strength-training questions removed from the
    file: the risk given what was asked, judged against the generator's truth, not the "skipped" terms."""
    from balanceit.data.synthetic import generate
    from balanceit.models.metrics import expected_calibration_error

    home, _ = demo
    population = generate(6000, seed=23, labelled=True)
    not_asked = ["back_pain", "neck_pain", "shoulder_pain", "posture_self_report", "strength_training"]
    population.questionnaire.drop(columns=[LABEL, *not_asked]).to_csv(tmp_path / "fewer.csv", index=False)
    run(home, "score", str(tmp_path / "fewer.csv"), "--output", str(tmp_path / "scores.csv"))
    scores = pd.read_csv(tmp_path / "scores.csv")
    truth = population.truth.assign(respondent_id=population.truth["respondent_id"].astype(str))
    judged = scores.assign(respondent_id=scores["respondent_id"].astype(str)).merge(truth, on="respondent_id")
    assert len(judged) == 6000
    assert abs(judged["risk"].mean() - judged["true_risk"].mean()) <= 0.02
    assert expected_calibration_error(judged["true_risk"], judged["risk"]) <= 0.02
    assert not judged[["driver_1", "driver_2", "driver_3"]].isin(["strength_training"]).any().any()
    assert not judged["missing_answers"].fillna("").str.contains("pain|posture|strength").any()


def test_explain_in_a_fresh_process_finds_the_workspace_registry(demo, tmp_path):
    """A command that loads a given model version must look in the workspace's MLflow store, not the cwd's."""
    import json
    import os
    import subprocess
    import sys

    home, result = demo
    person = pd.read_csv(result["scores_file"]).iloc[0]["respondent_id"]
    balanceit = Path(sys.executable).with_name("balanceit")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # a user's shell, not this process
    done = subprocess.run([str(balanceit), "--home", str(home), "explain", person, "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["respondent_id"] == person
    assert not list(tmp_path.iterdir())  # no stray mlflow.db or mlruns/ in the working folder


def test_read_only_commands_start_no_prefect_and_load_no_plotting(demo, tmp_path):
    """explain, models and report person read DuckDB and the registry directly, without MLflow or sklearn
    (bench cli times them)."""
    home, result = demo
    person = pd.read_csv(result["scores_file"]).iloc[0]["respondent_id"]
    probe = ("import sys; from balanceit.cli import app\n"
             "try: app(sys.argv[1:])\n"
             "except SystemExit as end: assert not end.code, end.code\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'matplotlib', 'svy', 'dask', 'mlflow', 'sklearn'}))")
    for command in (["explain", person], ["models"], ["report", "person", person], ["--help"], ["--version"]):
        done = subprocess.run([sys.executable, "-c", probe, "--home", str(home), *command],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "[]", (command, done.stdout[-500:])


def test_second_demo_adds_a_version_and_no_rows(demo):
    home, _ = demo
    counts = [table_count(home, f"SELECT count(*) FROM {t}") for t in ("questionnaire", "activity", "scores")]
    again = run(home, "demo", "--rows", str(DEMO_ROWS))
    assert "version 2" in again["registered_model"]
    # one score per person per model version: the demo's batch again, under version 2
    assert [table_count(home, f"SELECT count(*) FROM {t}") for t in ("questionnaire", "activity", "scores")] == [
        counts[0], counts[1], counts[2] + again["scored_rows"]]
    assert table_count(home, "SELECT count(*) - count(DISTINCT (respondent_id, submitted_at)) "
                             "FROM questionnaire") == 0


def test_scoring_the_same_batch_twice_gives_no_duplicates(demo, tmp_path):
    home, _ = demo
    batch = home / "demo" / "new-batch" / "questionnaire.csv"
    first = run(home, "score", str(batch), "--output", str(tmp_path / "scores.parquet"))
    second = run(home, "score", str(batch))
    assert second["ingestion"]["status"] == "already_loaded"
    assert first["rows_scored"] == second["rows_scored"]
    assert table_count(home, "SELECT count(*) - count(DISTINCT (respondent_id, submitted_at, model_version)) "
                             "FROM scores") == 0
    assert tuple(pd.read_parquet(tmp_path / "scores.parquet").columns[:len(OUTPUT_COLUMNS)]) == OUTPUT_COLUMNS


def test_a_batch_whose_first_partitions_are_empty_is_registered_whole(demo, tmp_path, monkeypatch):
    """An empty partition's result files hold untyped columns; the other files' values must still load."""
    from balanceit.data.synthetic import generate

    home, _ = demo
    people = generate(5, seed=1, labelled=False).questionnaire
    parts = {part for (part,) in duckdb.sql("SELECT hash(respondent_id) % 5 FROM people").fetchall()}
    assert 0 not in parts  # the scoring flow partitions by the same hash
    people.to_csv(tmp_path / "five.csv", index=False)
    monkeypatch.setenv("BALANCEIT_ROWS_PER_PARTITION", "1")
    result = run(home, "score", str(tmp_path / "five.csv"), "--output", str(tmp_path / "five-scores.csv"))
    assert result["rows_scored"] == 5 and result["partitions"] == 5
    assert pd.read_csv(tmp_path / "five-scores.csv")["driver_1"].notna().all()


def test_people_scored_again_with_fewer_drivers_keep_none_of_their_old_ones(demo, tmp_path):
    """The same answers' keys sent again by a survey that asks only the required questions: fewer drivers,
    and the explanations table holds exactly those, none left over from the first scoring."""
    from balanceit.data.contract import QUESTIONNAIRE
    from balanceit.data.synthetic import generate

    home, _ = demo
    people = generate(20, seed=5, labelled=False).questionnaire
    people.to_csv(tmp_path / "full.csv", index=False)
    people[[c.name for c in QUESTIONNAIRE if c.required]].to_csv(tmp_path / "required.csv", index=False)
    for name in ("full", "required"):
        run(home, "score", str(tmp_path / f"{name}.csv"), "--output", str(tmp_path / f"{name}-scores.csv"))
    drivers = {name: pd.read_csv(tmp_path / f"{name}-scores.csv").set_index("respondent_id")
               [["driver_1", "driver_2", "driver_3"]].notna().sum(axis=1) for name in ("full", "required")}
    assert (drivers["full"] == 3).all() and drivers["required"].sum() < drivers["full"].sum()
    ids = ", ".join(f"'{person}'" for person in people["respondent_id"])
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        stored = con.execute(f"SELECT respondent_id, count(*) FROM explanations WHERE respondent_id IN ({ids}) "
                             "GROUP BY respondent_id").df().set_index("respondent_id")["count_star()"]
    assert stored.reindex(drivers["required"].index, fill_value=0).to_dict() == drivers["required"].to_dict()


def test_a_registration_that_fails_leaves_no_output_file_half_written(demo, tmp_path, monkeypatch):
    """The --output file is written beside the results' transaction under a hidden name: when the transaction
    fails, neither that name nor the output is left behind (nor any of the batch's scores)."""
    import balanceit.data.partitions as partitions
    from balanceit.data.synthetic import generate

    home, _ = demo
    upsert = partitions.upsert

    def failing(con, table, *args, **kwargs):
        if table == "scores":
            raise RuntimeError("disk full")
        return upsert(con, table, *args, **kwargs)

    monkeypatch.setattr(partitions, "upsert", failing)
    people = generate(50, seed=31, labelled=False).questionnaire
    people.to_csv(tmp_path / "batch.csv", index=False)
    (tmp_path / "out").mkdir()
    output = tmp_path / "out" / "scores.csv"
    assert "disk full" in run(home, "score", str(tmp_path / "batch.csv"), "--output", str(output), expect=2)["message"]
    assert list((tmp_path / "out").iterdir()) == []
    ids = ", ".join(f"'{person}'" for person in people["respondent_id"])
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM scores WHERE respondent_id IN ({ids})").fetchone() == (0,)


def test_partitions_can_live_behind_an_fsspec_url(demo, tmp_path, monkeypatch):
    from upath import UPath

    from balanceit.data.synthetic import generate

    home, _ = demo
    shared = f"memory://{tmp_path.name}/partitions"
    monkeypatch.setenv("BALANCEIT_SHARED_PATH", shared)
    generate(300, seed=21).questionnaire.to_csv(tmp_path / "batch.csv", index=False)
    result = run(home, "score", str(tmp_path / "batch.csv"), "--output", str(tmp_path / "scores.csv"))
    assert result["rows_scored"] == 300 and len(pd.read_csv(tmp_path / "scores.csv")) == 300
    assert not UPath(shared).exists() or not list(UPath(shared).rglob("*.parquet"))


def test_shuffled_labels_are_not_promoted(demo, tmp_path):
    home, _ = demo
    training = pd.read_csv(home / "demo" / "training" / "questionnaire.csv")
    training["imbalance"] = training["imbalance"].sample(frac=1.0, random_state=1).to_numpy()
    shuffled = tmp_path / "shuffled.csv"
    training.to_csv(shuffled, index=False)
    champion_before = [v for v in run(home, "models")["versions"] if "champion" in v["aliases"]]
    result = run(home, "train", "--data", str(shuffled))
    assert result["alias"] == "challenger"
    assert "challenger" in result["reason"]
    champion_after = [v for v in run(home, "models")["versions"] if "champion" in v["aliases"]]
    assert champion_after == champion_before


def test_refused_file_exits_non_zero_and_names_the_problem(demo, tmp_path):
    home, _ = demo
    bad = tmp_path / "bad.csv"
    bad.write_text("respondent_id,submitted_at\nr1,2025-01-01\n")
    result = run(home, "ingest", "questionnaire", str(bad), expect=2)
    assert result["status"] == "refused"
    assert "bad.csv" in result["message"] and "age" in result["message"]


def test_nightly_flow_takes_a_labelled_inbox_file(demo):
    from balanceit.flows.schedule import nightly_retrain_flow

    home, _ = demo
    fresh = pd.read_csv(home / "demo" / "training" / "questionnaire.csv").head(500)
    fresh["respondent_id"] = "inbox-" + fresh["respondent_id"]
    (home / "inbox").mkdir(exist_ok=True)  # as `balanceit serve` makes it
    fresh.to_csv(home / "inbox" / "new-labelled.csv", index=False)
    versions_before = len(run(home, "models")["versions"])
    result = nightly_retrain_flow(home=str(home))
    assert result["trained"] is True
    assert [f["status"] for f in result["inbox"]] == ["loaded"]
    assert (home / "inbox" / "done" / "new-labelled.csv").is_file()
    assert len(run(home, "models")["versions"]) == versions_before + 1


def test_inbox_flow_scores_a_new_unlabelled_file(demo):
    from balanceit.flows.schedule import inbox_scoring_flow

    home, _ = demo
    fresh = pd.read_csv(home / "demo" / "new-batch" / "questionnaire.csv").head(200)
    fresh["respondent_id"] = "inbox-new-" + fresh["respondent_id"]
    (home / "inbox").mkdir(exist_ok=True)  # as `balanceit serve` makes it
    fresh.to_csv(home / "inbox" / "survey-week-12.csv", index=False)
    (home / "inbox" / "broken.csv").write_text("not,a,questionnaire\n1,2,3\n")
    result = inbox_scoring_flow(home=str(home))
    by_file = {Path(f["file"]).name: f for f in result["inbox"]}
    assert by_file["survey-week-12.csv"]["scoring"]["rows_scored"] == 200
    assert by_file["broken.csv"]["status"] == "refused"
    assert (home / "inbox" / "done" / "survey-week-12.csv").is_file()
    assert (home / "inbox" / "refused" / "broken.csv.reason.txt").read_text().strip()
