"""The champion's lifecycle through the command line: a label-flipped file neither takes the champion nor
erases the good labels, the gate judges on a fixed reference set, and rollback restores the training view."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from balanceit.cli import app
from conftest import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """A labelled file and the same rows with every `imbalance` answer inverted."""
    from balanceit.data.synthetic import generate

    folder = tmp_path_factory.mktemp("files")
    good = generate(1500, seed=11, labelled=True).questionnaire
    good.to_csv(folder / "good.csv", index=False)
    flipped = good.assign(imbalance=good["imbalance"].map({"yes": "no", "no": "yes"}))
    flipped.to_csv(folder / "flipped.csv", index=False)
    return folder / "good.csv", folder / "flipped.csv"


@pytest.fixture
def home(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect")))
    monkeypatch.setenv("BALANCEIT_CV_FOLDS", "2")  # the gate is under test, not the model choice
    return tmp_path / "ws"


def champion(home: Path) -> list[str]:
    return [v["version"] for v in run(home, "models")["versions"] if "champion" in v["aliases"]]


def labels(home: Path) -> pd.Series:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute("SELECT respondent_id, imbalance FROM questionnaire ORDER BY respondent_id").df()
    return frame.set_index("respondent_id")["imbalance"].astype(bool)


def test_flipped_labels_are_refused_and_the_original_file_brings_its_labels_back(home, files):
    good, flipped = files
    first = run(home, "train", "--data", str(good))
    assert first["version"] == "1" and first["alias"] == "champion"

    refused = CliRunner().invoke(app, ["--home", str(home), "train", "--data", str(flipped)])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2
    assert "labels refused for training" in said and "sitting_hours_per_day" in said
    assert champion(home) == ["1"]

    again = run(home, "train", "--data", str(good))
    assert again["metrics"]["roc_auc"] == pytest.approx(first["metrics"]["roc_auc"], abs=1e-12)
    assert again["metrics"]["brier"] == pytest.approx(first["metrics"]["brier"], abs=1e-12)
    expected = pd.read_csv(good).set_index("respondent_id")["imbalance"].eq("yes")
    assert labels(home).equals(expected.sort_index())


def test_the_gate_judges_on_the_reference_set_and_rollback_restores_the_labels(home, files, monkeypatch):
    good, flipped = files
    run(home, "train", "--data", str(good))
    # Without the sanity checks, the flipped file looks better on its own held-out rows than the champion.
    monkeypatch.setenv("BALANCEIT_LABEL_RATE_TOLERANCE", "1")
    monkeypatch.setenv("BALANCEIT_LABEL_CONTRADICTION_CORRELATION", "1")
    candidate = run(home, "train", "--data", str(flipped))
    assert candidate["alias"] == "challenger"
    assert "worse than the champion on reference set" in candidate["reason"]
    assert candidate["metrics"]["reference_roc_auc"] < candidate["metrics"]["champion_reference_roc_auc"]
    ingest = run(home, "ingest", "questionnaire", str(flipped))
    assert ingest["status"] == "already_loaded"

    assert CliRunner().invoke(app, ["--home", str(home), "promote", "2"]).exit_code == 0
    rolled = CliRunner().invoke(app, ["--home", str(home), "rollback"])
    assert rolled.exit_code == 0 and "training data view restored" in rolled.output
    assert champion(home) == ["1"]
    expected = pd.read_csv(good).set_index("respondent_id")["imbalance"].eq("yes")
    assert labels(home).equals(expected.sort_index())


def test_a_conflicting_label_is_listed_and_both_are_kept(home, files):
    good, flipped = files
    run(home, "ingest", "questionnaire", str(good))
    summary = run(home, "ingest", "questionnaire", str(flipped))
    assert summary["label_conflicts"] == 1500 and "label conflicts: 1500 keys" in summary["message"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM label_history").fetchone()[0] == 3000
    restored = run(home, "ingest", "questionnaire", str(good))
    assert restored["status"] == "loaded" and restored["label_conflicts"] == 1500


def test_the_registry_read_directly_answers_as_mlflow_does(home, files):
    """explain, models and scoring read the sqlite store and the model's pickle without MLflow: same answers."""
    import mlflow

    from balanceit.config import load_settings
    from balanceit.features.catalogue import model_input
    from conftest import labelled_features
    from balanceit.models import registry
    from balanceit.warehouse import open_warehouse

    good, _ = files
    run(home, "train", "--data", str(good))
    assert CliRunner().invoke(app, ["--home", str(home), "promote", "1"]).exit_code == 0  # a tag beside the alias
    settings = load_settings(home)
    direct = registry.list_versions(settings)
    assert direct == [{k: v for k, v in row.items() if k != "folder"} for row in registry._versions_from_client(settings)]
    assert direct[0]["aliases"] == ["champion"] and direct[0]["gate_reason"]
    model, version = registry.load_model(settings)
    assert type(model).__name__ == "AdditiveTerms" and version == "1"
    with open_warehouse(settings) as con:
        _, features = labelled_features(con, settings)
    X = model_input(features.head(500))
    through_mlflow = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}/1").unwrap_python_model().model
    assert (model.predict_proba(X) == through_mlflow.predict_proba(X)).all()
    assert (model.contributions(X) == through_mlflow.contributions(X)).all().all()
