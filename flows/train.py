"""Train flow: ingest labelled data, build features, compare candidates, register, gate."""

from __future__ import annotations

import uuid
from dataclasses import asdict

import pandas as pd
from prefect import flow

from balanceit.config import Settings, load_settings, masked_uri
from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
from balanceit.data.labels import add_to_reference_set, label_problems, reference_answers
from balanceit.data.partitions import export_partitions, partitions_root, remove
from balanceit.features.build import compute_features
from balanceit.features.catalogue import model_input
from balanceit.features.store import only_labelled, partition_features, selected_answers, selection_sql
from balanceit.flows.cluster import on_runner
from balanceit.flows.common import InputRefused, stage
from balanceit.flows.ingest import ingest_file
from balanceit.models.registry import CHAMPION, Reference, log_and_register
from balanceit.models.train import train_model
from balanceit.warehouse import open_warehouse, transaction, upsert_frame


partition_features_task = stage(name="features of a partition", retries=2,
                                retry_delay_seconds=1)(partition_features)


def training_features(settings: Settings, batch_id: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled rows' answers and features, sorted by key: scoring's feature function on Parquet
    partitions of the selection (`features.store.selection_sql`), upserted in one transaction."""
    folder = partitions_root(settings) / f"training-{uuid.uuid4().hex[:12]}"
    try:
        with open_warehouse(settings) as con:
            answers = selected_answers(con, batch_id)
            if answers.empty:
                return answers, pd.DataFrame(columns=list(QUESTIONNAIRE_KEY))
            partitions = export_partitions(con, selection_sql(batch_id), folder, settings.rows_per_partition)
        done = on_runner(settings, partition_features_task, partitions, settings.activity_window_days)
        features = pd.concat([pd.read_parquet(str(p.features)) for p in done], ignore_index=True)
        features = features.sort_values(list(QUESTIONNAIRE_KEY), ignore_index=True)
        if len(features) != len(answers):
            raise RuntimeError(f"partitioned features have {len(features)} rows for {len(answers)} answers")
        with open_warehouse(settings) as con, transaction(con):
            upsert_frame(con, "features", features, QUESTIONNAIRE_KEY)
    finally:
        remove(folder)
    return only_labelled(answers, features)


def _true_risk(truth_path: str | None, answers: pd.DataFrame) -> pd.Series | None:
    """The generator's true risk for the training rows, when a truth file is given."""
    if not truth_path:
        return None
    truth = pd.read_csv(truth_path, usecols=[*QUESTIONNAIRE_KEY, "true_risk"], parse_dates=["submitted_at"])
    keyed = answers[list(QUESTIONNAIRE_KEY)].merge(truth, on=list(QUESTIONNAIRE_KEY), how="left")
    return pd.Series(keyed["true_risk"].to_numpy(), index=answers.index)


def _reference(settings: Settings) -> tuple[pd.DataFrame, Reference | None]:
    """The reference set's answers (labels as frozen) and their model input; None while it is empty."""
    with open_warehouse(settings) as con:
        answers = reference_answers(con)
        if answers.empty:
            return answers, None
        features = compute_features(con, answers, "activity", settings.activity_window_days)
    return answers, Reference(model_input(features), answers[LABEL].astype(int).to_numpy())


@stage(name="train, compare and register")
def fit_and_register(settings: Settings, answers: pd.DataFrame, features: pd.DataFrame,
                     truth_path: str | None, description: str,
                     training_ingestion: str | None = None) -> dict[str, object]:
    """Check the labels, train, register and gate; a new champion's held-out rows join the reference set."""
    reference_rows, reference = _reference(settings)
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
    settings = load_settings(home, cluster)
    if activity:
        ingest_file(settings, activity, "activity")
    batch_id = ingest_file(settings, data, "questionnaire").ingestion_id if data else None
    answers, features = training_features(settings, batch_id)
    if answers.empty or answers[LABEL].nunique() < 2:
        raise InputRefused("no labelled rows with both outcomes to train on: give a questionnaire file "
                           "with the `imbalance` column filled (`balanceit train --data FILE`)")
    return fit_and_register(settings, answers, features, truth, data or "all labelled rows in the warehouse", batch_id)
