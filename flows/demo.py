"""Demo flow: the whole pipeline on a generated population (partition tasks on the cluster if one is set).

Three quarters (labelled) train the model; the rest arrive as a new, unlabelled batch that is scored,
explained and reported on. Fixed file names: a second run re-ingests nothing, registers a second version.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow

from balanceit.config import Settings, load_settings, masked_uri
from balanceit.data.contract import LABEL
from balanceit.data.synthetic import generate
from balanceit.flows.common import stage
from balanceit.flows.score import score_flow
from balanceit.flows.train import train_flow
from balanceit.models.evaluate import explanation_agreement
from balanceit.reports.build import write_person_report, write_population_report

TRAINING_SHARE = 0.75


def _write(folder: Path, questionnaire: pd.DataFrame, activity: pd.DataFrame) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    questionnaire.to_csv(folder / "questionnaire.csv", index=False)
    activity.to_csv(folder / "activity.csv", index=False)
    return str(folder / "questionnaire.csv"), str(folder / "activity.csv")


@stage(name="generate demo population")
def write_demo_population(settings: Settings, rows: int,
                          seed: int) -> tuple[tuple[str, str], tuple[str, str], str]:
    """Split one generated population into a labelled training set and a new unlabelled batch: the
    (questionnaire, activity) files of each, and the truth file."""
    folder = settings.root / "demo"
    population = generate(rows, seed=seed, labelled=True)
    q, activity = population.questionnaire, population.activity
    cut = int(len(q) * TRAINING_SHARE)
    in_training = activity["respondent_id"].isin(set(q["respondent_id"].iloc[:cut]))
    training = _write(folder / "training", q.iloc[:cut], activity[in_training])
    batch = _write(folder / "new-batch", q.iloc[cut:].drop(columns=[LABEL]), activity[~in_training])
    population.truth.to_csv(folder / "truth.csv", index=False)
    return training, batch, str(folder / "truth.csv")


@flow(name="demo")
def demo_flow(rows: int = 20000, seed: int = 0, home: str | None = None,
              cluster: str | None = None) -> dict[str, object]:
    settings = load_settings(home, cluster)
    training_files, batch_files, truth = write_demo_population(settings, rows, seed)
    trained = train_flow(*training_files, truth, home=home, cluster=cluster)
    output = settings.exports_path / "demo-scores.csv"
    scored = score_flow(*batch_files, str(output), home=home, cluster=cluster)
    population = write_population_report(settings, scored["batch_id"])
    training = write_population_report(settings, "training")
    first_person = pd.read_csv(output, usecols=["respondent_id"], nrows=1)["respondent_id"].iloc[0]
    person = write_person_report(settings, str(first_person))
    agreement = explanation_agreement(pd.read_csv(output, parse_dates=["submitted_at"]), pd.read_csv(truth))
    return {
        "workspace": str(settings.root),
        "duckdb": str(settings.warehouse_path),
        "mlflow_tracking_uri": masked_uri(settings.mlflow_tracking_uri),
        "mlflow_run_id": trained["run_id"],
        "registered_model": f"{settings.registered_model_name} version {trained['version']} ({trained['alias']})",
        "held_out_metrics": {k: round(v, 4) for k, v in trained["metrics"].items()
                             if k in ("roc_auc", "pr_auc", "brier", "ece", "share_of_ceiling",
                                      "peer_share_of_ceiling")},
        "scored_rows": scored["rows_scored"], "scores_file": scored["output"],
        "explanations_vs_truth": {k: round(v, 3) for k, v in agreement.items()},
        "population_report": population["path"], "training_population_report": training["path"],
        "person_report": person["path"],
        "mlflow_ui": f"mlflow ui --backend-store-uri {masked_uri(settings.mlflow_tracking_uri)}",
    }
