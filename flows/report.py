"""The population report for a batch (or the training population): no partition work to run as tasks, so
no Prefect flow, like a person's report (`reports.build.write_person_report`)."""

from __future__ import annotations

from pathlib import Path

from balanceit.config import Settings
from balanceit.reports.build import load_population, population_context, reweighted
from balanceit.reports.render import render_population
from balanceit.reports.reweight import read_target


def population_report(settings: Settings, batch: str | None = None,
                      target: str | None = None) -> dict[str, object]:
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
