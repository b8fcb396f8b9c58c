"""Population report sections are pure functions of frames: no warehouse, registry or model needed."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from balanceit.config import Settings
from balanceit.features.catalogue import BY_NAME, COLUMN_LABELS, model_columns
from balanceit.models.whatif import WHAT_IFS
from balanceit.reports.build import (
    TRAINING, Population, drift_section, people_sections, population_context, too_few_people, what_if_section,
)
from balanceit.reports.render import render_population
from conftest import build_scored

SETTINGS = Settings()


def population(n: int) -> Population:
    """A training population of `n` fixture people, their what-ifs lowering every risk by a fifth."""
    people = build_scored(n).assign(submitted_at=datetime(2025, 6, 1))
    explained = ["respondent_id", "submitted_at", "risk", "band", "driver_1", "driver_2", "driver_3"]
    scored = people[explained].assign(**{f"whatif_{w.name}": people["risk"] * 0.8 for w in WHAT_IFS})
    model = {"version": "1", "alias": "champion", "run_id": "r", "trained_at": "2025-06-01", "training_rows": n,
             "metrics": {"roc_auc": 0.8, "pr_auc": 0.7, "brier": 0.17, "ece": 0.02}, "calibration": [], "limits": []}
    return Population(batch=TRAINING, description=f"{n} people", answers=people.drop(columns=explained[2:]),
                      features=pd.DataFrame(), scored=scored, not_asked=(), training_features=pd.DataFrame(),
                      training_bands=None, model=model, data_quality=[])


def test_what_ifs_count_people_dropping_a_band_and_skip_those_they_do_not_apply_to():
    risk = np.array([0.65, 0.65, 0.35, 0.2])
    scored = pd.DataFrame({"band": SETTINGS.bands(risk), **{f"whatif_{w.name}": risk for w in WHAT_IFS}})
    scored[f"whatif_{WHAT_IFS[0].name}"] = [0.5, np.nan, 0.25, 0.1]
    rows = {row["label"]: row for row in what_if_section(scored, SETTINGS)}
    assert rows[WHAT_IFS[0].label] == {"label": WHAT_IFS[0].label, "people_dropping_band": 2, "share": 0.5}
    assert all(rows[w.label]["people_dropping_band"] == 0 for w in WHAT_IFS[1:])


def test_drift_is_named_in_the_catalogues_words():
    features = pd.DataFrame({c.name: np.arange(50.0) if c.encoding == "numeric" else ["a"] * 50
                             for c in model_columns()})
    drift = drift_section(features, features)
    assert [row["feature"] for row in drift] == [COLUMN_LABELS[c.name] for c in model_columns()]
    assert {row["level"] for row in drift} == {"ok"}


def test_people_sections_describe_drivers_from_the_catalogue():
    sections = people_sections(population(400).people, SETTINGS)
    assert sections["summary"]["n"] == 400 and sum(b["n"] for b in sections["summary"]["bands"]) == 400
    assert all(d["label"] == BY_NAME[d["feature"]].label for d in sections["drivers"])
    assert sections["population_estimates"]["n"] == 400 and not sections["weighted"]


def test_a_population_context_renders_and_a_small_one_shows_no_figure(tmp_path):
    context = population_context(population(400), SETTINGS)
    assert context["drift"] is None and context["observed_rate"] == pytest.approx(
        population(400).answers["imbalance"].mean())
    context.pop("population_estimates")
    assert "screening aid" in render_population(context, tmp_path / "p.html").read_text()
    small = population_context(population(SETTINGS.min_group_size - 1), SETTINGS)
    assert small["too_few_people"] and small["drivers"] == [] and small["summary"]["mean_risk"] is None
    assert too_few_people(3)["population_estimates"] == {"weighted": False, "n": 3, "estimates": {}, "segments": []}
