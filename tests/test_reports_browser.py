"""The reports as a reader sees them: opened from disk in headless Chromium, at desktop and phone width.

Needs Debian's `chromium` (apt-get install -y chromium) and the PyPI package `playwright`; the
system browser is used, never one downloaded by `playwright install`. Screenshots go to the test's
tmp_path and, when BALANCEIT_SCREENSHOT_DIR is set, there too, for a person to look at.
"""

from __future__ import annotations

import os
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
