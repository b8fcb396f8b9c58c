"""Reweighting a convenience sample to its target population (reports/reweight.py).

A population is generated with its exact risks (the generator's `true_risk`, the best score any model
can give); a sample whose chance of answering rises with sitting and pain is drawn from it, the way
health surveys are answered; it is reweighted to the full population's margins.
"""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import run
from scipy.special import expit

from balanceit.data.synthetic import generate
from balanceit.reports.render import render_population
from balanceit.reports.reweight import TargetRefused, read_target, reweight, reweighting_report, store_weights

PAIN = ["back_pain", "neck_pain", "shoulder_pain"]
REFERENCE_COLUMNS = ["sex", "occupation", "sitting_hours_per_day", *PAIN]
ESTIMATE_NAMES = {"mean_risk": "Mean risk", "mean_sitting_hours": "Mean sitting per day"}


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    people = generate(20_000, seed=3)
    return people.questionnaire.assign(risk=people.truth["true_risk"].to_numpy())


@pytest.fixture(scope="module")
def biased_sample(population) -> pd.DataFrame:
    """About 3,000 people, answering more often the more they sit and the more it hurts."""
    sitting = population["sitting_hours_per_day"]
    pain = (population[PAIN] == "frequent").sum(axis=1) + 0.5 * (population[PAIN] == "occasional").sum(axis=1)
    answers = expit(-2.6 + 0.9 * (sitting - sitting.mean()) / sitting.std() + 0.8 * pain)
    chosen = np.random.default_rng(0).random(len(population)) < answers
    sample = population[chosen].reset_index(drop=True)
    return sample.assign(band=np.where(sample["risk"] < 0.3, "low", np.where(sample["risk"] >= 0.6, "high", "moderate")))


@pytest.fixture(scope="module")
def reference(population, tmp_path_factory):
    path = tmp_path_factory.mktemp("target") / "population.csv"
    population[REFERENCE_COLUMNS].to_csv(path, index=False)
    return read_target(path)


def _inside(figure: dict, value: float) -> bool:
    return figure["ci_low"] <= value <= figure["ci_high"]


def test_reweighting_a_biased_sample_recovers_the_population_means(population, biased_sample, reference):
    result = reweight(biased_sample, reference, trim_ratio=10.0)
    report = reweighting_report(biased_sample, result, min_effective_size=100, min_group_size=10,
                                stored_at=datetime.now(timezone.utc))

    for name, truth in (("mean_risk", population["risk"].mean()),
                        ("mean_sitting_hours", population["sitting_hours_per_day"].mean())):
        figures = report["estimates"][name]
        assert not _inside(figures["unweighted"], truth), name
        assert _inside(figures["weighted"], truth), name
    assert 1 < report["design_effect"] < 5
    assert report["effective_size"] == pytest.approx(len(biased_sample) / report["design_effect"])
    assert not report["small_effective_size"]


def test_the_weighted_batch_matches_the_target_on_every_margin(biased_sample, reference):
    result = reweight(biased_sample, reference, trim_ratio=10.0)

    assert {row["column"] for row in result.balance} == set(REFERENCE_COLUMNS)
    assert max(row["asd_before"] for row in result.balance) > 0.3  # the sample was biased
    assert max(row["asd_after"] for row in result.balance) < 0.01
    assert result.weights.mean() == pytest.approx(1.0)


def test_a_margins_file_is_matched_and_a_tiny_effective_size_is_flagged(biased_sample, tmp_path):
    path = tmp_path / "margins.yaml"
    path.write_text("sex: {female: 0.5, male: 0.49, other: 0.005, unknown: 0.005}\n"
                    "sitting_hours_per_day: {0-6: 0.5, 6+: 0.5}\n")
    target = read_target(path)
    result = reweight(biased_sample, target, trim_ratio=10.0)
    after = {(row["column"], row["level"]): row["after"] for row in result.balance}

    assert after["sitting_hours_per_day", "0-6"] == pytest.approx(0.5, abs=1e-3)
    assert after["sex", "male"] == pytest.approx(0.49, abs=1e-3)
    report = reweighting_report(biased_sample, result, min_effective_size=len(biased_sample),
                                min_group_size=50, stored_at=datetime.now(timezone.utc))
    assert report["small_effective_size"]
    sex = {row["level"]: row for row in report["balance"] if row["column"] == "sex"}
    assert (biased_sample["sex"].value_counts()[["other", "unknown"]].sum() < 50)
    assert sex["other"]["before"] is None and sex["unknown"]["before"] is None  # their head counts stay hidden
    assert sex["male"]["before"] is None  # else the total less the shown groups gives the two away
    assert sex["female"]["before"] is not None and sex["other"]["after"] is not None


def test_a_target_with_a_category_nobody_in_the_batch_has_is_refused(biased_sample, tmp_path):
    batch = biased_sample[biased_sample["occupation"] != "retired"].reset_index(drop=True)
    path = tmp_path / "margins.csv"
    path.write_text("column,level,share\n" + "".join(
        f"occupation,{level},{share}\n" for level, share in
        (("desk", 0.4), ("standing", 0.25), ("manual", 0.2), ("driving", 0.03), ("student", 0.02),
         ("retired", 0.08), ("other", 0.02))))

    with pytest.raises(TargetRefused, match=r"margins.csv, column 'occupation': nobody in the batch has 'retired'"):
        reweight(batch, read_target(path), trim_ratio=10.0)


@pytest.mark.parametrize("content, problem", [
    ("column,level,share\nfavourite_colour,blue,1\n", "column 'favourite_colour': not a questionnaire column"),
    ("column,level,share\nsex,female,0.5\nsex,male,0.2\n", "column 'sex': shares add up to 0.700, not 1"),
    ("column,level,share\nsex,robot,1\n", "column 'sex', level 'robot': not one of"),
])
def test_a_malformed_target_is_refused_naming_the_column(tmp_path, content, problem):
    path = tmp_path / "margins.csv"
    path.write_text(content)
    with pytest.raises(TargetRefused, match=problem):
        read_target(path)


def test_weights_are_stored_with_the_batch_and_a_rerun_replaces_them(biased_sample, reference):
    result = reweight(biased_sample, reference, trim_ratio=10.0)
    con = duckdb.connect()
    for _ in range(2):
        store_weights(con, "b1", biased_sample, result, datetime.now(timezone.utc))

    runs = con.execute("SELECT target, method, computed_at FROM reweightings WHERE batch_id = 'b1'").fetchall()
    weights = con.execute("SELECT count(*), sum(weight) FROM batch_weights WHERE batch_id = 'b1'").fetchone()
    assert len(runs) == 1 and runs[0][0] == reference.file and runs[0][1] == "raking"
    assert weights == (len(biased_sample), pytest.approx(len(biased_sample)))


def test_the_report_shows_both_figures_and_the_balance(tmp_path, biased_sample, reference, make_scored,
                                                       make_population_context):
    result = reweight(biased_sample, reference, trim_ratio=10.0)
    reweighting = reweighting_report(biased_sample, result, min_effective_size=100_000, min_group_size=10,
                                     stored_at=datetime.now(timezone.utc))
    context = make_population_context(make_scored(300), reweighting=reweighting, estimate_names=ESTIMATE_NAMES)

    html = render_population(context, tmp_path / "population.html").read_text()
    section = html[html.index('id="reweighting"'):]
    assert "Reweighted to a target population" in section and "population.csv" in section
    assert "Too few effective respondents" in section
    assert "Mean sitting per day" in section and "occupation: desk" in section


@pytest.mark.slow
def test_report_population_with_a_target_stores_the_weights_once(demo_workspace, tmp_path):
    """As a user runs it: the JSON carries the reweighting, a rerun replaces the weights, an impossible
    target exits 2 naming the column and the level."""
    home, _ = demo_workspace
    margins = tmp_path / "margins.csv"
    margins.write_text("column,level,share\nsitting_hours_per_day,0-6,0.5\nsitting_hours_per_day,6+,0.5\n")
    for _ in range(2):
        result = run(home, "report", "population", "--target", str(margins))

    reweighting = result["reweighting"]
    assert reweighting["method"] == "raking" and reweighting["target"] == "margins.csv"
    assert {row["level"]: round(row["after"], 3) for row in reweighting["balance"]} == {"0-6": 0.5, "6+": 0.5}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM reweightings").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM batch_weights").fetchone()[0] == result["n"]

    impossible = tmp_path / "impossible.csv"
    impossible.write_text("column,level,share\nsitting_hours_per_day,0-24,0.9\nsitting_hours_per_day,24+,0.1\n")
    refused = run(home, "report", "population", "--target", str(impossible), expect=2)
    assert "column 'sitting_hours_per_day': nobody in the batch has '24+'" in refused["message"]
