"""Train flow: ingest labelled data, build features, compare candidates, register, gate."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
from prefect import flow

from balanceit.config import masked_uri
from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.data.labels import add_to_reference_set, label_problems, reference_answers
from balanceit.features.build import compute_features
from balanceit.features.catalogue import model_input
from balanceit.features.store import labelled_features
from balanceit.flows.common import InputRefused, stage, workspace
from balanceit.flows.ingest import ingest_file
from balanceit.models.registry import CHAMPION, Reference, log_and_register
from balanceit.models.train import train_model
from balanceit.warehouse import open_warehouse


def ingest_or_fail(home: str | None, path: str, kind: str, not_asked: tuple[str, ...] = ()):
    summary = ingest_file(home, path, kind, not_asked)
    if summary.status == "refused":
        raise InputRefused(summary.message)
    return summary


@stage(name="build training features")
def warehouse_training_features(home: str | None, batch_id: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    settings = workspace(home)
    with open_warehouse(settings) as con:
        return labelled_features(con, settings, batch_id)


def training_features(home: str | None, batch_id: str | None,
                      cluster: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled rows' answers and features, sorted by key: one warehouse query in this process,
    or the same feature function per partition on a Dask cluster when one is set (`cluster`, else
    `Settings.cluster`, see `flows.cluster`), so the nightly flow follows the setting too."""
    if cluster or workspace(home).cluster:
        from balanceit.flows.cluster import partitioned_training_features

        return partitioned_training_features(home, batch_id, cluster)
    return warehouse_training_features(home, batch_id)


def _true_risk(truth_path: str | None, answers: pd.DataFrame) -> pd.Series | None:
    """The generator's true risk for the training rows, when a truth file is given."""
    if not truth_path:
        return None
    truth = pd.read_csv(truth_path, usecols=[*QUESTIONNAIRE_KEY, "true_risk"])
    truth["submitted_at"] = pd.to_datetime(truth["submitted_at"])
    keyed = answers[list(QUESTIONNAIRE_KEY)].merge(truth, on=list(QUESTIONNAIRE_KEY), how="left")
    return pd.Series(keyed["true_risk"].to_numpy(), index=answers.index)


def _reference(home: str | None) -> tuple[pd.DataFrame, Reference | None]:
    """The reference set's answers (labels as frozen) and their model input; None while it is empty."""
    settings = workspace(home)
    with open_warehouse(settings) as con:
        answers = reference_answers(con)
        if answers.empty:
            return answers, None
        features = compute_features(con, answers, "activity", settings.activity_window_days)
    return answers, Reference(model_input(features), answers[LABEL].astype(int).to_numpy())


@stage(name="train, compare and register")
def fit_and_register(home: str | None, answers: pd.DataFrame, features: pd.DataFrame,
                     truth_path: str | None, description: str,
                     training_ingestion: str | None = None) -> dict[str, object]:
    """Check the labels, train, register and gate; a new champion's held-out rows join the reference set."""
    settings = workspace(home)
    reference_rows, reference = _reference(home)
    problems = label_problems(answers, reference_rows, settings)
    if problems:
        raise InputRefused(f"{description}: labels refused for training (the rows stay loaded for inspection): "
                           + "; ".join(problems))
    labels = answers[LABEL].astype(bool)
    result = train_model(features, labels, settings, _true_risk(truth_path, answers))
    registration = log_and_register(result, answers, features, labels, settings, description,
                                    reference, training_ingestion)
    if registration.alias == CHAMPION:
        with open_warehouse(settings) as con:
            add_to_reference_set(con, answers.loc[result.holdout_index], registration.version, training_ingestion)
    cv = result.cross_validation.groupby("candidate")[["roc_auc", "brier", "fit_seconds"]].mean()
    return {**asdict(registration), "chosen_model": result.chosen, "training_rows": len(features),
            "cross_validation": cv.round(4).to_dict(orient="index"),
            "tracking_uri": masked_uri(settings.mlflow_tracking_uri)}


@flow(name="train")
def train_flow(data: str | None = None, activity: str | None = None, truth: str | None = None,
               home: str | None = None, cluster: str | None = None) -> dict[str, object]:
    if activity:
        ingest_or_fail(home, activity, "activity")
    batch_id = ingest_or_fail(home, data, "questionnaire").ingestion_id if data else None
    answers, features = training_features(home, batch_id, cluster)
    if answers.empty or answers[LABEL].nunique() < 2:
        raise InputRefused("no labelled rows with both outcomes to train on: give a questionnaire file "
                           "with the `imbalance` column filled (`balanceit train --data FILE`)")
    return fit_and_register(home, answers, features, truth, data or "all labelled rows in the warehouse", batch_id)
