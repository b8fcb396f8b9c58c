"""The HTML reports: privacy (suppression, escaping, no network), charts, figures and size at scale."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup, escape

from balanceit.reports import aggregate, charts
from balanceit.reports.render import render_person, render_population

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
NETWORK_REFERENCE = re.compile(
    r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
    re.IGNORECASE,
)


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the first child tag of each <svg>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.svg_first_child: list[str] = []
        self._after_svg = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._after_svg:
            self.svg_first_child.append(tag)
        self._after_svg = tag == "svg"
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture
def reports(tmp_path, make_scored, make_population_context, make_person_context) -> dict[str, str]:
    population = render_population(make_population_context(make_scored(400)), tmp_path / "population.html")
    person = render_person(make_person_context(), tmp_path / "person.html")
    return {"population": population.read_text(encoding="utf-8"), "person": person.read_text(encoding="utf-8")}


# --- privacy -----------------------------------------------------------------------------------

def test_a_group_of_three_is_suppressed_and_its_mean_risk_appears_nowhere(tmp_path, make_scored,
                                                                          make_population_context):
    scored = make_scored(400)
    scored["occupation"] = scored["occupation"].replace("driving", "desk")
    scored.loc[:2, ["occupation", "risk", "band"]] = [["driving", 0.9311, "high"], ["driving", 0.9377, "high"],
                                                      ["driving", 0.9425, "high"]]
    table = aggregate.segment_table(scored, "occupation", min_group_size=10)
    driving = table.set_index("label").loc["driving"]
    assert driving["suppressed"] and driving["n_shown"] == "< 10"
    assert pd.isna(driving["n"]) and pd.isna(driving["mean_risk"]) and pd.isna(driving["share_high"])

    html = render_population(make_population_context(scored, min_group_size=10), tmp_path / "p.html").read_text()
    row = re.search(r"<tr class=\"suppressed\"><th scope=\"row\">driving</th>(.*?)</tr>", html)
    assert row and "&lt; 10" in row.group(1)
    for figure in ("93.7", "0.937", "0.9371"):
        assert figure not in html


def test_one_hidden_group_takes_the_next_smallest_with_it():
    scored = _people(occupation=["desk"] * 20 + ["manual"] * 12 + ["driving"] * 3)
    table = aggregate.segment_table(scored, "occupation", min_group_size=10).set_index("label")
    assert table.loc["driving", "n_shown"] == "< 10"
    assert table.loc["manual", "suppressed"] and table.loc["manual", "n_shown"] == "≥ 10"
    assert pd.isna(table.loc["manual", "mean_risk"])
    assert not table.loc["desk", "suppressed"] and table.loc["desk", "n"] == 20


def test_two_small_groups_protect_each_other_once_they_reach_the_minimum_together():
    scored = _people(occupation=["desk"] * 20 + ["manual"] * 15 + ["driving"] * 6 + ["retired"] * 5)
    table = aggregate.segment_table(scored, "occupation", min_group_size=10)
    assert list(table["suppressed"]) == [False, False, True, True]
    scored = _people(occupation=["desk"] * 20 + ["manual"] * 15 + ["driving"] * 4 + ["retired"] * 3)
    table = aggregate.segment_table(scored, "occupation", min_group_size=10)
    assert list(table["suppressed"]) == [False, True, True, True]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_text_is_escaped_in_both_reports(tmp_path, make_scored, make_population_context,
                                              make_person_context, payload):
    scored = make_scored(200)
    scored.loc[:14, "occupation"] = payload
    population = make_population_context(
        scored, title=payload, population=f"Scored batch from file {payload}",
        data_quality=[{"file": payload, "rows_read": 3, "accepted": 2, "quarantined": 1, "reasons": {payload: 1}}],
        drift=[{"feature": payload, "psi": 0.4, "level": "drift"}],
        estimates=[{"name": payload, "value": 0.3, "ci_low": 0.2, "ci_high": 0.4}],
    )
    population["drivers"][0]["label"] = payload
    person = make_person_context(
        respondent_id=payload, summary=payload, signs=[payload], missing_answers=[payload],
        recommendations=[{"title": payload, "text": payload}],
        drivers=[{"label": payload, "sentence": payload, "answers": [{"question": payload, "value": payload}],
                  "contribution": 0.2}],
    )
    outputs = [render_population(population, tmp_path / "population.html"),
               render_person(person, tmp_path / "person.html")]
    for html in (path.read_text(encoding="utf-8") for path in outputs):
        assert "<script" not in html and "<img" not in html
        assert str(escape(payload)) in html


@pytest.mark.parametrize("kind", ["population", "person"])
def test_reports_reference_nothing_on_the_network(reports, kind):
    html = reports[kind]
    assert not NETWORK_REFERENCE.search(html)
    assert "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html  # the Content-Security-Policy forbids fetching anything


def test_a_personal_report_refuses_anything_but_its_own_keys(tmp_path, make_person_context):
    with pytest.raises(ValueError, match="unknown keys \\['other_people'\\]"):
        render_person(make_person_context(other_people=[{"respondent_id": "r000001"}]), tmp_path / "p.html")
    with pytest.raises(ValueError, match="missing keys \\['risk'\\]"):
        render_person({k: v for k, v in make_person_context().items() if k != "risk"}, tmp_path / "p.html")


def test_both_reports_say_screening_aid_not_diagnosis(reports):
    assert all("screening aid, not a diagnosis" in html for html in reports.values())


# --- charts ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "expected_charts"), [
    ("population", ["histogram", "bar", "bar", "bar", "calibration"]),
    ("person", ["contribution"]),
])
def test_charts_are_inline_accessible_svg(reports, kind, expected_charts):
    elements = _Elements(reports[kind])
    svgs = elements.named("svg")
    assert sorted(svg["data-chart"] for svg in svgs) == sorted(expected_charts)
    assert all(svg["role"] == "img" and svg["aria-label"] and svg["viewbox"] for svg in svgs)
    assert elements.svg_first_child == ["title"] * len(svgs)
    assert not elements.named("img") and not elements.named("script") and not elements.named("link")


def test_chart_labels_are_escaped():
    label = '<b onmouseover="x">Desk & co</b>'
    svgs = [
        charts.bar_chart([(label, 0.4, 0.3, 0.5)], label, ".0%"),
        charts.contribution_bars([(label, -0.1)], label),
        charts.histogram([0, 0.5, 1], [3, 4], label, label),
        charts.calibration_plot([0.2], [0.3], [10], label),
    ]
    for svg in svgs:
        assert isinstance(svg, Markup)
        assert "<b" not in svg and "&lt;b onmouseover=&#34;x&#34;&gt;Desk &amp; co" in svg


def test_contribution_bars_say_the_direction_in_words():
    svg = charts.contribution_bars([("Long sitting", 0.2), ("Stretching", -0.1)], "Drivers")
    assert "Long sitting: raises risk" in svg and "Stretching: lowers risk" in svg


# --- figures -----------------------------------------------------------------------------------

def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    train = pd.Series(rng.normal(6, 2, 5000))
    assert aggregate.psi(train, train.copy()) == pytest.approx(0, abs=1e-9)
    assert aggregate.psi(train, pd.Series(rng.normal(6, 2, 5000))) < 0.1
    assert aggregate.psi(train, train + 2) > 0.25


def test_psi_compares_categories_by_share_and_counts_missing_answers():
    train = pd.Series(["desk"] * 50 + ["manual"] * 50)
    assert aggregate.psi(train, train.sample(frac=1, random_state=0)) == pytest.approx(0)
    assert aggregate.psi(train, pd.Series(["desk"] * 90 + ["manual"] * 10)) > 0.25
    numbers = pd.Series(np.arange(100.0))
    assert aggregate.psi(numbers, numbers.where(numbers > 40)) > 0.25


def test_drift_table_levels():
    rng = np.random.default_rng(2)
    train = pd.DataFrame({"same": rng.normal(size=4000), "moved": rng.normal(size=4000)})
    batch = pd.DataFrame({"same": rng.normal(size=4000), "moved": rng.normal(1.5, 1, size=4000)})
    table = aggregate.drift_table(train, batch, ["same", "moved"]).set_index("feature")
    assert table.loc["same", "level"] == "ok" and table.loc["moved", "level"] == "drift"


def test_band_counts_histogram_and_drivers():
    scored = _people(occupation=["desk"] * 4, risk=[0.1, 0.4, 0.7, 0.8], band=["low", "moderate", "high", "high"],
                     driver_1=["sitting", "sitting", "stretching", None],
                     driver_2=["stretching", None, "sitting", None])
    bands = aggregate.band_counts(scored).set_index("band")
    assert bands["n"].to_dict() == {"low": 1, "moderate": 1, "high": 2}
    assert aggregate.risk_histogram(scored, min_group_size=1, bins=10)["counts"] == [1, 1, 1, 1]  # empty bins joined
    drivers = aggregate.top_drivers(scored).set_index("feature")
    assert drivers.loc["sitting", "share_top3"] == 0.75 and drivers.loc["sitting", "share_first"] == 0.5
    assert drivers.loc["stretching", "share_top3"] == 0.5 and drivers.loc["stretching", "share_first"] == 0.25


def test_no_risk_histogram_bar_describes_fewer_than_the_minimum_group():
    """Sparse tails are where a bar would count one or two people: their bins join their neighbours."""
    risks = np.r_[0.12, np.linspace(0.3, 0.7, 200), 0.93, 0.97]
    histogram = aggregate.risk_histogram(pd.DataFrame({"risk": risks}), min_group_size=10)
    assert sum(histogram["counts"]) == len(risks) and min(histogram["counts"]) >= 10
    assert histogram["bin_edges"][0] == 0.0 and histogram["bin_edges"][-1] == 1.0
    assert len(histogram["bin_edges"]) == len(histogram["counts"]) + 1 and len(histogram["counts"]) > 5


def test_segments_band_answers_and_count_every_exercise_type():
    scored = _people(occupation=["desk"] * 5, sitting_hours_per_day=[3.9, 4, 8, 8.5, None],
                     exercise_types=["walking;yoga", "walking", None, "yoga|running", "none"])
    sitting = aggregate.segment_table(scored, "sitting", min_group_size=1).set_index("label")["n"].to_dict()
    assert sitting == {"under 4 h": 1, "4–6 h": 1, "6–8 h": 1, "over 8 h": 1, "not answered": 1}
    exercise = aggregate.segment_table(scored, "exercise_type", min_group_size=1).set_index("label")["n"].to_dict()
    assert exercise == {"walking": 2, "yoga": 2, "running": 1, "no exercise": 1, "not answered": 1}


def test_a_question_nobody_answered_gets_no_table_of_its_own(make_scored):
    """A survey that did not ask about occupation or strength training: the summary names them, no table
    says "not answered: everyone"; a question some people skipped keeps its table."""
    scored = make_scored(400).assign(occupation=None, strength_training=None)
    scored.loc[scored.index[:5], "sitting_hours_per_day"] = None
    keys = [segment["key"] for segment in aggregate.segment_tables(scored, 10)]
    assert "occupation" not in keys and "strength" not in keys
    assert {"sitting", "exercise_type", "stretching", "age_band", "sex"} <= set(keys)


def test_nullable_answers_from_the_warehouse_group_like_plain_ones():
    scored = _people(occupation=["desk"] * 3, risk=pd.array([0.2, 0.5, 0.8], dtype="Float64"),
                     age=pd.array([30, None, 70], dtype="Int64"),
                     sitting_hours_per_day=pd.array([2.0, None, 9.0], dtype="Float64"),
                     stretching_days_per_week=pd.array([0, 4, None], dtype="Int64"))
    ages = aggregate.segment_table(scored, "age_band", min_group_size=1).set_index("label")["n"].to_dict()
    assert ages == {"16–34": 1, "65+": 1, "not answered": 1}
    assert aggregate.mean_risk(scored) == pytest.approx(0.5)
    assert aggregate.psi(scored["age"], scored["age"]) == pytest.approx(0)


def test_survey_weights_weight_means_but_not_counts():
    scored = _people(occupation=["desk"] * 2, risk=[0.2, 0.8], band=["low", "high"], survey_weight=[3.0, 1.0])
    assert aggregate.mean_risk(scored) == pytest.approx(0.35)
    bands = aggregate.band_counts(scored).set_index("band")
    assert bands.loc["high", "n"] == 1 and bands.loc["high", "share"] == pytest.approx(0.25)
    assert aggregate.survey_weights(scored.assign(survey_weight=[3.0, None])) is None


def test_templates_are_named_for_package_data():
    names = [entry.name for entry in (files("balanceit.reports") / "templates").iterdir()]
    assert names and all(name.endswith((".j2", ".css")) for name in names)


# --- scale -------------------------------------------------------------------------------------

def test_a_report_for_100_000_people_is_fast_and_small(tmp_path, make_scored, make_population_context):
    scored = make_scored(100_000)
    started = time.perf_counter()
    out = render_population(make_population_context(scored), tmp_path / "population.html")
    elapsed = time.perf_counter() - started
    size = out.stat().st_size
    assert elapsed < 10, f"aggregating and rendering took {elapsed:.1f} s"
    assert size < 5 * 1024 * 1024, f"the report weighs {size / 1e6:.1f} MB"
    assert "100,000" in out.read_text(encoding="utf-8")


def _people(occupation: list[str], **columns: list) -> pd.DataFrame:
    """A hand-made scored frame: the given columns, neutral values for the rest."""
    n = len(occupation)
    defaults = {
        "respondent_id": [f"p{i}" for i in range(n)], "risk": [0.5] * n, "band": ["moderate"] * n,
        "occupation": occupation, "sex": ["female"] * n, "age": [40] * n, "sitting_hours_per_day": [6.0] * n,
        "exercise_types": ["walking"] * n, "stretching_days_per_week": [2] * n, "strength_training": ["none"] * n,
        "driver_1": ["sitting"] * n, "driver_2": [None] * n, "driver_3": [None] * n,
    }
    return pd.DataFrame({**defaults, **columns})


def test_population_json_counts_people_in_numbers(make_scored):
    from balanceit.reports import aggregate

    segments = aggregate.segments_json(aggregate.segment_tables(make_scored(400), 10))
    groups = [group for segment in segments for group in segment["groups"]]
    assert all(isinstance(g["people"], int) for g in groups if not g["suppressed"])
    assert all(isinstance(g["people"], str) for g in groups if g["suppressed"])
