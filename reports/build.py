"""Report contexts from the warehouse and the registry: what each report says, before rendering.

Population figures are recomputed with the model version that scored the batch (the model is
additive, so a batch's explanations take seconds), which keeps what-ifs and drivers exact
without storing every intermediate.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from balanceit.config import Settings
from balanceit.features.catalogue import BY_NAME, CATALOGUE, COLUMN_LABELS, model_columns, model_input
from balanceit.features.store import batch_features, labelled_features
from balanceit.models.explain import explain_batch, not_asked_questions, unknown_features
from balanceit.models.narrative import explanation
from balanceit.models.registry import CHAMPION, configure, load_model
from balanceit.models.whatif import WHAT_IFS
from balanceit.warehouse import open_warehouse

TRAINING = "training"
ESTIMATE_NAMES = {
    "mean_risk": "Mean risk", "share_low_risk": "Share in the low band",
    "share_moderate_risk": "Share in the moderate band", "share_high_risk": "Share in the high band",
    "mean_sitting_hours": "Mean sitting per day", "share_sitting_over_8h": "Share sitting over 8 hours a day",
}
BAND_ORDER = {"low": 0, "moderate": 1, "high": 2}
LIMITS = (
    "balanceit is a screening aid, not a diagnosis: a clinician decides whether a muscle imbalance is present.",
    "Risks come from self-reported answers and, where worn, a wearable; misreported answers move them.",
    "Drivers are associations the model learned from training data, ranked among behaviours and personal "
    "factors; pain and posture answers are shown as signs, not causes.",
    "The model is only as representative as the population it was trained on; see drift below.",
)


def _latest_batch(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT batch_id FROM batches WHERE model_version IS NOT NULL "
                      "ORDER BY created_at DESC LIMIT 1").fetchone()
    if row is None:
        raise LookupError("no scored batch yet: run `balanceit score FILE` first")
    return row[0]


def _batch_version(con: duckdb.DuckDBPyConnection, batch_id: str) -> str | None:
    row = con.execute("SELECT model_version FROM batches WHERE batch_id = ?", [batch_id]).fetchone()
    if row is None:
        raise LookupError(f"no batch '{batch_id}' in the warehouse")
    return row[0]


def _model_card(settings: Settings, version: str, alias: str) -> dict[str, object]:
    import mlflow

    client = configure(settings)
    model_version = client.get_model_version(settings.registered_model_name, version)
    run = client.get_run(model_version.run_id)
    calibration = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="calibration.csv"))
    return {
        "version": version, "alias": alias, "run_id": run.info.run_id,
        "trained_at": datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc),
        "training_rows": int(float(run.data.params.get("training_rows", 0))),
        "metrics": {k: run.data.metrics.get(k) for k in ("roc_auc", "pr_auc", "brier", "ece")},
        "calibration": calibration.to_dict("records"),
        "limits": list(LIMITS),
    }


def _data_quality(con: duckdb.DuckDBPyConnection, ingestion_ids: list[str]) -> list[dict[str, object]]:
    ingestions = con.execute(
        "SELECT ingestion_id, file, rows_read, accepted, quarantined FROM ingestions "
        "WHERE status = 'loaded' AND list_contains(?, ingestion_id) ORDER BY started_at",
        [ingestion_ids]).df()
    reasons = con.execute(
        "SELECT ingestion_id, \"column\" || ': ' || rule AS reason, count(DISTINCT row_number) AS n "
        "FROM quarantine WHERE list_contains(?, ingestion_id) GROUP BY ALL", [ingestion_ids]).df()
    return [
        {"file": str(Path(*Path(row.file).parts[-2:])), "rows_read": int(row.rows_read), "accepted": int(row.accepted),
         "quarantined": int(row.quarantined),
         "reasons": dict(reasons.loc[reasons["ingestion_id"] == row.ingestion_id, ["reason", "n"]]
                         .itertuples(index=False, name=None))}
        for row in ingestions.itertuples()
    ]


def _activity_ingestions(con: duckdb.DuckDBPyConnection, batch: str) -> list[str]:
    """The loaded wearable files with data for the population: every one for training, only those
    holding the batch's respondents for a batch, whose data quality never names another file."""
    members = "" if batch == TRAINING else \
        "AND ingestion_id IN (SELECT a.ingestion_id FROM activity a JOIN batch_members m USING (respondent_id) " \
        "WHERE m.batch_id = $batch)"
    return con.execute(f"SELECT ingestion_id FROM ingestions WHERE kind = 'activity' AND status = 'loaded' {members}",
                       {"batch": batch} if members else {}).df()["ingestion_id"].tolist()


def _drift(training_features: pd.DataFrame, features: pd.DataFrame) -> list[dict[str, object]]:
    """PSI per model column against training, named in the catalogue's words."""
    from balanceit.reports import aggregate  # with the survey libraries, only for population reports

    table = aggregate.drift_table(training_features, features, [c.name for c in model_columns()])
    return [{**row, "feature": COLUMN_LABELS[row["feature"]]} for row in table.to_dict("records")]


def _population_what_ifs(scored: pd.DataFrame, settings: Settings) -> list[dict[str, object]]:
    """How many people would drop at least one band under each what-if."""
    before = scored["band"].map(BAND_ORDER).to_numpy()
    rows = []
    for what_if in WHAT_IFS:
        after_risk = scored[f"whatif_{what_if.name}"].to_numpy()
        after = np.where(after_risk < settings.low_band_below, 0, np.where(after_risk >= settings.high_band_from, 2, 1))
        dropping = int(np.sum(~np.isnan(after_risk) & (after < before)))
        rows.append({"label": what_if.label, "people_dropping_band": dropping,
                     "share": dropping / max(len(scored), 1)})
    return sorted(rows, key=lambda r: -r["people_dropping_band"])


def population_context(settings: Settings, batch: str | None, target: Path | None = None) -> dict[str, object]:
    """Everything the population report shows, for a scored batch or the training population; with a
    `target`, also the batch reweighted to it (the weights are stored with the batch)."""
    # Survey estimation (svy, polars) loads only here, so a person's explanation does without it.
    from balanceit.reports import aggregate
    from balanceit.reports.estimates import population_estimates
    from balanceit.reports.reweight import now, read_target, reweight, reweighting_report, store_weights

    target_population = read_target(target) if target is not None else None
    with open_warehouse(settings) as con:
        if batch == TRAINING:
            version = None
            answers, features = labelled_features(con, settings)
            ingestion_ids = con.execute("SELECT DISTINCT ingestion_id FROM questionnaire "
                                        "WHERE imbalance IS NOT NULL").df()["ingestion_id"].tolist()
            description = f"Training population: {len(answers):,} labelled respondents"
        else:
            batch = batch or _latest_batch(con)
            version = _batch_version(con, batch)
            answers, features = batch_features(con, batch, settings)
            ingestion_ids = [batch]
            file = con.execute("SELECT file FROM batches WHERE batch_id = ?", [batch]).fetchone()[0]
            description = f"Scored batch {batch} from {Path(file).name}: {len(answers):,} respondents"
        training_answers, training_features = labelled_features(con, settings)
        ingestion_ids += _activity_ingestions(con, batch)
        quality = _data_quality(con, ingestion_ids)
    model, version = load_model(settings, version)
    if answers.empty:
        raise LookupError("no respondents to report on")
    if len(answers) < settings.min_group_size:
        return _small_population_context(settings, version, batch, description, len(answers), quality)
    not_asked = not_asked_questions(answers)
    scored = explain_batch(model, answers, features, settings, not_asked)
    people = pd.concat([answers.drop(columns=["respondent_id", "submitted_at"]), scored], axis=1)
    drivers = aggregate.top_drivers(people)
    training_risk = model.predict_proba(model_input(training_features))[:, 1]
    training_bands = aggregate.band_counts(pd.DataFrame({"band": np.where(
        training_risk < settings.low_band_below, "low",
        np.where(training_risk >= settings.high_band_from, "high", "moderate"))}))
    estimates = population_estimates(people)
    segments = aggregate.segment_tables(people, settings.min_group_size)
    reweighting = None
    if target_population is not None:
        result = reweight(answers, target_population, settings.reweight_trim_ratio)
        computed_at = now()
        with open_warehouse(settings) as con:
            store_weights(con, batch or TRAINING, answers, result, computed_at)
        reweighting = reweighting_report(people, result, settings.reweight_min_effective_size,
                                         settings.min_group_size, computed_at)
    return {
        "reweighting": reweighting,
        "estimate_names": ESTIMATE_NAMES,
        "population_estimates": {**{k: estimates[k] for k in ("weighted", "n", "estimates")},
                                 "segments": aggregate.segments_json(segments)},
        "estimates": [{"name": ESTIMATE_NAMES[name], "unit": "hours" if name.endswith("hours") else "share", **figure}
                      for name, figure in estimates["estimates"].items()],
        "estimates_note": f"{estimates['population']} {estimates['intervals']}",
        "title": "Muscle-imbalance risk: population report",
        "generated_at": datetime.now(timezone.utc),
        "population": description,
        "min_group_size": settings.min_group_size,
        "weighted": estimates["weighted"],
        "summary": {"n": len(people), "mean_risk": aggregate.mean_risk(people),
                    "bands": aggregate.band_counts(people).to_dict("records")},
        "histogram": aggregate.risk_histogram(people),
        "segments": segments,
        "drivers": [{**row, "label": BY_NAME[row["feature"]].label,
                     "description": BY_NAME[row["feature"]].description,
                     "modifiable": BY_NAME[row["feature"]].modifiable}
                    for row in drivers.head(10).to_dict("records")],
        "what_ifs": _population_what_ifs(scored, settings),
        "model": _model_card(settings, version, CHAMPION if batch == TRAINING else "scored this batch"),
        "data_quality": quality,
        "unanswered": list(not_asked),
        "drift": None if batch == TRAINING else _drift(training_features, features),
        "observed_rate": float(training_answers["imbalance"].astype(float).mean()) if batch == TRAINING else None,
        "band_cutoffs": {"moderate_from": settings.low_band_below, "high_from": settings.high_band_from},
        "training_bands": None if batch == TRAINING else training_bands.to_dict("records"),
    }


def _small_population_context(settings: Settings, version: str, batch: str | None, description: str, n: int,
                              quality: list[dict[str, object]]) -> dict[str, object]:
    """A population smaller than the minimum group size: its figures would describe single people, so the
    report states how many there are and shows only the model card and file counts."""
    return {
        "population_estimates": {"weighted": False, "n": n, "estimates": {}, "segments": []},
        "title": "Muscle-imbalance risk: population report",
        "generated_at": datetime.now(timezone.utc),
        "population": description,
        "min_group_size": settings.min_group_size,
        "weighted": False,
        "summary": {"n": n, "mean_risk": None, "bands": []},
        "histogram": {"bin_edges": np.linspace(0.0, 1.0, 21).tolist(), "counts": [0] * 20},
        "segments": [], "drivers": [], "what_ifs": [], "drift": [],
        "model": _model_card(settings, version, CHAMPION if batch == TRAINING else "scored this batch"),
        "data_quality": quality,
        "unanswered": [], "too_few_people": True,
    }


def person_explanation(settings: Settings, respondent_id: str) -> dict[str, object]:
    """One person's latest scored submission, explained by the model version that scored it."""
    with open_warehouse(settings) as con:
        row = con.execute(
            "SELECT s.batch_id, s.model_version, s.submitted_at FROM scores s WHERE s.respondent_id = ? "
            "ORDER BY s.submitted_at DESC, s.scored_at DESC LIMIT 1", [respondent_id]).fetchone()
        if row is None:
            raise LookupError(f"no scored submission for respondent '{respondent_id}'")
        batch_id, version, submitted_at = row
        answers, features = batch_features(con, batch_id, settings)
    not_asked = not_asked_questions(answers)
    mine = ((answers["respondent_id"] == respondent_id) & (answers["submitted_at"] == submitted_at)).to_numpy()
    model, version = load_model(settings, version)
    batch_risk = model.predict_proba(model_input(features))[:, 1]
    answers, features = answers[mine].reset_index(drop=True), features[mine].reset_index(drop=True)
    scored = explain_batch(model, answers, features, settings)
    contributions = model.contributions(model_input(features)).iloc[0].to_dict()
    return {**explanation(scored.iloc[0], answers.iloc[0], features.iloc[0], contributions),
            "model_version": version, "standing": _standing(batch_risk, float(scored["risk"].iloc[0]), batch_id, settings)}


def _standing(batch_risk: np.ndarray, risk: float, batch_id: str, settings: Settings) -> dict[str, object] | None:
    """Where one person's risk falls among the batch that was scored with it; left out for a batch
    smaller than the minimum group size, where a share would say too much about a few others."""
    others = len(batch_risk)
    if others < settings.min_group_size:
        return None
    return {"share_below": float(np.mean(batch_risk < risk)), "people": others,
            "population": f"the batch scored with you ({batch_id})"}


def write_person_report(settings: Settings, respondent_id: str) -> dict[str, object]:
    """Write one person's report; a plain function, so `balanceit report person` needs no Prefect."""
    from balanceit.reports.render import render_person

    context = person_explanation(settings, respondent_id)
    safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in respondent_id)
    path = render_person(context, settings.reports_path / "people" / f"{safe_name}.html")
    return {"path": str(path), "respondent_id": respondent_id, "risk": context["risk"], "band": context["band"]}
