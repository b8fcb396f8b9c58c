"""Report contexts: what each report says, before rendering.

`load_population` is the one loader: it reads a population's answers and stored features, the model
card and data quality, and explains the people with the model version that scored them (the model is
additive, so a batch takes seconds), which keeps what-ifs and drivers exact without storing every
intermediate. It writes nothing. The sections are pure functions of its frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from balanceit.config import Settings
from balanceit.features.build import compute_features
from balanceit.features.catalogue import BY_NAME, COLUMN_LABELS, model_columns, model_input
from balanceit.models.terms import AdditiveTerms
from balanceit.models.explain import explain_batch, not_asked_questions
from balanceit.models.narrative import explanation
from balanceit.models.registry import CHAMPION, configure, load_model
from balanceit.models.whatif import WHAT_IFS
from balanceit.reports import aggregate
from balanceit.warehouse import batch_not_asked, open_warehouse

if TYPE_CHECKING:
    from balanceit.reports.reweight import Target

TRAINING = "training"
TRAINING_FIGURES = "training_figures.json"
ESTIMATE_NAMES = {
    "mean_risk": "Mean risk",
    **{f"share_{band}_risk": f"Share in the {band} band" for band in aggregate.BANDS},
    "mean_sitting_hours": "Mean sitting per day", "share_sitting_over_8h": "Share sitting over 8 hours a day",
}
BAND_ORDER = {band: order for order, band in enumerate(aggregate.BANDS)}
LIMITS = (
    "balanceit is a screening aid, not a diagnosis: a clinician decides whether a muscle imbalance is present.",
    "Risks come from self-reported answers and, where worn, a wearable; misreported answers move them.",
    "Drivers are associations the model learned from training data, ranked among behaviours and personal "
    "factors; pain and posture answers are shown as signs, not causes.",
    "The model is only as representative as the population it was trained on; see drift below.",
)


@dataclass(frozen=True)
class Population:
    """A scored batch (or the training population) as the report reads it, row for row."""

    batch: str  # a batch id or TRAINING
    description: str
    answers: pd.DataFrame
    features: pd.DataFrame
    scored: pd.DataFrame  # `explain_batch` of answers and features
    not_asked: tuple[str, ...]
    training_features: pd.DataFrame
    training_bands: list[dict[str, object]] | None  # None for the training population itself
    model: dict[str, object]
    data_quality: list[dict[str, object]]

    @cached_property
    def people(self) -> pd.DataFrame:
        """Answers beside their explanations: the frame the population figures are computed from."""
        return pd.concat([self.answers.drop(columns=["respondent_id", "submitted_at"]), self.scored], axis=1)


def training_figures(model: AdditiveTerms, features: pd.DataFrame, settings: Settings) -> dict[str, object]:
    """The training population's bands under `model`, logged with it (`TRAINING_FIGURES`) so that a batch's
    report shows them without rebuilding the training set."""
    bands = settings.bands(model.predict_proba(model_input(features))[:, 1])
    return {"bands": aggregate.band_counts(pd.DataFrame({"band": bands})).to_dict("records")}


def _answers_and_features(con: duckdb.DuckDBPyConnection, joins: str, where: str,
                          parameters: dict[str, object]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answers and the features stored for them when they were scored or trained on, row for row."""
    rows = (f"FROM questionnaire q JOIN features f USING (respondent_id, submitted_at) {joins} WHERE {where} "
            "ORDER BY q.respondent_id, q.submitted_at")
    return con.execute(f"SELECT q.* {rows}", parameters).df(), con.execute(f"SELECT f.* {rows}", parameters).df()


def _model_card(settings: Settings, version: str, alias: str) -> tuple[dict[str, object], dict | None]:
    """The model card, and the training figures logged with the model (None for a model logged before them)."""
    import mlflow

    client = configure(settings)
    run = client.get_run(client.get_model_version(settings.registered_model_name, version).run_id)
    run_id = run.info.run_id
    calibration = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="calibration.csv"))
    logged = {artifact.path for artifact in client.list_artifacts(run_id)}
    figures = mlflow.artifacts.load_dict(f"runs:/{run_id}/{TRAINING_FIGURES}") if TRAINING_FIGURES in logged else None
    return {
        "version": version, "alias": alias, "run_id": run_id,
        "trained_at": datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc),
        "training_rows": int(float(run.data.params.get("training_rows", 0))),
        "metrics": {k: run.data.metrics.get(k) for k in ("roc_auc", "pr_auc", "brier", "ece")},
        "calibration": calibration.to_dict("records"),
        "limits": list(LIMITS),
    }, figures


def _data_quality(con: duckdb.DuckDBPyConnection, batch: str, ingestion_ids: list[str]) -> list[dict[str, object]]:
    """The population's files, with the loaded wearable files holding its respondents (every one for
    training), so that a batch's data quality never names another batch's files."""
    files = con.execute(
        "SELECT ingestion_id, file, rows_read, accepted, quarantined FROM ingestions WHERE status = 'loaded' "
        "AND (list_contains($ids, ingestion_id) OR kind = 'activity' AND ($batch = $training OR ingestion_id IN "
        "(SELECT a.ingestion_id FROM activity a JOIN batch_members m USING (respondent_id) WHERE m.batch_id = $batch)))"
        " ORDER BY started_at", {"ids": ingestion_ids, "batch": batch, "training": TRAINING}).df()
    reasons = con.execute(
        "SELECT ingestion_id, \"column\" || ': ' || rule AS reason, count(DISTINCT row_number) AS n "
        "FROM quarantine WHERE list_contains(?, ingestion_id) GROUP BY ALL", [files["ingestion_id"].tolist()]).df()
    return [
        {"file": str(Path(*Path(row.file).parts[-2:])), "rows_read": int(row.rows_read), "accepted": int(row.accepted),
         "quarantined": int(row.quarantined),
         "reasons": dict(reasons.loc[reasons["ingestion_id"] == row.ingestion_id, ["reason", "n"]]
                         .itertuples(index=False, name=None))}
        for row in files.itertuples()
    ]


def load_population(settings: Settings, batch: str | None) -> Population:
    """A scored batch (the latest by default) or, for TRAINING, every labelled respondent."""
    with open_warehouse(settings) as con:
        training_answers, training_features = _answers_and_features(con, "", "q.imbalance IS NOT NULL", {})
        if batch == TRAINING:
            version = None
            answers, features = training_answers, training_features
            ingestion_ids = answers["ingestion_id"].unique().tolist()
            description = f"Training population: {len(answers):,} labelled respondents"
            not_asked = not_asked_questions(answers)
        else:
            row = con.execute(
                "SELECT batch_id, model_version, file FROM batches WHERE batch_id = $batch "
                "OR ($batch IS NULL AND model_version IS NOT NULL) ORDER BY created_at DESC LIMIT 1",
                {"batch": batch}).fetchone()
            if row is None:
                raise LookupError("no scored batch yet: run `balanceit score FILE` first" if batch is None
                                  else f"no batch '{batch}' in the warehouse")
            batch, version, file = row
            members = "JOIN batch_members m USING (respondent_id, submitted_at)"
            answers, features = _answers_and_features(con, members, "m.batch_id = $batch", {"batch": batch})
            ingestion_ids = [batch]
            description = f"Scored batch {batch} from {Path(file).name}: {len(answers):,} respondents"
            not_asked = batch_not_asked(con, batch)  # as the batch was scored
        quality = _data_quality(con, batch, ingestion_ids)
    model, version = load_model(settings, version)
    if answers.empty:
        raise LookupError("no respondents to report on")
    card, figures = _model_card(settings, version, CHAMPION if batch == TRAINING else "scored this batch")
    return Population(
        batch=batch, description=description, answers=answers, features=features,
        scored=explain_batch(model, answers, features, settings, not_asked), not_asked=not_asked,
        training_features=training_features,
        training_bands=None if batch == TRAINING else (figures or training_figures(model, training_features,
                                                                                   settings))["bands"],
        model=card, data_quality=quality)


def people_sections(people: pd.DataFrame, settings: Settings) -> dict[str, object]:
    """The figures computed from the people themselves: summary, histogram, estimates, segments, drivers."""
    from balanceit.reports.estimates import population_estimates

    estimates = population_estimates(people)
    segments = aggregate.segment_tables(people, settings.min_group_size)
    return {
        "estimate_names": ESTIMATE_NAMES,
        "population_estimates": {**{k: estimates[k] for k in ("weighted", "n", "estimates")},
                                 "segments": aggregate.segments_json(segments)},
        "estimates": [{"name": ESTIMATE_NAMES[name], "unit": "hours" if name.endswith("hours") else "share", **figure}
                      for name, figure in estimates["estimates"].items()],
        "estimates_note": f"{estimates['population']} {estimates['intervals']}",
        "weighted": estimates["weighted"],
        "summary": {"n": len(people), "mean_risk": aggregate.mean_risk(people),
                    "bands": aggregate.band_counts(people).to_dict("records")},
        "histogram": aggregate.risk_histogram(people, settings.min_group_size),
        "segments": segments,
        "drivers": [{**row, "label": BY_NAME[row["feature"]].label,
                     "description": BY_NAME[row["feature"]].description,
                     "modifiable": BY_NAME[row["feature"]].modifiable}
                    for row in aggregate.top_drivers(people).head(10).to_dict("records")],
    }


def what_if_section(scored: pd.DataFrame, settings: Settings) -> list[dict[str, object]]:
    """How many people would drop at least one band under each what-if."""
    before = scored["band"].map(BAND_ORDER).to_numpy()
    rows = []
    for what_if in WHAT_IFS:
        after_risk = scored[f"whatif_{what_if.name}"].to_numpy()
        after = pd.Series(settings.bands(after_risk)).map(BAND_ORDER).to_numpy()
        dropping = int(np.sum(~np.isnan(after_risk) & (after < before)))
        rows.append({"label": what_if.label, "people_dropping_band": dropping,
                     "share": dropping / max(len(scored), 1)})
    return sorted(rows, key=lambda r: -r["people_dropping_band"])


def drift_section(training_features: pd.DataFrame, features: pd.DataFrame) -> list[dict[str, object]]:
    """PSI per model column against training, named in the catalogue's words."""
    table = aggregate.drift_table(training_features, features, [c.name for c in model_columns()])
    return [{**row, "feature": COLUMN_LABELS[row["feature"]]} for row in table.to_dict("records")]


def too_few_people(n: int) -> dict[str, object]:
    """A population smaller than the minimum group size: its figures would describe single people, so the
    report states how many there are and shows only the model card and file counts."""
    return {
        "population_estimates": {"weighted": False, "n": n, "estimates": {}, "segments": []},
        "weighted": False,
        "summary": {"n": n, "mean_risk": None, "bands": []},
        "histogram": {"bin_edges": np.linspace(0.0, 1.0, 21).tolist(), "counts": [0] * 20},
        "segments": [], "drivers": [], "what_ifs": [], "drift": [], "unanswered": [], "too_few_people": True,
    }


def population_context(population: Population, settings: Settings) -> dict[str, object]:
    """Everything the population report shows (`render.render_population`), from a loaded population."""
    common = {
        "title": "Muscle-imbalance risk: population report",
        "generated_at": datetime.now(timezone.utc),
        "population": population.description,
        "min_group_size": settings.min_group_size,
        "model": population.model,
        "data_quality": population.data_quality,
    }
    if len(population.answers) < settings.min_group_size:
        return {**common, **too_few_people(len(population.answers))}
    training = population.batch == TRAINING
    return {
        **common,
        **people_sections(population.people, settings),
        "reweighting": None,
        "what_ifs": what_if_section(population.scored, settings),
        "unanswered": list(population.not_asked),
        "drift": None if training else drift_section(population.training_features, population.features),
        "observed_rate": float(population.answers["imbalance"].astype(float).mean()) if training else None,
        "band_cutoffs": {"moderate_from": settings.low_band_below, "high_from": settings.high_band_from},
        "training_bands": population.training_bands,
    }


def reweighted(settings: Settings, population: Population, target: Target) -> dict[str, object]:
    """The population raked to `target`, for the report; the weights are stored with the batch (which
    target, which method, when), the one thing a report writes and only when asked to reweight."""
    from balanceit.reports.reweight import reweight, reweighting_report, store_weights

    result = reweight(population.answers, target, settings.reweight_trim_ratio)
    computed_at = datetime.now(timezone.utc)
    with open_warehouse(settings) as con:
        store_weights(con, population.batch, population.answers, result, computed_at)
    return reweighting_report(population.people, result, settings.reweight_min_effective_size,
                              settings.min_group_size, computed_at)


def person_explanation(settings: Settings, respondent_id: str) -> dict[str, object]:
    """One person's latest scored submission, explained by the model version that scored it. Reads that one
    submission and its batch's stored risks, writing nothing: a batch of 100,000 costs one column."""
    with open_warehouse(settings) as con:
        row = con.execute(
            "SELECT s.batch_id, s.model_version, s.submitted_at, s.risk FROM scores s WHERE s.respondent_id = ? "
            "ORDER BY s.submitted_at DESC, s.scored_at DESC LIMIT 1", [respondent_id]).fetchone()
        if row is None:
            raise LookupError(f"no scored submission for respondent '{respondent_id}'")
        batch_id, version, submitted_at, stored_risk = row
        key = {"id": respondent_id, "at": submitted_at}
        where = "WHERE respondent_id = $id AND submitted_at = $at"
        answers = con.execute(f"SELECT * FROM questionnaire {where}", key).df()
        features = con.execute(f"SELECT * FROM features {where}", key).df()
        if features.empty:  # never stored: computed as scoring computed them
            features = compute_features(con, answers, "activity", settings.activity_window_days)
        batch_risk = con.execute(
            "SELECT s.risk FROM batch_members m JOIN scores s USING (respondent_id, submitted_at) "
            "WHERE m.batch_id = ? AND s.model_version = ?", [batch_id, version]).fetchnumpy()["risk"]
        not_asked = batch_not_asked(con, batch_id)  # unknown for this person too, as when the batch was scored
    model, version = load_model(settings, version)
    scored = explain_batch(model, answers, features, settings, not_asked)
    contributions = model.contributions(model_input(features)).iloc[0].to_dict()
    # Where the person's risk falls among the batch scored with it (both as stored when it was); left out for a
    # batch smaller than the minimum group size, where a share would say too much about a few others.
    standing = None if len(batch_risk) < settings.min_group_size else {
        "share_below": float(np.mean(batch_risk < stored_risk)), "people": len(batch_risk),
        "population": f"the batch scored with you ({batch_id})"}
    return {**explanation(scored.iloc[0], answers.iloc[0], features.iloc[0], contributions),
            "model_version": version, "standing": standing}


def write_person_report(settings: Settings, respondent_id: str) -> dict[str, object]:
    """Write one person's report; a plain function, so `balanceit report person` needs no Prefect."""
    from balanceit.reports.render import render_person

    context = person_explanation(settings, respondent_id)
    safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in respondent_id)
    path = render_person(context, settings.reports_path / "people" / f"{safe_name}.html")
    return {"path": str(path), "respondent_id": respondent_id, "risk": context["risk"], "band": context["band"]}


def write_population_report(settings: Settings, batch: str | None = None,
                            target: str | None = None) -> dict[str, object]:
    """Write a batch's (or the training population's) report, reweighted to `target` if given; a plain
    function like the person's report, since there is no partition work to run as tasks."""
    from balanceit.reports.render import render_population
    from balanceit.reports.reweight import read_target

    target_population = read_target(Path(target)) if target else None  # a refused target stops before any work
    population = load_population(settings, batch)
    context = population_context(population, settings)
    if target_population is not None and not context.get("too_few_people"):
        context["reweighting"] = reweighted(settings, population, target_population)
    estimates = context.pop("population_estimates")
    name = "training" if batch == "training" else "latest" if batch is None else batch
    path = render_population(context, settings.reports_path / f"population-{name}.html")
    return {"path": str(path), "population": context["population"], "not_asked_questions": context["unanswered"],
            "not_asked_note": "risks are computed without the questions not asked" if context["unanswered"] else "",
            **estimates, **({"reweighting": context["reweighting"]} if context.get("reweighting") else {})}
