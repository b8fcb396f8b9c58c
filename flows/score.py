"""Score flow: ingest a survey batch, score it with the champion, store and export the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow

from balanceit.config import Settings
from balanceit.flows.common import stage, workspace
from balanceit.flows.train import ingest_or_fail
from balanceit.models.explain import DRIVERS
from balanceit.models.registry import load_model
from balanceit.models.score import OUTPUT_COLUMNS, score_batch
from balanceit.warehouse import open_warehouse, transaction, upsert_frame

SCORE_KEY = ("respondent_id", "submitted_at", "model_version")


def _explanation_rows(scored: pd.DataFrame, contributions: pd.DataFrame) -> pd.DataFrame:
    """One row per person and driver rank, with the answers behind the driver."""
    ranks = range(1, DRIVERS + 1)
    rows = pd.DataFrame({
        "respondent_id": np.repeat(scored["respondent_id"].to_numpy(), DRIVERS),
        "submitted_at": np.repeat(scored["submitted_at"].to_numpy(), DRIVERS),
        "model_version": np.repeat(scored["model_version"].to_numpy(), DRIVERS),
        "kind": "driver",
        "rank": np.tile(np.array(list(ranks)), len(scored)),
        "feature": np.column_stack([scored[f"driver_{r}"] for r in ranks]).ravel(),
        "contribution": contributions["contribution"].to_numpy(),
        "sentence": None,
        "answers": np.column_stack([scored[f"driver_{r}_answers"].astype(object) for r in ranks]).ravel(),
    })
    return rows[rows["feature"].notna()]


def write_output(scored: pd.DataFrame, path: Path) -> Path:
    """One row per person: the contract's output columns first, then the what-ifs."""
    ordered = scored[[*OUTPUT_COLUMNS, *[c for c in scored.columns if c.startswith("whatif_")]]]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        ordered.to_parquet(path, index=False)
    else:
        ordered.to_csv(path, index=False)
    return path


def store_scores(settings: Settings, batch_id: str) -> pd.DataFrame:
    model, version = load_model(settings)
    with open_warehouse(settings) as con:
        scored, contributions = score_batch(con, model.model, batch_id, settings)
        scored["model_version"] = version
        scored["batch_id"] = batch_id
        scored["scored_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        with transaction(con):
            upsert_frame(con, "scores", scored[["respondent_id", "submitted_at", "batch_id", "model_version",
                                                "risk", "band", "scored_at"]], SCORE_KEY)
            upsert_frame(con, "explanations", _explanation_rows(scored, contributions),
                         (*SCORE_KEY, "kind", "rank"))
            con.execute("UPDATE batches SET model_version = ? WHERE batch_id = ?", [version, batch_id])
    return scored


@stage(name="score batch")
def score_stage(home: str | None, batch_id: str, output: str | None) -> dict[str, object]:
    settings = workspace(home)
    scored = store_scores(settings, batch_id)
    written = write_output(scored, Path(output)) if output else None
    return {"batch_id": batch_id, "rows_scored": len(scored),
            "model_version": str(scored["model_version"].iloc[0]) if len(scored) else None,
            "bands": scored["band"].value_counts().to_dict(), "output": str(written) if written else None}


@flow(name="score")
def score_flow(path: str, activity: str | None = None, output: str | None = None,
               home: str | None = None) -> dict[str, object]:
    if activity:
        ingest_or_fail(home, activity, "activity")
    ingestion = ingest_or_fail(home, path, "questionnaire")
    return {"ingestion": ingestion.to_dict(), **score_stage(home, ingestion.ingestion_id, output)}
