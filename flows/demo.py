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
from balanceit.data.synthetic import Population, generate
from balanceit.flows.common import stage
from balanceit.flows.report import person_report_flow, population_report_flow
from balanceit.flows.score import score_flow
from balanceit.flows.train import train_flow
from balanceit.models.evaluate import explanation_agreement

TRAINING_SHARE = 0.75


def _write(questionnaire: pd.DataFrame, activity: pd.DataFrame, folder: Path) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    questionnaire.to_csv(folder / "questionnaire.csv", index=False)
    activity.to_csv(folder / "activity.csv", index=False)
    return str(folder / "questionnaire.csv"), str(folder / "activity.csv")


@stage(name="generate demo population")
def write_demo_population(settings: Settings, rows: int, seed: int) -> dict[str, str]:
    """Split one generated population into a labelled training set and a new unlabelled batch."""
    folder = settings.root / "demo"
    population: Population = generate(rows, seed=seed, labelled=True)
    q = population.questionnaire
    cut = int(len(q) * TRAINING_SHARE)
    training_ids = set(q["respondent_id"].iloc[:cut])
    in_training = population.activity["respondent_id"].isin(training_ids)
    train_q, train_a = _write(q.iloc[:cut], population.activity[in_training], folder / "training")
    batch_q, batch_a = _write(q.iloc[cut:].drop(columns=[LABEL]), population.activity[~in_training],
                              folder / "new-batch")
    truth = folder / "truth.csv"
    population.truth.to_csv(truth, index=False)
    return {"training": train_q, "training_activity": train_a, "batch": batch_q,
            "batch_activity": batch_a, "truth": str(truth)}


@flow(name="demo")
def demo_flow(rows: int = 20000, seed: int = 0, home: str | None = None,
              cluster: str | None = None) -> dict[str, object]:
    settings = load_settings(home, cluster)
    files = write_demo_population(settings, rows, seed)
    trained = train_flow(files["training"], files["training_activity"], files["truth"], home=home, cluster=cluster)
    output = settings.exports_path / "demo-scores.csv"
    scored = score_flow(files["batch"], files["batch_activity"], str(output), home=home, cluster=cluster)
    population = population_report_flow(scored["batch_id"], home=home)
    training = population_report_flow("training", home=home)
    first_person = pd.read_csv(output, usecols=["respondent_id"], nrows=1)["respondent_id"].iloc[0]
    person = person_report_flow(str(first_person), home=home)
    agreement = explanation_agreement(pd.read_csv(output, parse_dates=["submitted_at"]),
                                      pd.read_csv(files["truth"]))
    return {
        "workspace": str(settings.root),
        "duckdb": str(settings.warehouse_path),
        "mlflow_tracking_uri": masked_uri(settings.mlflow_tracking_uri),
        "mlflow_run_id": trained["run_id"],
        "registered_model": f"{settings.registered_model_name} version {trained['version']} ({trained['alias']})",
        "held_out_metrics": {k: round(v, 4) for k, v in trained["metrics"].items()
                             if k in ("roc_auc", "pr_auc", "brier", "ece", "share_of_ceiling",
                                      "peer_share_of_ceiling")},
        "scored_rows": scored["rows_scored"],
        "scores_file": scored["output"],
        "explanations_vs_truth": {k: round(v, 3) for k, v in agreement.items()},
        "population_report": population["path"],
        "training_population_report": training["path"],
        "person_report": person["path"],
        "mlflow_ui": f"mlflow ui --backend-store-uri {masked_uri(settings.mlflow_tracking_uri)}",
    }
