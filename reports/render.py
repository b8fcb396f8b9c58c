"""Write the population and personal HTML reports (a screening aid, not a diagnosis), one file each.

Readers open them offline: stylesheet and SVG charts are inline, a Content-Security-Policy forbids every
fetch, jinja2 escapes the whole context. A personal report refuses any context key it does not know, so
no one else's data can ride along into it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from balanceit.reports import charts

POPULATION_KEYS = frozenset({
    "title", "generated_at", "population", "min_group_size", "weighted", "summary", "histogram",
    "segments", "drivers", "what_ifs", "model", "data_quality", "drift",
})
POPULATION_OPTIONAL = {"estimates": [], "band_cutoffs": None, "estimates_note": "", "unanswered": [],
                       "reweighting": None, "estimate_names": {}, "too_few_people": False,
                       "observed_rate": None, "training_bands": None}
PERSON_KEYS = frozenset({
    "respondent_id", "submitted_at", "risk", "band", "summary", "drivers", "signs", "missing_answers",
    "what_ifs", "recommendations", "model_version",
})
PERSON_OPTIONAL = {"standing": None}


def render_population(context: Mapping[str, Any], out_path: Path) -> Path:
    """Write the population report for program leads; returns `out_path`."""
    values = _checked(context, POPULATION_KEYS, POPULATION_OPTIONAL, "population")
    cutoffs = values["band_cutoffs"]
    markers = [(cutoffs["moderate_from"], "moderate"), (cutoffs["high_from"], "high")] if cutoffs else []
    calibration = values["model"]["calibration"]
    charts_shown = {
        "histogram": charts.histogram(values["histogram"]["bin_edges"], values["histogram"]["counts"],
                                      "Distribution of estimated risk", "estimated risk", x_format=".0%",
                                      markers=markers),
        "drivers": charts.bar_chart([(d["label"], d["share_top3"], None, None) for d in values["drivers"]],
                                    "Share of people with each driver among their top three", ".0%"),
        "what_ifs": charts.bar_chart([(w["label"], w["share"], None, None) for w in values["what_ifs"]],
                                     "Share of people who would move to a lower band", ".0%"),
        "estimates": charts.bar_chart([(e["name"], e["value"], e["ci_low"], e["ci_high"]) for e in values["estimates"]
                                       if e.get("unit", "share") == "share"],
                                      "Population estimates with 95% intervals", ".1%"),
        "calibration": charts.calibration_plot([b["predicted_mean"] for b in calibration],
                                               [b["observed_rate"] for b in calibration], [b["n"] for b in calibration],
                                               "Calibration: predicted risk against observed rate"),
    }
    return _write("population.html.j2", {**values, "charts": charts_shown}, out_path)


def render_person(context: Mapping[str, Any], out_path: Path) -> Path:
    """Write one respondent's own report; returns `out_path`."""
    values = _checked(context, PERSON_KEYS, PERSON_OPTIONAL, "person")
    contributions = charts.contribution_bars([(driver["label"], driver["contribution"]) for driver in values["drivers"]],
                                             "How each answer moves your estimated risk", value_text=_odds_times)
    return _write("person.html.j2", {**values, "charts": {"contributions": contributions}}, out_path)


def _checked(context: Mapping[str, Any], required: frozenset[str], optional: Mapping[str, Any],
             kind: str) -> dict[str, Any]:
    """The context with optional keys filled in; refuses missing keys and keys it does not know."""
    missing = required - context.keys()
    unknown = context.keys() - required - optional.keys()
    if missing or unknown:
        raise ValueError(f"{kind} report context: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    return {**optional, **context}


def _write(template: str, values: Mapping[str, Any], out_path: Path) -> Path:
    """Render and replace `out_path` atomically, so a reader never opens a half-written report."""
    html = _environment().get_template(template).render(values)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, out_path)
    return out_path


@cache
def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("balanceit.reports", "templates"), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(percent=_percent, number=_number, when=_when)
    environment.globals["shown_difference"] = _shown_difference
    environment.tests["blank"] = _blank
    return environment


def _percent(value: float | None, digits: int = 0) -> str:
    return "—" if _blank(value) else f"{value:.{digits}%}"


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if _blank(value) else f"{value:,.{digits}f}"


def _shown_difference(before: float, after: float) -> str:
    """The difference of two risks in percentage points as the reader can check it: the shown (rounded)
    after minus the shown before, so "38% → 32%" reads "−6 pts" (a true minus), never the unrounded −7."""
    shown = [int(_percent(value).removesuffix("%")) for value in (before, after)]
    return f"{shown[1] - shown[0]:+d} pts".replace("-", "−")


def _odds_times(contribution: float) -> str:
    """A log-odds contribution as a reader's figure: how many times it multiplies the odds."""
    return f"×{math.exp(contribution):.2f} odds"


def _when(moment: datetime | str) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip() if isinstance(moment, datetime) else str(moment)


def _blank(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
