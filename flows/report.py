"""Report flows: the population report for a batch (or the training population), a person's report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from balanceit.config import load_settings
from balanceit.flows.common import log_refusals_without_traceback, stage
from balanceit.reports.build import load_population, population_context, reweighted, write_person_report
from balanceit.reports.render import render_population
from balanceit.reports.reweight import TargetRefused, read_target

log_refusals_without_traceback(TargetRefused)


@stage(name="render population report")
def population_report(home: str | None, batch: str | None, target: str | None = None) -> dict[str, object]:
    settings = load_settings(home)
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


@stage(name="render person report")
def person_report(home: str | None, respondent_id: str) -> dict[str, object]:
    return write_person_report(load_settings(home), respondent_id)


@flow(name="population-report")
def population_report_flow(batch: str | None = None, home: str | None = None,
                           target: str | None = None) -> dict[str, object]:
    return population_report(home, batch, target)


@flow(name="person-report")
def person_report_flow(respondent_id: str, home: str | None = None) -> dict[str, object]:
    return person_report(home, respondent_id)
