"""Population estimates: weighted by the survey design when there is one, with design-based intervals.

Must show: on NHANES 2017-2020 (shared data; skipped where absent) adults' weighted mean sitting is
356 +- 1 minutes a day and its design-based interval is wider than the naive one; on a synthetic
population sampled with known unequal probabilities, the weighted estimate's interval holds the full
population's mean where the plain mean's does not.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from balanceit.reports.estimates import (
    Estimate,
    _floats,
    _indicator,
    design_of,
    estimate_of,
    population_estimates,
    sample_of,
    segment_estimates,
)
from balanceit.reports import aggregate
from balanceit.reports.render import render_population
from conftest import build_scored

SHARED_DATA = Path(os.environ.get("BALANCEIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
NHANES_P = SHARED_DATA / "nhanes_2017-2020_prepandemic_P"
DESIGN_COLUMNS = ["survey_weight", "survey_stratum", "survey_psu"]
ESTIMATE_NAMES = {"mean_risk", "share_low_risk", "share_moderate_risk", "share_high_risk",
                  "mean_sitting_hours", "share_sitting_over_8h"}


def estimate_mean(values: pd.Series, frame: pd.DataFrame) -> Estimate:
    """Mean of `values` (aligned with `frame`), as `population_estimates` computes each of its means."""
    y = _floats(values, frame)
    return estimate_of(sample_of(design_of(frame), {"y": y}), "y", y, share=False)


def estimate_share(indicator: pd.Series, frame: pd.DataFrame) -> Estimate:
    """Share of rows where `indicator` is true, as `population_estimates` computes each of its shares."""
    y = _indicator(indicator, frame)
    return estimate_of(sample_of(design_of(frame), {"y": y}), "y", y, share=True)


def width(estimate: Estimate) -> float:
    return estimate.ci_high - estimate.ci_low


def covers(estimate: Estimate, value: float) -> bool:
    return estimate.ci_low <= value <= estimate.ci_high


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    n, mean = len(values), float(np.mean(values))
    half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def with_design(people: pd.DataFrame, seed: int = 3, strata: int = 12) -> pd.DataFrame:
    """`people` with positive weights, strata and two PSUs per stratum (codes reused across strata)."""
    rng = np.random.default_rng(seed)
    return people.assign(
        survey_weight=rng.uniform(500, 5000, len(people)),
        survey_stratum=rng.integers(0, strata, len(people)).astype(str),
        survey_psu=rng.integers(1, 3, len(people)),
    )


# --- Must show: NHANES 2017-2020 ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def nhanes() -> pd.DataFrame:
    if not NHANES_P.exists():
        pytest.skip(f"shared data not found: {NHANES_P}")
    from balanceit.data.nhanes import load_nhanes

    return load_nhanes(NHANES_P, now=pd.Timestamp("2025-06-01")).accepted


def test_nhanes_adults_weighted_sitting_is_356_minutes_with_a_wider_design_interval(nhanes):
    adult = nhanes["age"] >= 18
    # Adults as a domain of the full design: the others' rows stay in their strata and PSUs.
    minutes = (nhanes["sitting_hours_per_day"] * 60).where(adult)
    weighted = estimate_mean(minutes, nhanes)
    naive = estimate_mean(minutes, nhanes.drop(columns=DESIGN_COLUMNS))

    assert abs(weighted.value - 356) <= 1
    assert round(weighted.value / 60, 2) == 5.93
    assert abs(naive.value - 335) <= 1  # the plain mean the issue quotes
    assert covers(weighted, weighted.value) and covers(naive, naive.value)
    assert width(weighted) > width(naive)
    # The naive interval is the ordinary t interval of the adults' answers.
    plain = minutes.dropna().to_numpy()
    assert (naive.value, naive.ci_low, naive.ci_high) == pytest.approx(t_interval(plain))

    # NHANES 2017-2020 has 24 strata and 49 PSUs: a t with 25 df, not a normal with thousands.
    design = design_of(nhanes)
    assert (design.n_strata, design.n_psus, design.singleton_strata) == (24, 49, 0)
    assert "25 degrees of freedom" in design.describe()
    # Filtering to adults gives the same point estimate (and here the same rows: PAQ asks adults).
    assert estimate_mean(minutes[adult], nhanes[adult]).value == pytest.approx(weighted.value)


def test_nhanes_share_sitting_over_8_hours_is_a_weighted_share(nhanes):
    adult = nhanes["age"] >= 18
    over_8 = (nhanes["sitting_hours_per_day"] > 8).where(adult & nhanes["sitting_hours_per_day"].notna())
    share = estimate_share(over_8, nhanes)
    answered = over_8.notna()
    weighted = np.average(over_8[answered].astype(float), weights=nhanes.loc[answered, "survey_weight"])
    assert share.value == pytest.approx(weighted)
    assert 0 <= share.ci_low < share.value < share.ci_high <= 1


# --- Must show: a population sampled with known unequal probabilities ------------------------------

@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    from balanceit.data.synthetic import generate

    questionnaire = generate(100_000, seed=20250601).questionnaire
    return questionnaire[["sitting_hours_per_day", "occupation"]].reset_index(drop=True)


def inclusion_probabilities(population: pd.DataFrame) -> np.ndarray:
    """Long sitters (over 8 hours a day, mostly desk workers and drivers) are 5 times as likely to be drawn."""
    long_sitter = population["sitting_hours_per_day"].to_numpy() > 8
    return np.where(long_sitter, 0.05, 0.01)


def poisson_sample(population: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each person drawn independently with their own probability, weighted by its inverse."""
    p = inclusion_probabilities(population)
    drawn = np.random.default_rng(seed).random(len(population)) < p
    return population[drawn].assign(survey_weight=1 / p[drawn])


@pytest.mark.slow
def test_weighted_estimate_recovers_the_population_mean_where_the_plain_mean_does_not(population):
    truth = population["sitting_hours_per_day"].mean()
    sample = poisson_sample(population, seed=1)
    assert 2000 < len(sample) < 4000

    weighted = estimate_mean(sample["sitting_hours_per_day"], sample)
    plain = estimate_mean(sample["sitting_hours_per_day"], sample.drop(columns="survey_weight"))

    assert design_of(sample) is not None and design_of(sample.drop(columns="survey_weight")) is None
    assert covers(weighted, truth)
    assert not covers(plain, truth)
    assert plain.ci_low > truth + 0.5  # oversampling long sitters biases the plain mean upwards
    assert not covers(weighted, plain.value)


@pytest.mark.slow
def test_weighted_intervals_cover_the_population_mean_at_about_their_nominal_rate(population):
    truth = population["sitting_hours_per_day"].mean()
    draws = [poisson_sample(population, seed) for seed in range(100, 140)]
    weighted_covers = sum(covers(estimate_mean(s["sitting_hours_per_day"], s), truth) for s in draws)
    plain_covers = sum(covers(estimate_mean(s["sitting_hours_per_day"], s.drop(columns="survey_weight")), truth)
                       for s in draws)
    assert weighted_covers >= 34  # 95% nominal: P(fewer than 34 of 40) is about 1.4%
    assert plain_covers == 0


@pytest.mark.slow
def test_share_of_long_sitters_is_recovered_by_weighting(population):
    truth = (population["sitting_hours_per_day"] > 8).mean()
    sample = poisson_sample(population, seed=2)
    over_8 = sample["sitting_hours_per_day"] > 8
    weighted = estimate_share(over_8, sample)
    plain = estimate_share(over_8, sample.drop(columns="survey_weight"))
    assert covers(weighted, truth) and not covers(plain, truth)


# --- Designs ---------------------------------------------------------------------------------------

def test_design_of_needs_a_positive_weight_on_every_row():
    people = with_design(build_scored(200))
    assert design_of(people) is not None
    assert design_of(people.drop(columns=DESIGN_COLUMNS)) is None
    assert design_of(people.assign(survey_weight=0.0)) is None
    assert design_of(people.assign(survey_weight=people["survey_weight"].where(people.index != 5))) is None
    assert design_of(people.head(0)) is None


def test_design_without_psus_counts_each_row_as_its_own_psu():
    people = with_design(build_scored(300))
    design = design_of(people.drop(columns=["survey_stratum", "survey_psu"]))
    assert (design.stratum, design.psu, design.n_strata, design.n_psus) == (None, None, 1, 300)
    assert "its own PSU" in design.describe() and "299 degrees of freedom" in design.describe()
    # A PSU column with a missing code is not a usable design column: weights only.
    gappy = people.assign(survey_psu=people["survey_psu"].astype(float).where(people.index != 0))
    assert design_of(gappy).psu is None and design_of(gappy).stratum is not None


def test_weights_without_psus_give_the_linearised_variance_of_a_weighted_mean():
    rng = np.random.default_rng(8)
    y, w = rng.gamma(2.0, 2.0, 500), rng.uniform(1, 20, 500)
    frame = pd.DataFrame({"y": y, "survey_weight": w})
    estimate = estimate_mean(frame["y"], frame)
    mean = np.sum(w * y) / np.sum(w)
    n = len(y)
    se = math.sqrt(n / (n - 1) * np.sum((w * (y - mean)) ** 2)) / np.sum(w)
    half = stats.t.ppf(0.975, n - 1) * se
    assert (estimate.value, estimate.ci_low, estimate.ci_high) == pytest.approx((mean, mean - half, mean + half))


def test_psu_codes_are_nested_in_strata_and_singleton_strata_do_not_crash():
    people = with_design(build_scored(400), strata=4)
    design = design_of(people)
    assert (design.n_strata, design.n_psus) == (4, 8)
    lonely = people.assign(survey_psu=np.where(people["survey_stratum"] == "0", 1, people["survey_psu"]))
    design = design_of(lonely)
    assert design.singleton_strata == 1 and "single PSU" in design.describe()
    estimate = estimate_mean(lonely["risk"], lonely)
    assert estimate.ci_low < estimate.value < estimate.ci_high


# --- Unweighted data ----------------------------------------------------------------------------------

def test_unweighted_data_gets_ordinary_intervals_and_says_so():
    people = build_scored(1000)
    result = population_estimates(people)
    assert result["weighted"] is False and result["n"] == 1000
    assert "respondents only" in result["population"]
    assert "simple random sample" in result["intervals"]
    mean_risk = result["estimates"]["mean_risk"]
    assert (mean_risk["value"], mean_risk["ci_low"], mean_risk["ci_high"]) == pytest.approx(
        t_interval(people["risk"].to_numpy()))
    # Shares: Korn-Graubard, which for a simple random sample is a Clopper-Pearson interval.
    high = result["estimates"]["share_high_risk"]
    k = int((people["band"] == "high").sum())
    clopper_pearson = (stats.beta.ppf(0.025, k, 1000 - k + 1), stats.beta.ppf(0.975, k + 1, 1000 - k))
    assert high["value"] == pytest.approx(k / 1000)
    assert (high["ci_low"], high["ci_high"]) == pytest.approx(clopper_pearson, abs=2e-3)


def test_weighted_population_estimates_are_weighted_and_say_so():
    people = with_design(build_scored(2000))
    result = population_estimates(people)
    assert result["weighted"] is True and result["n"] == 2000
    assert "population the survey represents" in result["population"]
    assert "12 strata and 24 PSUs" in result["intervals"]
    assert set(result["estimates"]) == ESTIMATE_NAMES
    w = people["survey_weight"]
    expected = {
        "mean_risk": np.average(people["risk"], weights=w),
        "mean_sitting_hours": np.average(people["sitting_hours_per_day"], weights=w),
        "share_high_risk": np.average(people["band"] == "high", weights=w),
        "share_sitting_over_8h": np.average(people["sitting_hours_per_day"] > 8, weights=w),
    }
    for name, value in expected.items():
        assert result["estimates"][name]["value"] == pytest.approx(value)
    assert sum(result["estimates"][f"share_{b}_risk"]["value"] for b in ("low", "moderate", "high")) == pytest.approx(1)
    json.dumps(result, allow_nan=False)


# --- Shares, missing values and degenerate data -------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_shares_are_within_0_and_1_even_at_the_edges(weighted):
    people = build_scored(500)
    if weighted:
        people = with_design(people)
    cases = {
        "none": pd.Series(False, index=people.index),
        "all": pd.Series(True, index=people.index),
        "rare": pd.Series(people.index == 7, index=people.index),
        "half": people["band"] != "low",
        "zero_one": (people["risk"] > 0.5).astype(int),
    }
    for name, indicator in cases.items():
        share = estimate_share(indicator, people)
        assert 0 <= share.ci_low <= share.value <= share.ci_high <= 1, name
    assert estimate_share(cases["none"], people).value == 0 and estimate_share(cases["none"], people).ci_high > 0
    assert estimate_share(cases["all"], people).value == 1 and estimate_share(cases["all"], people).ci_low < 1
    with pytest.raises(ValueError):
        estimate_share(people["risk"], people)


@pytest.mark.parametrize("weighted", [False, True])
def test_constant_data_has_a_zero_width_interval(weighted):
    people = build_scored(300).assign(risk=0.25, sitting_hours_per_day=7.0, band="moderate")
    if weighted:
        people = with_design(people)
    risk = estimate_mean(people["risk"], people)
    assert (risk.value, risk.ci_low, risk.ci_high) == pytest.approx((0.25, 0.25, 0.25))
    result = population_estimates(people)
    assert list(result["estimates"]["mean_sitting_hours"].values()) == pytest.approx([7.0, 7.0, 7.0])
    assert result["estimates"]["share_moderate_risk"]["value"] == 1
    assert result["estimates"]["share_sitting_over_8h"]["value"] == 0


def test_missing_values_are_left_out_as_a_domain():
    people = with_design(build_scored(1000))
    sitting = people["sitting_hours_per_day"].where(people.index % 4 != 0)
    estimate = estimate_mean(sitting, people)
    answered = sitting.notna()
    assert estimate.value == pytest.approx(np.average(sitting[answered], weights=people.loc[answered, "survey_weight"]))
    assert covers(estimate, estimate.value)
    assert estimate_mean(pd.Series(np.nan, index=people.index), people).as_dict() == {
        "value": None, "ci_low": None, "ci_high": None}
    # A missing band leaves the band shares only: they are shares of the people with a band.
    result = population_estimates(people.assign(sitting_hours_per_day=sitting,
                                                band=people["band"].where(people.index % 5 != 0)))
    assert sum(result["estimates"][f"share_{b}_risk"]["value"] for b in ("low", "moderate", "high")) == pytest.approx(1)
    assert result["estimates"]["mean_sitting_hours"]["value"] == pytest.approx(estimate.value)


def test_values_are_aligned_with_the_frame_by_index():
    people = with_design(build_scored(200)).set_index(np.arange(1000, 1200))
    reversed_risk = people["risk"].iloc[::-1]
    assert estimate_mean(reversed_risk, people) == estimate_mean(people["risk"], people)


# --- Segments -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_segment_estimates_are_domain_estimates(weighted):
    people = build_scored(3000)
    if weighted:
        people = with_design(people)
    labels = people["occupation"].where(people["occupation"] != "retired")  # the retired are in no segment
    table = segment_estimates(people, labels)
    assert list(table.columns) == ["label", "n", "mean_risk", "mean_risk_ci_low", "mean_risk_ci_high",
                                   "share_high", "share_high_ci_low", "share_high_ci_high"]
    assert list(table["label"]) == list(labels.dropna().unique())
    assert table["n"].tolist() == labels.value_counts().reindex(table["label"]).tolist()
    w = people["survey_weight"] if weighted else pd.Series(1.0, index=people.index)
    for row in table.itertuples():
        members = labels == row.label
        assert row.mean_risk == pytest.approx(np.average(people.loc[members, "risk"], weights=w[members]))
        assert row.share_high == pytest.approx(np.average(people.loc[members, "band"] == "high", weights=w[members]))
        assert row.mean_risk_ci_low < row.mean_risk < row.mean_risk_ci_high
        assert 0 <= row.share_high_ci_low <= row.share_high <= row.share_high_ci_high <= 1


def test_a_segment_missing_from_some_psus_keeps_the_whole_design():
    people = with_design(build_scored(2000), strata=6)
    # The segment is absent from PSU 2 of stratum 0: that PSU still counts, with a total of zero.
    labels = pd.Series(np.where((people["survey_stratum"] == "0") & (people["survey_psu"] == 2), "other", "segment"),
                       index=people.index)
    row = segment_estimates(people, labels).set_index("label").loc["segment"]

    # Reference: the linearised variance of a domain mean over the full design, PSU totals within strata.
    member = (labels == "segment").to_numpy()
    y, w = people["risk"].to_numpy(), people["survey_weight"].to_numpy()
    mean = np.sum(w * member * y) / np.sum(w * member)
    z = pd.Series(w * member * (y - mean) / np.sum(w * member))
    totals = z.groupby([people["survey_stratum"], people["survey_psu"]]).sum()
    variance = sum(len(t) / (len(t) - 1) * np.sum((t - t.mean()) ** 2) for _, t in totals.groupby(level=0))
    # svy's degrees of freedom for a domain: the PSUs holding members (11) less their strata (6).
    half = stats.t.ppf(0.975, 11 - 6) * math.sqrt(variance)
    assert (row["mean_risk"], row["mean_risk_ci_low"], row["mean_risk_ci_high"]) == pytest.approx(
        (mean, mean - half, mean + half))


def test_segment_order_follows_a_categorical_and_skips_empty_categories():
    people = build_scored(500)
    labels = pd.Series(pd.Categorical(np.where(people["sitting_hours_per_day"] > 8, "over 8 h", "up to 8 h"),
                                      categories=["up to 8 h", "never seen", "over 8 h"]), index=people.index)
    table = segment_estimates(people, labels)
    assert list(table["label"]) == ["up to 8 h", "over 8 h"]
    assert table["n"].sum() == 500


# --- The report's segment tables -----------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_report_segments_show_domain_estimates_with_intervals(weighted):
    people = build_scored(3000)
    if weighted:
        people = with_design(people)
    w = people["survey_weight"] if weighted else pd.Series(1.0, index=people.index)
    occupations = aggregate.segment_table(people, "occupation", min_group_size=10).set_index("label")
    expected = segment_estimates(people, people["occupation"]).set_index("label")
    assert occupations[list(aggregate.SEGMENT_FIGURES)].astype(float).to_numpy() == pytest.approx(
        expected.loc[occupations.index, list(aggregate.SEGMENT_FIGURES)].to_numpy())

    # A person who does several kinds of exercise is in each kind's group: every group is its own domain.
    exercise = aggregate.segment_table(people, "exercise_type", min_group_size=10).set_index("label")
    walkers = people["exercise_types"].fillna("").str.split(";").map(lambda kinds: "walking" in kinds)
    walking = exercise.loc["walking"]
    assert walking["n"] == walkers.sum()
    assert walking["mean_risk"] == pytest.approx(np.average(people.loc[walkers, "risk"], weights=w[walkers]))
    for row in exercise.itertuples():
        assert row.mean_risk_ci_low < row.mean_risk < row.mean_risk_ci_high
        assert 0 <= row.share_high_ci_low <= row.share_high <= row.share_high_ci_high <= 1


def test_hidden_segments_hide_their_intervals_too(tmp_path, make_population_context):
    people = with_design(build_scored(400))
    people.loc[:2, "occupation"] = "astronaut"
    table = aggregate.segment_table(people, "occupation", min_group_size=10).set_index("label")
    hidden = table[table["suppressed"]]
    assert "astronaut" in hidden.index and hidden[list(aggregate.SEGMENT_FIGURES)].isna().all().all()
    groups = {group["label"]: group for segment in aggregate.segments_json(aggregate.segment_tables(people, 10))
              if segment["key"] == "occupation" for group in segment["groups"]}
    assert groups["astronaut"]["people"] == "< 10"
    assert groups["astronaut"]["mean_risk"] == {"value": None, "ci_low": None, "ci_high": None}
    shown = groups["desk"]["mean_risk"]
    assert shown["ci_low"] < shown["value"] < shown["ci_high"]
    json.dumps(groups, allow_nan=False)

    html = render_population(make_population_context(people), tmp_path / "p.html").read_text()
    desk = table.loc["desk"]
    assert f"({desk['mean_risk_ci_low']:.1%} – {desk['mean_risk_ci_high']:.1%})" in html
    assert "weighted, with 95% design-based intervals" in html
