"""docs/input-contract.md says what data/contract.py and the NHANES adapter do: every column, type,
requirement, range and allowed value, and every Fitbit and NHANES mapping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from balanceit.data import nhanes
from balanceit.data.contract import (
    ACTIVITY, FITBIT_DAILY_ACTIVITY, QUESTIONNAIRE, SEX, ColumnSpec,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "input-contract.md"


def section(heading: str) -> str:
    """The text under a `## ...` heading, up to the next one."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every Markdown table in `text`, as stripped cells (header and rule left out)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [row for i, row in enumerate(rows)
            if not set("".join(row)) <= set("-") and not (i + 1 < len(rows) and set("".join(rows[i + 1])) <= set("-"))]


def documented_range(spec: ColumnSpec) -> str:
    def number(value: float) -> str:
        return f"{value:g}"

    if spec.low is not None and spec.high is not None:
        return f"{number(spec.low)} to {number(spec.high)}"
    if spec.low is not None:
        return f"above {number(spec.low)}" if spec.low_exclusive else f"{number(spec.low)} or more"
    return ""


def documented_allowed(cell: str) -> tuple[str, ...]:
    """`a, b, c (a note)` -> ("a", "b", "c")."""
    return tuple(value.strip() for value in cell.split("(")[0].split(","))


def check_columns(rows: list[list[str]], specs: tuple[ColumnSpec, ...]) -> None:
    assert [row[0] for row in rows] == [spec.name for spec in specs], "the documented columns or their order"
    for row, spec in zip(rows, specs):
        assert row[1] == spec.type, spec.name
        assert row[2] == ("yes" if spec.required else "no"), spec.name
        assert row[3] == documented_range(spec), spec.name
        if spec.allowed:
            assert documented_allowed(row[4]) == spec.allowed, spec.name
        if spec.required_if_present:
            assert "every row needs" in row[4], spec.name


def test_the_questionnaire_table_is_the_contract():
    check_columns(table_rows(section("1. Questionnaire")), QUESTIONNAIRE)


def test_the_activity_table_is_the_contract():
    rows = table_rows(section("2. Daily wearable activity"))
    canonical = [row for row in rows if len(row) == 4]
    check_columns([row + [""] for row in canonical], ACTIVITY)


def test_the_fitbit_mapping_is_the_readers():
    rows = [row for row in table_rows(section("2. Daily wearable activity")) if len(row) == 2]
    assert {row[0].split()[0].lower(): row[1] for row in rows} == FITBIT_DAILY_ACTIVITY


def test_the_nhanes_mapping_names_what_the_adapter_reads():
    rows = table_rows(section("3. NHANES"))
    documented = {code for row in rows for code in re.findall(r"\b[A-Z]{3,}[0-9A-Z]*\b", row[0])}
    read = (set(nhanes.DEMO_COLUMNS) | set(nhanes.BMX_COLUMNS) | set(nhanes.PAQ_ANSWER_WIDTHS)
            | {cycle.weight for cycle in nhanes.CYCLES.values()})
    questions_with_details = {"PAQ655", "PAQ670", "PAD660", "PAD675"}  # "with their days and minutes"
    assert documented == read - questions_with_details
    assert f"{min(nhanes.SEX)} / {max(nhanes.SEX)}" in rows[2][0]
    assert rows[2][1] == f"sex {nhanes.SEX[1]} / {nhanes.SEX[2]}" and set(nhanes.SEX.values()) < set(SEX)
    assert f"under {nhanes.MIN_AGE}" in rows[1][1]


@pytest.mark.parametrize("drift", ["type", "range", "allowed"])
def test_a_drifted_column_is_caught(drift):
    """The check above fails when the code and the page disagree (so it can fail at all)."""
    from dataclasses import replace

    rows = table_rows(section("1. Questionnaire"))
    changed = {"type": {"type": "number"}, "range": {"high": 101}, "allowed": {"allowed": ("male", "female")}}[drift]
    target = {"type": "age", "range": "age", "allowed": "sex"}[drift]
    drifted = tuple(replace(spec, **changed) if spec.name == target else spec for spec in QUESTIONNAIRE)
    with pytest.raises(AssertionError):
        check_columns(rows, drifted)
