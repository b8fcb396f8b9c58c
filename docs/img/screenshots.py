"""The README's pictures of both reports, taken by the headless Chromium the browser tests use.

    .venv/bin/balanceit demo
    .venv/bin/python docs/img/screenshots.py .balanceit/reports/population-<batch>.html \
        .balanceit/reports/people/<respondent>.html

Each picture ends where a section ends, so no table is cut in half.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402
from test_reports_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORTS  # noqa: E402

# The element each picture ends below: the population report's summary, the whole personal report.
LAST_ELEMENT = {"population-report.png": "#summary", "person-report.png": "body"}


def main(population: Path, person: Path) -> None:
    reports = {"population-report.png": population, "person-report.png": person}
    width = VIEWPORTS["desktop"]["width"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for name, report in reports.items():
            page = browser.new_page(viewport=VIEWPORTS["desktop"])
            page.goto(report.resolve().as_uri(), wait_until="load")
            bottom = page.evaluate(f"document.querySelector('{LAST_ELEMENT[name]}').getBoundingClientRect().bottom"
                                   " + window.scrollY")
            clip = {"x": 0, "y": 0, "width": width, "height": min(bottom + 16, page.evaluate(
                "document.documentElement.scrollHeight"))}
            page.screenshot(path=str(HERE / name), clip=clip, full_page=True)
            page.close()
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
