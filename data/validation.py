"""Validate questionnaire and activity files against the input contract (sections 1, 2 and 4).

Text is parsed to types once, vectorised; every rule is a pandera check over the typed frame, built
from the contract's ColumnSpec list. Each failure becomes a quarantine row that names the row, the
column and the rule in plain words; the other rows go on. A missing required column, or a key that
repeats, refuses the whole file.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial, reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from balanceit.data.contract import (
    ACTIVITY,
    ACTIVITY_COLUMNS,
    ACTIVITY_KEY,
    CHOICE_JOINER,
    EXERCISE_SEPARATORS,
    FALSE_SPELLINGS,
    FITBIT_DAILY_ACTIVITY,
    MINUTES_PER_DAY,
    QUESTIONNAIRE,
    QUESTIONNAIRE_KEY,
    RESPONDENT_ID_PATTERN,
    TRUE_SPELLINGS,
    ColumnSpec,
    ColumnType,
    is_non_wear_day,
)
from balanceit.data.readers import TEXT, FileRefused, normalise_column_names, read_table, system_allocator

__all__ = [
    "FileRefused", "Validated", "validate_questionnaire", "validate_activity",
    "load_questionnaire", "load_activity",
]

MISSING_REQUIRED = "missing required value"
SPACE = ord(" ")
ALONE_ONLY = "none"  # contract: the exercise answer `none` only alone
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
FITBIT_DATE = "%m/%d/%Y"
ISO_DATE = "%Y-%m-%d"
# Text rules by column; other text columns only need 1-64 characters (survey stratum and PSU).
TEXT_RULES = {"respondent_id": (RESPONDENT_ID_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 _ . -")}
ANY_TEXT_RULE = (r"^.{1,64}$", "must be 1-64 characters")
UNPARSEABLE_RULES: dict[ColumnType, str] = {
    "number": "not a number",
    "integer": "not a number",
    "datetime": "not a date",
    "date": "not a date",
    "boolean": "not yes/no",
}
# Integers are checked as numbers, then stored whole; times get one unit whatever the parser chose.
CANONICAL_DTYPES: dict[ColumnType, str] = {"integer": "Int64", "datetime": "datetime64[us]", "date": "datetime64[us]"}
FAILURE_COLUMNS = ("column", "check", "index")
DIRECT_CHECK_ROWS = 100  # up to this many rows, checks run without pandera's bookkeeping (see _failed_checks)
QUARANTINE_DTYPES = {"row_number": "int64", "column": TEXT, "rule": TEXT, "raw_value": TEXT}


@dataclass
class Validated:
    """One file's outcome: accepted rows in canonical form, and every broken rule with its row."""

    kind: str
    source: str
    rows_read: int
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_rows(self) -> int:
        return int(self.quarantined["row_number"].nunique())

    def reasons(self) -> dict[str, int]:
        """Quarantined rows per "column: rule", the most frequent first."""
        reason = self.quarantined["column"] + ": " + self.quarantined["rule"]
        rows = self.quarantined.assign(reason=reason).groupby("reason")["row_number"].nunique()
        return {str(key): int(count) for key, count in sorted(rows.items(), key=lambda item: (-item[1], item[0]))}


@dataclass(frozen=True)
class RowRule:
    """A limit on the sum of several columns of one row (sitting + standing, minutes in a day)."""

    columns: tuple[str, ...]
    most: float
    rule: str

    @property
    def label(self) -> str:
        return " + ".join(self.columns)


@dataclass(frozen=True)
class FileKind:
    """What one kind of file must hold: its columns, the key that may not repeat, and its row rules."""

    name: str
    specs: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    row_rules: tuple[RowRule, ...]


DAY_MINUTES_COLUMNS = tuple(spec.name for spec in ACTIVITY if spec.name.endswith("_minutes"))
QUESTIONNAIRE_KIND = FileKind("questionnaire", QUESTIONNAIRE, QUESTIONNAIRE_KEY, (
    RowRule(("sitting_hours_per_day", "standing_hours_per_day"), 24, "sitting + standing must be <= 24"),
))
ACTIVITY_KIND = FileKind("activity", ACTIVITY, ACTIVITY_KEY, (
    RowRule(DAY_MINUTES_COLUMNS, MINUTES_PER_DAY, f"minutes must add up to <= {MINUTES_PER_DAY}"),
))
FITBIT_ONLY_COLUMNS = frozenset(FITBIT_DAILY_ACTIVITY) - frozenset(ACTIVITY_COLUMNS)


def load_questionnaire(path: str | Path, now: pd.Timestamp | None = None) -> Validated:
    with system_allocator():
        return validate_questionnaire(read_table(path), str(path), now)


def load_activity(path: str | Path, now: pd.Timestamp | None = None) -> Validated:
    with system_allocator():
        return validate_activity(read_table(path), str(path), now)


def validate_questionnaire(raw: pd.DataFrame, source: str, now: pd.Timestamp | None = None) -> Validated:
    """Questionnaire rows (contract section 1). `row_number` is the frame's index + 1."""
    return _validate(raw, source, now, QUESTIONNAIRE_KIND)


def validate_activity(raw: pd.DataFrame, source: str, now: pd.Timestamp | None = None) -> Validated:
    """Daily activity (contract section 2), canonical or the Fitbit export as it is; adds `worn`."""
    raw = normalise_column_names(raw, source)
    if "respondent_id" not in raw.columns and FITBIT_ONLY_COLUMNS & set(raw.columns):
        raw = _from_fitbit(raw, source)
    validated = _validate(raw, source, now, ACTIVITY_KIND)
    accepted = validated.accepted
    worn = ~is_non_wear_day(accepted["steps"], accepted["sedentary_minutes"]).astype(bool)
    accepted.insert(len(ACTIVITY_COLUMNS), "worn", worn)
    return validated


def _from_fitbit(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rename the Fitbit export's columns and rewrite its M/D/YYYY dates as ISO dates.

    A date that does not parse is left as written, so it is quarantined showing the user's text.
    """
    renamed = normalise_column_names(raw.rename(columns=FITBIT_DAILY_ACTIVITY), source)
    if "date" in renamed.columns:
        dates = pd.to_datetime(renamed["date"].str.strip(), format=FITBIT_DATE, errors="coerce")
        renamed["date"] = dates.dt.strftime(ISO_DATE).astype(TEXT).fillna(renamed["date"])
    return renamed


def _validate(raw: pd.DataFrame, source: str, now: pd.Timestamp | None, kind: FileKind) -> Validated:
    raw = normalise_column_names(raw, source)
    _refuse_missing_columns(raw, kind.specs, source)
    row_numbers = np.asarray(raw.index, dtype="int64") + 1
    raw = raw.reset_index(drop=True)
    text = _contract_text(raw, kind.specs)
    # copy=False: pandas would copy every parsed column (~0.15 s per million answers); they are new,
    # and copy-on-write keeps a column shared with `text` from changing through either frame.
    typed = pd.DataFrame({spec.name: PARSERS[spec.type](text[spec.name]) for spec in kind.specs}, copy=False)
    _refuse_repeated_keys(typed, kind.key, source)

    failures = _failed_checks(Checks.of(kind, text, set(raw.columns), _utc_naive(now)), typed)
    quarantined = _quarantine(failures, text, kind, row_numbers)

    broken = np.zeros(len(raw), dtype=bool)
    broken[failures["index"].to_numpy(dtype="int64")] = True
    extras = [name for name in raw.columns if name not in text.columns]
    accepted = _canonical(typed[~broken], raw.loc[~broken, extras], kind.specs, row_numbers[~broken])
    return Validated(kind.name, source, len(raw), accepted, quarantined)


def _failed_checks(checks: Checks, typed: pd.DataFrame) -> pd.DataFrame:
    """Every failed check as pandera reports it: `column`, `check` (its rule) and `index` (position).

    Files go through the pandera schema. A request of a few rows calls the same checks' functions
    directly, with pandera's null handling: pandera's bookkeeping per check costs more than the data.
    """
    if len(typed) > DIRECT_CHECK_ROWS:
        try:
            checks.schema().validate(typed, lazy=True, inplace=True)
        except SchemaErrors as errors:
            return errors.failure_cases[list(FAILURE_COLUMNS)]
        return pd.DataFrame(columns=list(FAILURE_COLUMNS))
    failed = [
        (name, check.error, position)
        for name, column_checks in checks.columns.items() for check in column_checks
        for position in _failing_positions(check, typed[name])
    ]
    failed += [(None, check.error, position) for check in checks.rows for position in _failing_positions(check, typed)]
    return pd.DataFrame(failed, columns=list(FAILURE_COLUMNS))


def _failing_positions(check: pa.Check, data: pd.Series | pd.DataFrame) -> np.ndarray:
    """Where one check fails, skipping what pandera skips under `ignore_na`: a missing value in a
    column, a row missing every value in a frame. The checks are element-wise, so a missing value's
    own result (missing too) is simply not looked at."""
    passed = check._check_fn(data).to_numpy(dtype=bool, na_value=True)
    if check.ignore_na:
        skipped = data.isna() if isinstance(data, pd.Series) else data.isna().all(axis="columns")
        passed = passed | skipped.to_numpy()
    return np.flatnonzero(~passed)


def _refuse_missing_columns(raw: pd.DataFrame, specs: tuple[ColumnSpec, ...], source: str) -> None:
    missing = [spec.name for spec in specs if spec.required and spec.name not in raw.columns]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise FileRefused(source, f"missing required column{'s' if len(missing) > 1 else ''} {names}", missing[0])


def _refuse_repeated_keys(typed: pd.DataFrame, key: tuple[str, ...], source: str, shown: int = 5) -> None:
    keys = _rows_sharing_times(typed[list(key)].dropna())
    ids = keys.loc[keys.duplicated(keep=False), key[0]].unique()
    if len(ids):
        listed = ", ".join(f"'{value}'" for value in ids[:shown]) + (", ..." if len(ids) > shown else "")
        problem = f"the same ({', '.join(key)}) appears more than once, for {len(ids)} ids: {listed}"
        raise FileRefused(source, problem, key[0])


def _rows_sharing_times(keys: pd.DataFrame) -> pd.DataFrame:
    """The rows whose key can repeat, in file order: a key repeats only where its times repeat too.

    Times hash several times faster than text ids; answers timed to the second are nearly all
    distinct, so only the few rows that share a time need their whole key compared (~250 -> ~70 ms
    per million answers). Dates mostly repeat: then every row is kept, after ~7 ms per million.
    """
    times = keys.select_dtypes("datetime")
    if times.columns.empty:
        return keys
    shared = times.duplicated(keep=False).to_numpy()
    return keys[shared] if shared.sum() < len(keys) / 2 else keys


def _contract_text(raw: pd.DataFrame, specs: tuple[ColumnSpec, ...]) -> pd.DataFrame:
    """The contract's columns as trimmed text, blank -> missing; an absent optional column is all missing."""
    absent = pd.Series(pd.NA, index=raw.index, dtype=TEXT)
    columns = {spec.name: _trimmed(raw[spec.name]) if spec.name in raw else absent for spec in specs}
    return pd.DataFrame(columns, copy=False)


def _trimmed(column: pd.Series) -> pd.Series:
    """Trimmed text with blanks as missing, copied only when some value needs it (large files stay small)."""
    text = column.astype(TEXT)
    values = arrow.array(text, type=arrow.large_string())
    if not _may_need_trimming(values):
        return text
    # Trimming and comparing lengths is ~4x faster than a whitespace regex on a million values.
    length, trimmed_length = pc.binary_length(values), pc.binary_length(pc.utf8_trim_whitespace(values))
    if pc.any(pc.or_(pc.not_equal(length, trimmed_length), pc.equal(trimmed_length, 0))).as_py():
        return text.str.strip().replace("", pd.NA)
    return text


def _may_need_trimming(values: arrow.Array | arrow.ChunkedArray) -> bool:
    """False when no value is blank or begins or ends with a space, a control character or a byte of a
    multi-byte character (which may be a Unicode space): only then can trimming change nothing.

    It reads each value's first and last byte in place, ~3x cheaper than trimming a copy of the
    column; the columns it cannot clear get the exact test. ASCII whitespace is all at or below ' '.
    """
    array = values.combine_chunks() if isinstance(values, arrow.ChunkedArray) else values
    if array.null_count == len(array):
        return False
    _, offset_buffer, data_buffer = array.buffers()
    if data_buffer is None or data_buffer.size == 0:  # every present value is ""
        return True
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    first, last = data.take(offsets[:-1], mode="clip"), data.take(offsets[1:] - 1, mode="clip")
    suspect = (offsets[1:] == offsets[:-1]) | (first <= SPACE) | (first >= 0x80) | (last <= SPACE) | (last >= 0x80)
    if array.null_count:
        suspect &= array.is_valid().to_numpy(zero_copy_only=False)
    return bool(suspect.any())


def _per_distinct(values: pd.Series, function: Callable[[str], object], dtype: str) -> pd.Series:
    """Apply `function` once per distinct answer and spread the results: answers repeat, rows are many.

    The results are typed before they are spread (a missing answer's code -1 becomes missing), 2-3x
    faster than converting a million-row object array to `dtype`.
    """
    codes, distinct = pd.factorize(values)
    results = pd.array([function(value) for value in distinct], dtype=dtype)
    return pd.Series(results.take(codes, allow_fill=True), index=values.index)


def _normalise_choices(answer: str) -> str:
    """' Running|walking' -> 'running;walking': lowercase, sorted, each choice once."""
    choices = {choice.strip().lower() for choice in re.split(EXERCISE_SEPARATORS, answer)}
    return CHOICE_JOINER.join(sorted(choices - {""}))


def _to_number(text: pd.Series) -> pd.Series:
    """Finite decimal numbers as written (`12`, `-0.5`, `1e3`); Arrow parses them, several times faster than pandas."""
    values = arrow.array(text, type=arrow.large_string())
    try:  # the common case, a clean column: one cast, no pattern match
        parsed = pc.cast(values, arrow.float64())
        clean = pc.all(pc.is_finite(parsed)).as_py()
    except arrow.ArrowInvalid:
        clean = False
    if not clean:
        numeric = pc.match_substring_regex(values, NUMBER_PATTERN)
        parsed = pc.cast(pc.if_else(numeric, values, arrow.scalar(None, arrow.large_string())), arrow.float64())
        parsed = pc.if_else(pc.is_finite(parsed), parsed, arrow.scalar(None, arrow.float64()))  # `1e999` is inf
    return pd.Series(pd.array(parsed, dtype="Float64"), index=text.index)


def _to_boolean(text: pd.Series) -> pd.Series:
    lower = text.str.lower()
    true, false = lower.isin(TRUE_SPELLINGS).to_numpy(bool), lower.isin(FALSE_SPELLINGS).to_numpy(bool)
    return pd.Series(pd.arrays.BooleanArray(true, ~(true | false)), index=text.index)


def _to_utc_naive(text: pd.Series) -> pd.Series:
    """Dates and ISO-8601 datetimes; a time with an offset is converted to UTC, then the zone dropped.

    Arrow reads the forms without a zone (a date, then hours, minutes, seconds, up to microseconds)
    ~3x faster than pandas and agrees with it on them; a column with anything else (an offset,
    nanoseconds, a date that does not exist) goes to pandas, which also makes the unreadable missing.
    """
    return _times_by_arrow_or(text, arrow.timestamp("us"), lambda text: pd.to_datetime(
        text, format="ISO8601", utc=True, errors="coerce").dt.tz_convert(None))


def _to_date(text: pd.Series) -> pd.Series:
    """ISO dates. Arrow reads `2025-01-31` ~10x faster than pandas and agrees with it; a column with any
    other spelling (`2025-1-31`, which pandas reads too) or a date that does not exist goes to pandas."""
    return _times_by_arrow_or(text, arrow.date32(), lambda text: pd.to_datetime(
        text, format=ISO_DATE, errors="coerce"))


def _times_by_arrow_or(text: pd.Series, arrow_type: arrow.DataType,
                       pandas_parse: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Microsecond times, when Arrow can cast every value to `arrow_type`; else `pandas_parse(text)`."""
    try:
        parsed = pc.cast(arrow.array(text, type=arrow.large_string()), arrow_type)
    except arrow.ArrowInvalid:
        return pandas_parse(text)
    return pd.Series(pc.cast(parsed, arrow.timestamp("us")).to_numpy(zero_copy_only=False), index=text.index)


PARSERS: dict[ColumnType, Callable[[pd.Series], pd.Series]] = {
    "text": lambda text: text,
    "category": lambda text: text.str.lower(),
    "multi": lambda text: _per_distinct(text, _normalise_choices, TEXT),
    "number": _to_number,
    "integer": _to_number,  # a whole-number check follows; cast to Int64 once accepted
    "boolean": _to_boolean,
    "datetime": _to_utc_naive,
    "date": _to_date,
}


def _utc_naive(now: pd.Timestamp | None) -> pd.Timestamp:
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return now.tz_convert("UTC").tz_localize(None) if now.tzinfo else now


@dataclass(frozen=True)
class Checks:
    """One file's pandera checks: per contract column, and over whole rows."""

    columns: dict[str, list[pa.Check]]
    rows: list[pa.Check]

    @classmethod
    def of(cls, kind: FileKind, text: pd.DataFrame, present: set[str], now: pd.Timestamp) -> Checks:
        columns = {spec.name: _column_checks(spec, text[spec.name], spec.name in present, now) for spec in kind.specs}
        rows = [
            pa.Check(lambda frame, rule=rule: frame[list(rule.columns)].sum(axis=1) <= rule.most, error=rule.rule)
            for rule in kind.row_rules
        ]
        return cls(columns, rows)

    def schema(self) -> pa.DataFrameSchema:
        columns = {name: pa.Column(checks=checks, nullable=True) for name, checks in self.columns.items()}
        return pa.DataFrameSchema(columns, checks=self.rows)


def _column_checks(spec: ColumnSpec, text: pd.Series, present: bool, now: pd.Timestamp) -> list[pa.Check]:
    """The contract's rules for one column, each a pandera check named by its rule in plain words."""
    checks = []
    if spec.required or (spec.required_if_present and present):
        checks.append(pa.Check(lambda _: text.notna(), error=MISSING_REQUIRED, ignore_na=False))
    if spec.type in UNPARSEABLE_RULES:
        unparseable = UNPARSEABLE_RULES[spec.type]
        checks.append(pa.Check(lambda typed: typed.notna() | text.isna(), error=unparseable, ignore_na=False))
    if spec.type == "integer":
        checks.append(pa.Check(lambda number: (number % 1 == 0) & (number.abs() <= 2**53), error="not a whole number"))
    if spec.low is not None or spec.high is not None:
        checks.append(_range_check(spec))
    if spec.type == "category":
        allowed = list(spec.allowed)
        checks.append(pa.Check(lambda answers: answers.isin(allowed), error=f"not one of: {', '.join(spec.allowed)}"))
    if spec.type == "multi":
        each_allowed = partial(_each_choice_allowed, allowed=frozenset(spec.allowed))
        checks += [
            pa.Check(lambda answers: _per_distinct(answers, each_allowed, "boolean"),
                     error=f"not one of: {', '.join(spec.allowed)}"),
            pa.Check(lambda answers: _per_distinct(answers, _alone_if_chosen, "boolean"),
                     error=f"'{ALONE_ONLY}' only alone"),
        ]
    if spec.type == "text":
        pattern, rule = TEXT_RULES.get(spec.name, ANY_TEXT_RULE)
        checks.append(pa.Check(lambda answers: answers.str.match(pattern), error=rule))
    if spec.type in ("datetime", "date"):
        latest = now if spec.type == "datetime" else now.normalize()
        checks.append(pa.Check(lambda moments: moments <= latest, error="in the future"))
    return checks


def _each_choice_allowed(answer: str, allowed: frozenset[str]) -> bool:
    return set(answer.split(CHOICE_JOINER)) <= allowed


def _alone_if_chosen(answer: str) -> bool:
    return answer == ALONE_ONLY or ALONE_ONLY not in answer.split(CHOICE_JOINER)


def _range_check(spec: ColumnSpec) -> pa.Check:
    low = -np.inf if spec.low is None else spec.low
    high = np.inf if spec.high is None else spec.high
    above_low = operator.gt if spec.low_exclusive else operator.ge
    return pa.Check(lambda number: above_low(number, low) & (number <= high), error=_range_rule(spec))


def _range_rule(spec: ColumnSpec) -> str:
    if spec.low is not None and spec.high is not None and not spec.low_exclusive:
        return f"must be between {spec.low:g} and {spec.high:g}"
    bounds = []
    if spec.low is not None:
        bounds.append(f"{'>' if spec.low_exclusive else '>='} {spec.low:g}")
    if spec.high is not None:
        bounds.append(f"<= {spec.high:g}")
    return "must be " + " and ".join(bounds)


def _quarantine(failures: pd.DataFrame, text: pd.DataFrame, kind: FileKind, row_numbers: np.ndarray) -> pd.DataFrame:
    """One row per broken rule: row number, column (or columns, for a row rule), rule, the value as written."""
    if failures.empty:
        return pd.DataFrame(columns=list(QUARANTINE_DTYPES)).astype(QUARANTINE_DTYPES)
    row_rules = {rule.rule: rule for rule in kind.row_rules}
    # pandera reports a row rule once per column of the row; keep it once, under the rule's columns
    labels = failures["check"].map({name: rule.label for name, rule in row_rules.items()})
    failures = failures.assign(column=labels.fillna(failures["column"])).drop_duplicates(["column", "check", "index"])
    pieces = []
    for (label, rule), group in failures.groupby(["column", "check"], sort=False):
        positions = group["index"].to_numpy(dtype="int64")
        columns = row_rules[rule].columns if rule in row_rules else (label,)
        cells = [text[name].iloc[positions].reset_index(drop=True) for name in columns]
        raw_value = cells[0] if len(cells) == 1 else reduce(lambda a, b: a + " + " + b, [c.fillna("") for c in cells])
        pieces.append(pd.DataFrame(
            {"row_number": row_numbers[positions], "column": label, "rule": rule, "raw_value": raw_value}
        ))
    quarantined = pd.concat(pieces, ignore_index=True)
    return quarantined.astype(QUARANTINE_DTYPES).sort_values(["row_number", "column"], ignore_index=True)


def _canonical(
    typed: pd.DataFrame, extras: pd.DataFrame, specs: tuple[ColumnSpec, ...], row_numbers: np.ndarray
) -> pd.DataFrame:
    """Accepted rows: the contract's columns in order and dtype, then `row_number` and `extras` (JSON)."""
    accepted = typed.astype({spec.name: CANONICAL_DTYPES[spec.type] for spec in specs if spec.type in CANONICAL_DTYPES})
    accepted["row_number"] = row_numbers
    accepted["extras"] = _extras_json(extras)
    return accepted.reset_index(drop=True)


def _extras_json(extras: pd.DataFrame) -> pd.Series:
    """Columns the contract does not know, per row, as a JSON object; missing when a file has none."""
    if extras.columns.empty or extras.empty:
        return pd.Series(pd.NA, index=extras.index, dtype=TEXT)
    lines = extras.astype(TEXT).to_json(orient="records", lines=True).rstrip("\n").split("\n")
    return pd.Series(lines, index=extras.index, dtype=TEXT)
