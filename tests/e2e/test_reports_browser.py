"""The reports as a reader sees them: opened from disk in headless Chromium, at desktop and phone width.

Needs Debian's `chromium` (apt-get install -y chromium) and the PyPI package `playwright`; the
system browser is used, never one downloaded by `playwright install`. Screenshots go to the test's
tmp_path and, when BALANCEIT_SCREENSHOT_DIR is set, there too, for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright) so reports can't be opened"
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
LOCAL_SCHEMES = ("file:", "data:")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def report_files(tmp_path, make_scored, make_population_context, make_person_context) -> dict[str, Path]:
    from balanceit.reports.render import render_person, render_population

    return {
        "population": render_population(make_population_context(make_scored(2000)), tmp_path / "population.html"),
        "person": render_person(make_person_context(), tmp_path / "person.html"),
    }


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("kind", ["population", "person"])
def test_report_draws_offline_without_errors(browser, report_files, tmp_path, kind, viewport):
    page = browser.new_page(viewport=VIEWPORTS[viewport])
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(report_files[kind].as_uri(), wait_until="load")

        charts = page.locator("svg[data-chart]")
        assert charts.count() > 0
        for index in range(charts.count()):
            box = charts.nth(index).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, f"chart {index} ({kind}) did not draw"
            drawn = charts.nth(index).locator("rect, circle").first.bounding_box()
            assert drawn and drawn["width"] > 0 and drawn["height"] > 0, f"chart {index} has no visible shapes"
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= VIEWPORTS[viewport]["width"], f"the page scrolls sideways at {viewport} width"

        assert requested and all(url.startswith(LOCAL_SCHEMES) for url in requested), requested
        assert errors == []
        _save_screenshot(page, f"{kind}-{viewport}.png", tmp_path)
    finally:
        page.close()


def _save_screenshot(page, name: str, tmp_path: Path) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    if target := os.environ.get("BALANCEIT_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / name)


RAW_COLUMN_NAME = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")


def _open(browser, path: Path, viewport: str = "desktop"):
    page = browser.new_page(viewport=VIEWPORTS[viewport])
    page.goto(path.as_uri(), wait_until="load")
    return page


def test_training_report_shows_the_observed_rate_and_no_drift(browser, demo_workspace, tmp_path):
    _, result = demo_workspace
    page = _open(browser, Path(result["training_population_report"]))
    try:
        assert page.locator("#drift").count() == 0
        assert "Drift" not in page.locator("nav.toc").inner_text()
        assert re.search(r"Observed imbalance rate\s+\d+\.\d%", page.locator("#summary").inner_text())
        _save_screenshot(page, "training-population-desktop.png", tmp_path)
    finally:
        page.close()


def test_batch_report_states_the_cutoffs_and_names_drift_in_words(browser, demo_workspace, tmp_path):
    _, result = demo_workspace
    page = _open(browser, Path(result["population_report"]))
    try:
        cutoffs = page.locator("#band-cutoffs").inner_text()
        assert "low below 30%" in cutoffs and "high from 60%" in cutoffs and "configuration" in cutoffs
        assert "(training:" in page.locator("#summary").inner_text()
        drift = page.locator("#drift")
        assert drift.locator("details").count() == 1
        drift.locator("details summary").click()
        shown = drift.inner_text()
        assert "Lightly active minutes a day (wearable)" in shown
        assert RAW_COLUMN_NAME.findall(shown) == []
        assert "training/" not in page.locator("#data-quality").inner_text()
        assert "can change" in page.locator("#drivers").inner_text()
        _save_screenshot(page, "population-desktop.png", tmp_path)
    finally:
        page.close()


def test_person_report_shows_where_they_stand_and_their_odds(browser, demo_workspace, tmp_path):
    _, result = demo_workspace
    page = _open(browser, Path(result["person_report"]), "phone")
    try:
        standing = page.locator("#standing").inner_text()
        assert re.search(r"higher than that of \d+%\s+of the [\d,]+ people", standing), standing
        assert "odds" in page.locator("#drivers").inner_text()
        _save_screenshot(page, "person-phone.png", tmp_path)
    finally:
        page.close()


def test_what_if_differences_subtract_as_shown(browser, tmp_path, make_person_context):
    from balanceit.reports.render import render_person

    context = make_person_context(
        risk=0.384, what_ifs=[{"label": "stretched three days a week", "risk_before": 0.384, "risk_after": 0.316}],
        drivers=make_person_context()["drivers"][:2])
    page = _open(browser, render_person(context, tmp_path / "person.html"))
    try:
        cells = page.locator("#what-ifs tbody tr").first.locator("td").all_inner_texts()
        assert cells == ["38%", "32%", "−6 pts"]
        assert "lowers risk" not in page.locator("#drivers").inner_text()
    finally:
        page.close()
