"""Scheduled flows: nightly retraining and inbox scoring, served by `balanceit serve`.

Files dropped into the workspace's `inbox/` are sorted by what they hold: wearable days are
ingested, labelled questionnaires join the training data, unlabelled ones are scored. Each file
moves to `inbox/done/` once handled (or `inbox/refused/` with the reason beside it), so a
crashed run simply handles it again next time.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from prefect import flow, serve

from balanceit.config import Settings
from balanceit.data.inbox import InboxFile, classify
from balanceit.flows.common import workspace
from balanceit.flows.ingest import ingest_file
from balanceit.flows.score import score_stage
from balanceit.flows.train import fit_and_register, training_features


def _inbox_files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.inbox_path.iterdir() if p.is_file() and not p.name.startswith("."))


def _file_away(settings: Settings, path: Path, refused_because: str | None = None) -> None:
    folder = settings.inbox_path / ("refused" if refused_because else "done")
    folder.mkdir(exist_ok=True)
    shutil.move(str(path), folder / path.name)
    if refused_because:
        (folder / f"{path.name}.reason.txt").write_text(refused_because + "\n")


def _take(home: str | None, settings: Settings, wanted: set[InboxFile]) -> list[dict[str, object]]:
    """Ingest the inbox files of the wanted kinds; returns their ingestion summaries."""
    handled = []
    for path in _inbox_files(settings):
        kind = classify(path)
        if kind not in wanted:
            continue
        summary = ingest_file(home, str(path), "activity" if kind == "activity" else "questionnaire")
        handled.append({**summary.to_dict(), "inbox_kind": kind})
        if kind == "unlabelled" and summary.status != "refused":
            handled[-1]["scoring"] = score_stage(home, summary.ingestion_id, None)
        _file_away(settings, path, summary.message if summary.status == "refused" else None)
    return handled


@flow(name="nightly-retrain")
def nightly_retrain_flow(home: str | None = None) -> dict[str, object]:
    """Take new activity and labelled files from the inbox, rebuild features, retrain, apply the gate."""
    settings = workspace(home)
    handled = _take(home, settings, {"activity", "labelled"})
    answers, features = training_features(home, None)
    if answers.empty or answers["imbalance"].nunique() < 2:
        return {"inbox": handled, "trained": False, "reason": "no labelled data with both outcomes"}
    return {"inbox": handled, "trained": True,
            **fit_and_register(home, answers, features, None, "nightly: all labelled rows in the warehouse")}


@flow(name="inbox-scoring")
def inbox_scoring_flow(home: str | None = None) -> dict[str, object]:
    """Score every new unlabelled questionnaire file in the inbox with the champion."""
    settings = workspace(home)
    return {"inbox": _take(home, settings, {"activity", "unlabelled"})}


def serve_schedules(home: str | None) -> None:
    """Serve both deployments from this process until interrupted."""
    settings = workspace(home)
    serve(
        nightly_retrain_flow.to_deployment(name="nightly-retrain", cron=settings.retrain_cron,
                                           parameters={"home": str(settings.root)}),
        inbox_scoring_flow.to_deployment(name="inbox-scoring",
                                         interval=timedelta(minutes=settings.inbox_interval_minutes),
                                         parameters={"home": str(settings.root)}),
    )
