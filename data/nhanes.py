"""NHANES continuous cycles 2007-2020 as questionnaire rows (contract section 3), validated like any user
file; answers NHANES does not ask stay missing rather than guessed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from balanceit.data.contract import QUESTIONNAIRE_SPECS as SPECS
from balanceit.data.readers import TEXT, FileRefused
from balanceit.data.validation import Validated, validate_questionnaire


@dataclass(frozen=True)
class Cycle:
    ends: str  # the cycle's last interview date, used as submitted_at
    weight: str  # the interview weight column of DEMO


# Two-year cycles E (2007-08) to J (2017-18); P is the 2017-March 2020 pre-pandemic file.
CYCLES = {letter: Cycle(f"{year}-12-31", "WTINT2YR") for letter, year in zip("EFGHIJ", range(2008, 2019, 2))}
CYCLES["P"] = Cycle("2020-03-31", "WTINTPRP")
REQUIRED_COMPONENTS = ("DEMO", "PAQ")
COMPONENTS = (*REQUIRED_COMPONENTS, "BMX")
DEMO_COLUMNS = ("SEQN", "RIDAGEYR", "RIAGENDR", "SDMVSTRA", "SDMVPSU")
BMX_COLUMNS = ("SEQN", "BMXHT", "BMXWT")
# PAQ answers by code width: refused / don't know are 7 / 9 in one digit, 77 / 99 in two, 7777 / 9999 in four.
PAQ_ANSWER_WIDTHS = {
    "PAQ635": 1, "PAQ650": 1, "PAQ665": 1,  # walk or bicycle; vigorous, moderate recreation (1 yes, 2 no)
    "PAQ655": 2, "PAQ670": 2,  # days a week of vigorous, moderate recreation
    "PAD660": 4, "PAD675": 4,  # minutes a day of vigorous, moderate recreation
    "PAD680": 4,  # minutes sedentary a day
}
YES, NO = 1, 2
SEX = {1: "male", 2: "female"}
SAS_ZERO = 1e-10  # read_sas returns SAS zeros as ~5e-79
MIN_AGE = int(SPECS["age"].low)  # respondents under it are skipped and counted
MAX_DAYS_A_WEEK = SPECS["exercise_days_per_week"].high


def load_nhanes(folder: str | Path, now: pd.Timestamp | None = None, not_asked: Sequence[str] = ()) -> Validated:
    """One NHANES cycle's DEMO + PAQ (+ BMX) as validated questionnaire rows (`row_number`: position in DEMO);
    respondents under 16 or without a PAQ record are counted in `skipped`, so rows_read + skipped = DEMO rows."""
    files, letter = _find_files(Path(folder))
    demo = _read_xpt(files["DEMO"], (*DEMO_COLUMNS, CYCLES[letter].weight))
    paq = _read_xpt(files["PAQ"], ("SEQN", *PAQ_ANSWER_WIDTHS))
    for column, width in PAQ_ANSWER_WIDTHS.items():
        paq[column] = paq[column].mask(paq[column].isin((int("7" * width), int("9" * width))))
    bmx = (_read_xpt(files["BMX"], BMX_COLUMNS) if "BMX" in files
           else pd.DataFrame(columns=BMX_COLUMNS, dtype=float))
    joined = demo.merge(paq, on="SEQN", how="left", indicator="in_paq").merge(bmx, on="SEQN", how="left")

    too_young = joined["RIDAGEYR"] < MIN_AGE
    no_paq = ~too_young & (joined["in_paq"] == "left_only")
    kept = joined[~too_young & ~no_paq]
    validated = validate_questionnaire(_as_questionnaire(kept, letter), str(folder), now, not_asked)
    skipped = {f"under {MIN_AGE}": int(too_young.sum()), "no PAQ record": int(no_paq.sum())}
    return replace(validated, skipped=skipped)


def _as_questionnaire(nhanes: pd.DataFrame, letter: str) -> pd.DataFrame:
    """NHANES variables -> contract columns; the frame keeps DEMO positions as its index."""
    walks, vigorous, moderate = nhanes["PAQ635"], nhanes["PAQ650"], nhanes["PAQ665"]
    recreation = (vigorous == YES) | (moderate == YES)
    all_answered = walks.notna() & vigorous.notna() & moderate.notna()
    exercise_types = np.select([~all_answered, (walks == YES) & recreation, walks == YES, recreation],
                               [None, "other;walking", "walking", "other"], default="none")
    days = _larger(_if_done(vigorous, nhanes["PAQ655"]), _if_done(moderate, nhanes["PAQ670"]))
    minutes = _larger(_if_done(vigorous, nhanes["PAD660"]), _if_done(moderate, nhanes["PAD675"]))
    return pd.DataFrame({
        "respondent_id": f"nhanes-{letter}-" + nhanes["SEQN"].astype("int64").astype(str),
        "submitted_at": CYCLES[letter].ends,
        "age": nhanes["RIDAGEYR"], "sex": nhanes["RIAGENDR"].map(SEX),
        "height_cm": nhanes["BMXHT"], "weight_kg": nhanes["BMXWT"],
        "sitting_hours_per_day": nhanes["PAD680"] / 60,
        "exercise_types": exercise_types,
        "exercise_days_per_week": days.clip(upper=MAX_DAYS_A_WEEK),
        "exercise_minutes_per_session": minutes,
        "survey_weight": nhanes[CYCLES[letter].weight],
        "survey_stratum": _as_code(nhanes["SDMVSTRA"]), "survey_psu": _as_code(nhanes["SDMVPSU"]),
    }, index=nhanes.index)


def _if_done(done: pd.Series, amount: pd.Series) -> pd.Series:
    """The amount when the activity is done, zero when it is not, unknown when the answer is."""
    return amount.where(done == YES, 0.0).where(done.isin((YES, NO)))


def _larger(vigorous: pd.Series, moderate: pd.Series) -> pd.Series:
    """The larger of the vigorous and moderate amounts; unknown if either is, as the larger then is too."""
    return pd.concat([vigorous, moderate], axis=1).max(axis=1, skipna=False)


def _as_code(values: pd.Series) -> pd.Series:
    """Design codes as text: 148.0 -> "148"."""
    return values.round().astype("Int64").astype(TEXT)


def _find_files(folder: Path) -> tuple[dict[str, Path], str]:
    """DEMO, PAQ and BMX files of one cycle, by name (`DEMO_J.XPT`, `P_DEMO.xpt`, any case)."""
    if not folder.is_dir():
        raise FileRefused(str(folder), "not a folder")
    files: dict[str, Path] = {}
    letters = set()
    for path in sorted(folder.iterdir()):
        first, _, second = path.stem.upper().partition("_")
        component, letter = (second, first) if first == "P" else (first, second)
        if path.suffix.lower() != ".xpt" or component not in COMPONENTS or letter not in CYCLES:
            continue
        if component in files:
            raise FileRefused(str(folder), f"more than one {component} file: {files[component].name}, {path.name}")
        files[component] = path
        letters.add(letter)
    missing = [component for component in REQUIRED_COMPONENTS if component not in files]
    if missing:
        raise FileRefused(str(folder), f"no {missing[0]} file (named like {missing[0]}_J.XPT or P_{missing[0]}.xpt)")
    if len(letters) > 1:
        raise FileRefused(str(folder), f"files from different cycles: {', '.join(sorted(letters))}")
    return files, letters.pop()


def _read_xpt(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """The needed columns of a SAS transport file, with SAS's near-zero values made zero."""
    try:
        frame = pd.read_sas(path, format="xport", encoding=None)
    except (OSError, ValueError, UnicodeError) as error:
        raise FileRefused(str(path), f"cannot be read as SAS transport: {error}") from error
    frame.columns = frame.columns.str.upper()
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise FileRefused(str(path), f"missing required column '{missing[0]}'", missing[0])
    if frame["SEQN"].duplicated().any():
        raise FileRefused(str(path), "a respondent (SEQN) appears more than once", "SEQN")
    needed = frame[list(columns)]
    return needed.mask(needed.abs() < SAS_ZERO, 0.0)
