"""Scheduled flows: nightly retraining and inbox scoring (`balanceit serve`, or `deploy` to a work pool).

Files dropped into `inbox/` are sorted by what they hold: wearable days are ingested, labelled
questionnaires join the training data, unlabelled ones are scored. Each moves to `inbox/done/` once
handled (or `inbox/refused/` with the reason), so a crashed run simply handles it again next time.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import Flow, flow, serve

from balanceit.config import Settings, load_settings
from balanceit.data.inbox import InboxFile, classify
from balanceit.data.readers import visible_files
from balanceit.flows.ingest import ingest_file
from balanceit.flows.score import score_stage
from balanceit.flows.train import fit_and_register, training_features


def _take(settings: Settings, wanted: set[InboxFile]) -> list[dict[str, object]]:
    """Ingest the inbox files of the wanted kinds, each then filed in done/ (or refused/, with the reason)."""
    inbox = settings.inbox_path
    handled = []
    for path in visible_files(inbox):
        kind = classify(path)
        if kind not in wanted:
            continue
        summary = ingest_file(settings, str(path), "activity" if kind == "activity" else "questionnaire",
                              needed=False)
        handled.append({**summary.to_dict(), "inbox_kind": kind})
        refused = summary.status == "refused"
        if kind == "unlabelled" and not refused:
            handled[-1]["scoring"] = score_stage(settings, summary.ingestion_id, None)
        folder = inbox / ("refused" if refused else "done")
        folder.mkdir(exist_ok=True)
        shutil.move(str(path), folder / path.name)
        if refused:
            (folder / f"{path.name}.reason.txt").write_text(summary.message + "\n")
    return handled


@flow(name="nightly-retrain")
def nightly_retrain_flow(home: str | None = None) -> dict[str, object]:
    """Take new activity and labelled files from the inbox, rebuild features, retrain, apply the gate."""
    settings = load_settings(home)
    handled = _take(settings, {"activity", "labelled"})
    answers, features = training_features(settings, None)
    if answers.empty or answers["imbalance"].nunique() < 2:
        return {"inbox": handled, "trained": False, "reason": "no labelled data with both outcomes"}
    return {"inbox": handled, "trained": True,
            **fit_and_register(settings, answers, features, None, "nightly: all labelled rows in the warehouse")}


@flow(name="inbox-scoring")
def inbox_scoring_flow(home: str | None = None) -> dict[str, object]:
    """Score every new unlabelled questionnaire file in the inbox with the champion."""
    return {"inbox": _take(load_settings(home), {"activity", "unlabelled"})}


def _schedules(settings: Settings) -> dict[str, tuple[Flow, dict[str, Any]]]:
    """The two flows and their timing; their inbox is made here, for people to drop files into."""
    settings.inbox_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {"nightly-retrain": (nightly_retrain_flow, {"cron": settings.retrain_cron}),
            "inbox-scoring": (inbox_scoring_flow, {"interval": timedelta(minutes=settings.inbox_interval_minutes)})}


def serve_schedules(settings: Settings) -> None:
    """Serve both deployments from this process until interrupted."""
    serve(*(scheduled.to_deployment(name=name, parameters={"home": str(settings.root)}, **timing)
            for name, (scheduled, timing) in _schedules(settings).items()))


def deploy_schedules(settings: Settings, pool: str) -> dict[str, Any]:
    """The two scheduled flows as deployments on `pool`, loaded by its workers from this install: the
    source is this file's folder, which every worker of a process pool on this machine can read."""
    source = Path(__file__).resolve().parents[1]
    ids = {}
    for name, (scheduled, timing) in _schedules(settings).items():
        loaded = flow.from_source(source=str(source), entrypoint=f"flows/schedule.py:{scheduled.fn.__name__}")
        ids[name] = str(loaded.deploy(name=name, work_pool_name=pool, parameters={"home": str(settings.root)},
                                      print_next_steps=False, **timing))
    return {"work_pool": pool, "deployments": ids, "source": str(source), "home": str(settings.root)}
