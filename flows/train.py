"""Train flow: ingest labelled data, build features, compare candidates, register, gate."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pandas as pd
from prefect import flow

from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.features.store import labelled_features
from balanceit.flows.common import stage, workspace
from balanceit.flows.ingest import ingest_file
from balanceit.models.registry import log_and_register
from balanceit.models.train import train_model
from balanceit.warehouse import open_warehouse


class InputRefused(RuntimeError):
    """A file the flow needs was refused; the message names the file and the problem."""


class _RefusalUnlogged(logging.Filter):
    """A refused file is an answer the command prints, not a crash: Prefect's engine record of it (an
    ERROR line and a traceback above the user's own one-line error) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InputRefused))


logging.getLogger("prefect.flow_runs").addFilter(_RefusalUnlogged())


def ingest_or_fail(home: str | None, path: str, kind: str):
    summary = ingest_file(home, path, kind)
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


@stage(name="train, compare and register")
def fit_and_register(home: str | None, answers: pd.DataFrame, features: pd.DataFrame,
                     truth_path: str | None, description: str) -> dict[str, object]:
    settings = workspace(home)
    labels = answers[LABEL].astype(bool)
    result = train_model(features, labels, settings, _true_risk(truth_path, answers))
    registration = log_and_register(result, answers, features, labels, settings, description)
    cv = result.cross_validation.groupby("candidate")[["roc_auc", "brier", "fit_seconds"]].mean()
    return {**asdict(registration), "chosen_model": result.chosen, "training_rows": len(features),
            "cross_validation": cv.round(4).to_dict(orient="index"),
            "tracking_uri": settings.mlflow_tracking_uri}


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
    return fit_and_register(home, answers, features, truth, data or "all labelled rows in the warehouse")
