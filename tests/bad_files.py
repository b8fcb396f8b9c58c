"""A corpus of input files, good and bad, each with the outcome the input contract promises.

Files are built as bytes here and written into a test's tmp_path, so the corpus is visible in one
place and needs no fixtures on disk.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

NOW = pd.Timestamp("2025-06-01 12:00")

FULL_ANSWERS = {
    "respondent_id": "r1", "submitted_at": "2025-01-02T10:00:00+02:00", "age": "34", "sex": "Female",
    "height_cm": "168.5", "weight_kg": "61", "occupation": "Desk", "sitting_hours_per_day": "9.5",
    "standing_hours_per_day": "2", "screen_hours_per_day": "7", "movement_breaks_per_day": "4",
    "exercise_types": " Walking|RUNNING ", "exercise_days_per_week": "3", "exercise_minutes_per_session": "45",
    "strength_training": "UNBALANCED", "stretching_days_per_week": "1", "stretches_before_exercise": "Yes",
    "stretches_after_exercise": "0", "posture_self_report": "poor", "back_pain": "Occasional",
    "neck_pain": "none", "shoulder_pain": "frequent", "imbalance": "TRUE",
}
REQUIRED_ONLY = {
    "respondent_id": "r2", "submitted_at": "2025-01-03", "age": "61", "sex": " male ", "sitting_hours_per_day": "4",
}
BOOLEAN_SPELLINGS = {
    "respondent_id": "r3", "submitted_at": "2025-01-04 08:30", "age": "16", "sex": "OTHER",
    "sitting_hours_per_day": "0", "exercise_types": "none",
    "stretches_before_exercise": "false", "stretches_after_exercise": "1", "imbalance": "no",
}
GOOD_ROWS = (FULL_ANSWERS, REQUIRED_ONLY, BOOLEAN_SPELLINGS)
# Mixed-case, padded header names: the contract matches names case-insensitively after trimming.
HEADER = {name: f" {name.upper()}" if i % 2 else name.title() for i, name in enumerate(FULL_ANSWERS)}


def good_row(respondent_id: str, **changes: str) -> dict[str, str]:
    return {**REQUIRED_ONLY, "respondent_id": respondent_id, **changes}


def good_frame() -> pd.DataFrame:
    """The good rows as text with the mixed-case header; missing answers are empty."""
    return pd.DataFrame(GOOD_ROWS, columns=list(FULL_ANSWERS), dtype="string").rename(columns=HEADER)


def csv_bytes(rows: list[dict[str, str]] | pd.DataFrame) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode("utf-8")


def write_good_file(folder: Path, suffix: str) -> Path:
    """The good rows in one of the contract's formats, chosen by suffix."""
    frame = good_frame()
    path = folder / f"questionnaire{suffix}"
    text = frame.to_csv(index=False)
    if suffix == ".csv":
        path.write_text(text, encoding="utf-8")
    elif suffix == "-bom.csv":
        path.write_text(text, encoding="utf-8-sig")
    elif suffix == ".csv.gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        path.write_text(frame.to_json(orient="records", lines=True), encoding="utf-8")
    else:
        raise ValueError(suffix)
    return path


GOOD_SUFFIXES = (".csv", "-bom.csv", ".csv.gz", ".parquet", ".jsonl")


@dataclass(frozen=True)
class Refused:
    """The whole file is refused; the problem contains `problem` and names `column`."""

    problem: str
    column: str | None = None


@dataclass(frozen=True)
class Quarantined:
    """The file loads: `accepted` rows pass, the others are quarantined with these reasons."""

    accepted: int
    reasons: dict[str, int] = field(default_factory=dict)


def _without(column: str) -> bytes:
    return csv_bytes(pd.DataFrame([REQUIRED_ONLY]).drop(columns=column))


def _garbage(size: int = 2048) -> bytes:
    return random.Random(7).randbytes(size)


BAD_QUESTIONNAIRES: dict[str, tuple[bytes, Refused | Quarantined]] = {
    "missing required column": (_without("age"), Refused("missing required column 'age'", "age")),
    "wrong types": (csv_bytes([
        good_row("ok"),
        good_row("a", age="thirty"),
        good_row("b", height_cm="tall"),
        good_row("c", movement_breaks_per_day="3.5"),
        good_row("d", submitted_at="yesterday"),
        good_row("e", stretches_before_exercise="maybe"),
    ]), Quarantined(1, {
        "age: not a number": 1, "height_cm: not a number": 1, "movement_breaks_per_day: not a whole number": 1,
        "submitted_at: not a date": 1, "stretches_before_exercise: not yes/no": 1,
    })),
    "out of range": (csv_bytes([
        good_row("ok", age="100", height_cm="230"),
        good_row("a", age="15"),
        good_row("b", age="101", height_cm="300"),
        good_row("c", exercise_days_per_week="8"),
        good_row("d", screen_hours_per_day="-1"),
    ]), Quarantined(1, {
        "age: must be between 16 and 100": 2, "height_cm: must be between 120 and 230": 1,
        "exercise_days_per_week: must be between 0 and 7": 1, "screen_hours_per_day: must be between 0 and 24": 1,
    })),
    "unknown categories": (csv_bytes([
        good_row("a", sex="dog"),
        good_row("b", occupation="astronaut", back_pain="sometimes"),
        good_row("c", exercise_types="walking;hiking"),
    ]), Quarantined(0, {
        "sex: not one of: female, male, other, unknown": 1,
        "occupation: not one of: desk, standing, manual, driving, student, retired, other": 1,
        "back_pain: not one of: none, occasional, frequent": 1,
        "exercise_types: not one of: walking, running, cycling, swimming, weightlifting, yoga, pilates, "
        "team_sports, racket_sports, other, none": 1,
    })),
    "none mixed with other exercise": (csv_bytes([
        good_row("a", exercise_types="None|walking"),
        good_row("ok", exercise_types="none"),
    ]), Quarantined(1, {"exercise_types: 'none' only alone": 1})),
    "duplicate ids": (csv_bytes([
        good_row("twice", submitted_at="2025-01-02"),
        good_row("twice", submitted_at="2025-01-02T00:00:00Z"),
        good_row("once"),
    ]), Refused("'twice'", "respondent_id")),
    "empty file": (b"", Refused("file is empty")),
    "header only": (",".join(FULL_ANSWERS).encode() + b"\r\n", Quarantined(0)),
    "binary garbage": (_garbage(), Refused("cannot be read")),
    "non-UTF-8 bytes": (csv_bytes([good_row("a", occupation="other")]).replace(b"other", "caf\u00e9".encode("latin-1")),
                        Refused("cannot be read")),
    "future date": (csv_bytes([
        good_row("a", submitted_at="2030-01-01"),
        good_row("b", submitted_at="2025-06-01T13:00:00+02:00"),  # 11:00 UTC, before NOW
    ]), Quarantined(1, {"submitted_at: in the future": 1})),
    "sitting plus standing over 24": (csv_bytes([
        good_row("a", sitting_hours_per_day="16", standing_hours_per_day="9"),
        good_row("ok", sitting_hours_per_day="16", standing_hours_per_day="8"),
    ]), Quarantined(1, {"sitting_hours_per_day + standing_hours_per_day: sitting + standing must be <= 24": 1})),
    "missing required value": (csv_bytes([good_row("a", sex=""), good_row("", age="")]), Quarantined(0, {
        "sex: missing required value": 1, "respondent_id: missing required value": 1, "age: missing required value": 1,
    })),
    "bad respondent id": (csv_bytes([good_row("has space"), good_row("x" * 65), good_row("ok.id-1_")]),
                          Quarantined(1, {"respondent_id: must be 1-64 characters of A-Z a-z 0-9 _ . -": 2})),
    "survey weight missing or not positive": (csv_bytes([
        good_row("a", survey_weight="", survey_stratum="s1", survey_psu="1"),
        good_row("b", survey_weight="0", survey_stratum="s1", survey_psu="1"),
        good_row("ok", survey_weight="1234.5", survey_stratum="s1", survey_psu="1"),
    ]), Quarantined(1, {"survey_weight: missing required value": 1, "survey_weight: must be > 0": 1})),
}


ACTIVITY_HEADER = ("respondent_id", "date", "steps", "sedentary_minutes", "lightly_active_minutes",
                   "fairly_active_minutes", "very_active_minutes", "calories")


def activity_day(respondent_id: str, date: str, steps: str = "8000", sedentary: str = "700", light: str = "200",
                 fairly: str = "20", very: str = "10", calories: str = "2100") -> dict[str, str]:
    return dict(zip(ACTIVITY_HEADER, (respondent_id, date, steps, sedentary, light, fairly, very, calories)))


BAD_ACTIVITY: dict[str, tuple[bytes, Refused | Quarantined]] = {
    "missing required column": (csv_bytes(pd.DataFrame([activity_day("a", "2025-01-01")]).drop(columns="steps")),
                                Refused("missing required column 'steps'", "steps")),
    "duplicate days": (csv_bytes([activity_day("a", "2025-01-01"), activity_day("a", "2025-01-01", steps="1")]),
                       Refused("'a'", "respondent_id")),
    "counts and minutes": (csv_bytes([
        activity_day("ok", "2025-01-01"),
        activity_day("a", "2025-01-02", steps="-5"),
        activity_day("a", "2025-01-03", steps="10.5"),
        activity_day("a", "2025-01-04", sedentary="1500"),
        activity_day("a", "2025-01-05", sedentary="1000", light="400", fairly="30", very="20"),
        activity_day("a", "2025-01-06", calories=""),
    ]), Quarantined(2, {
        "steps: must be >= 0": 1, "steps: not a whole number": 1, "sedentary_minutes: must be between 0 and 1440": 1,
        "sedentary_minutes + lightly_active_minutes + fairly_active_minutes + very_active_minutes: "
        "minutes must add up to <= 1440": 2,
    })),
    "dates": (csv_bytes([
        activity_day("a", "2025-05-31"), activity_day("a", "2025-06-02"), activity_day("a", "5/31/2025"),
    ]), Quarantined(1, {"date: in the future": 1, "date: not a date": 1})),
}
