"""Validate questionnaire and activity files against the input contract (sections 1, 2 and 4): each broken
rule is a quarantine row naming the row, the column and the rule in plain words, and the other rows go on.
A missing required column, or a key that repeats, refuses the whole file."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.compute as pc

from balanceit.config import Settings
from balanceit.data.contract import (
    ACTIVITY, ACTIVITY_COLUMNS, ACTIVITY_KEY, CHOICE_JOINER, EXERCISE_SEPARATORS, FALSE_SPELLINGS,
    FITBIT_DAILY_ACTIVITY, MINUTES_PER_DAY, QUESTIONNAIRE, QUESTIONNAIRE_KEY, RESPONDENT_ID_PATTERN, TRUE_SPELLINGS,
    ColumnSpec, ColumnType, is_non_wear_day,
)
from balanceit.data.readers import ARROW_TEXT, TEXT, FileRefused, normalise_column_names, read_table, system_allocator

MISSING_REQUIRED = "missing required value"
SPACE = ord(" ")
ALONE_ONLY = "none"  # contract: the exercise answer `none` only alone
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
FITBIT_DATE = "%m/%d/%Y"
ISO_DATE = "%Y-%m-%d"
# Text rules by column; other text columns only need 1-64 characters (survey stratum and PSU).
TEXT_RULES = {"respondent_id": (RESPONDENT_ID_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 _ . -")}
ANY_TEXT_RULE = (r"^.{1,64}$", "must be 1-64 characters")
UNPARSEABLE_RULES: dict[ColumnType, str] = {"number": "not a number", "integer": "not a number",
                                            "datetime": "not a date", "date": "not a date", "boolean": "not yes/no"}
MOMENT = arrow.timestamp("us")  # dates and times alike, whatever the parser chose
QUARANTINE_DTYPES = {"row_number": "int64", "column": TEXT, "rule": TEXT, "raw_value": TEXT}
NOTHING_QUARANTINED = pd.DataFrame(columns=list(QUARANTINE_DTYPES)).astype(QUARANTINE_DTYPES)


@dataclass
class Validated:
    """One file's outcome: accepted rows in canonical form, and every broken rule with its row."""

    rows_read: int
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_rows(self) -> int:
        return int(self.quarantined["row_number"].nunique())

    def _by_reason(self) -> pd.DataFrame:
        return self.quarantined.assign(reason=self.quarantined["column"] + ": " + self.quarantined["rule"])

    def reasons(self) -> dict[str, int]:
        """Quarantined rows per "column: rule", the most frequent first."""
        rows = self._by_reason().groupby("reason")["row_number"].nunique()
        return {str(key): int(count) for key, count in sorted(rows.items(), key=lambda item: (-item[1], item[0]))}

    def first_rows(self, limit: int = 3) -> dict[str, list[int]]:
        """The first `limit` row numbers quarantined per "column: rule", so a person can find them."""
        rows = self._by_reason().drop_duplicates(["reason", "row_number"]).sort_values("row_number")
        return {str(key): [int(n) for n in group.head(limit)]
                for key, group in rows.groupby("reason")["row_number"]}


@dataclass(frozen=True)
class RowRule:
    """A limit on the sum of several columns of one row (sitting + standing, minutes in a day): a `Rule`
    over all columns, named by its own."""

    columns: tuple[str, ...]
    most: float
    error: str
    skips_missing = True  # a row missing every value is not judged

    def holds(self, columns: Columns) -> Values:
        """A missing value counts as nothing."""
        total = reduce(pc.add, (pc.fill_null(columns[name], 0) for name in self.columns))
        return pc.less_equal(total, self.most)


@dataclass(frozen=True)
class FileKind:
    """What one kind of file must hold: its columns, the key that may not repeat, and its row rules."""

    specs: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    row_rules: tuple[RowRule, ...]


DAY_MINUTES_COLUMNS = tuple(spec.name for spec in ACTIVITY if spec.name.endswith("_minutes"))
QUESTIONNAIRE_KIND = FileKind(QUESTIONNAIRE, QUESTIONNAIRE_KEY, (
    RowRule(("sitting_hours_per_day", "standing_hours_per_day"), 24, "sitting + standing must be <= 24"),
))
ACTIVITY_KIND = FileKind(ACTIVITY, ACTIVITY_KEY, (
    RowRule(DAY_MINUTES_COLUMNS, MINUTES_PER_DAY, f"minutes must add up to <= {MINUTES_PER_DAY}"),
))
FITBIT_ONLY_COLUMNS = frozenset(FITBIT_DAILY_ACTIVITY) - frozenset(ACTIVITY_COLUMNS)


def load_questionnaire(path: str | Path, now: pd.Timestamp | None = None, not_asked: Sequence[str] = ()) -> Validated:
    with system_allocator():
        return validate_questionnaire(read_table(path), str(path), now, not_asked)


def load_activity(path: str | Path, now: pd.Timestamp | None = None) -> Validated:
    with system_allocator():
        return validate_activity(read_table(path), str(path), now)


def validate_questionnaire(raw: pd.DataFrame, source: str, now: pd.Timestamp | None = None,
                           not_asked: Sequence[str] = ()) -> Validated:
    """Questionnaire rows (contract section 1), `not_asked` columns dropped unread. `row_number` is the index + 1."""
    if not_asked:
        raw = normalise_column_names(raw, source).drop(columns=[*not_asked], errors="ignore")
    return _validate(raw, source, now, QUESTIONNAIRE_KIND)


def validate_activity(raw: pd.DataFrame, source: str, now: pd.Timestamp | None = None) -> Validated:
    """Daily activity (contract section 2), canonical or the Fitbit export as it is; adds `worn`."""
    raw = normalise_column_names(raw, source)
    if "respondent_id" not in raw.columns and FITBIT_ONLY_COLUMNS & set(raw.columns):
        # the Fitbit export renamed, M/D/YYYY dates as ISO; an unparseable date stays as written for quarantine
        raw = normalise_column_names(raw.rename(columns=FITBIT_DAILY_ACTIVITY), source)
        if "date" in raw.columns:
            dates = pd.to_datetime(raw["date"].str.strip(), format=FITBIT_DATE, errors="coerce")
            raw["date"] = dates.dt.strftime(ISO_DATE).astype(TEXT).fillna(raw["date"])
    validated = _validate(raw, source, now, ACTIVITY_KIND)
    accepted = validated.accepted
    worn = ~is_non_wear_day(accepted["steps"], accepted["sedentary_minutes"]).astype(bool)
    accepted.insert(len(ACTIVITY_COLUMNS), "worn", worn)
    return validated


def _validate(raw: pd.DataFrame, source: str, now: pd.Timestamp | None, kind: FileKind) -> Validated:
    raw = normalise_column_names(raw, source)
    missing = [spec.name for spec in kind.specs if spec.required and spec.name not in raw.columns]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise FileRefused(source, f"missing required column{'s' if len(missing) > 1 else ''} {names}", missing[0])
    row_numbers = np.asarray(raw.index, dtype="int64") + 1
    raw = raw.reset_index(drop=True)
    text = _contract_text(raw, kind.specs)
    typed = {spec.name: PARSERS[spec.type](text[spec.name]) for spec in kind.specs}
    _refuse_repeated_keys(typed, kind.key, source)

    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_convert("UTC").tz_localize(None) if now.tzinfo else now  # times are compared as naive UTC
    earliest = pd.Timestamp(Settings().earliest_submitted_at)
    failures = _failures(_file_rules(kind, text, set(raw.columns), now, earliest), typed)
    # emptying `typed`, each Arrow column is freed once pandas has its copy
    frame = pd.DataFrame({name: _pandas(typed.pop(name)) for name in list(typed)}, copy=False)
    quarantined = _quarantine(failures, text, row_numbers)

    kept = np.ones(len(raw), dtype=bool)
    kept[failures["index"].to_numpy(dtype="int64")] = False
    extras = raw[[name for name in raw.columns if name not in text]]
    accepted = _canonical(frame, kept, extras, kind.specs, row_numbers)
    return Validated(len(raw), accepted, quarantined)


# Column values while validating, as Arrow (text as large_string): microseconds on a one-row request where
# pandas costs tens, and as fast as pandas on a file.
Values = arrow.Array | arrow.ChunkedArray
Columns = dict[str, Values]


@dataclass(frozen=True)
class Rule:
    """One contract rule: `holds` says per row whether it is kept (missing: not judged), over one column's
    values or, for a row rule, over all columns."""

    error: str
    holds: Callable[[Values | Columns], Values]
    skips_missing: bool = True  # a missing value (a row missing every value) is not judged


def _file_rules(kind: FileKind, text: Columns, present: set[str], now: pd.Timestamp,
                earliest: pd.Timestamp) -> list[tuple[str, Rule | RowRule]]:
    """One file's rules, each with the column it judges (a row rule: its columns joined by " + ")."""
    rules = [(spec.name, rule) for spec in kind.specs
             for rule in _column_rules(spec, text[spec.name], spec.name in present, now, earliest)]
    return rules + [(" + ".join(rule.columns), rule) for rule in kind.row_rules]


def _arrow(series: pd.Series) -> Values:
    """A pandas column as Arrow values, with no copy where pandas holds Arrow; text as large_string."""
    values = arrow.array(series)
    return values.cast(ARROW_TEXT) if arrow.types.is_string(values.type) else values


def _failures(rules: list[tuple[str, Rule | RowRule]], typed: Columns) -> pd.DataFrame:
    """Every broken rule: `column` (see `_file_rules`), `check` (the rule in words), `index` (position)."""
    broken = [_breaking_positions(rule, typed if isinstance(rule, RowRule) else typed[column])
              for column, rule in rules]
    counts = [len(positions) for positions in broken]
    named = np.array([(column, rule.error) for column, rule in rules], dtype=object)
    return pd.DataFrame({"column": np.repeat(named[:, 0], counts), "check": np.repeat(named[:, 1], counts),
                         "index": np.concatenate(broken)})


def _breaking_positions(rule: Rule | RowRule, values: Values | Columns) -> np.ndarray:
    """Where `rule` is broken; with `skips_missing`, a row missing every value it reads is not judged."""
    held = pc.fill_null(rule.holds(values), True).to_numpy(zero_copy_only=False)
    if rule.skips_missing:
        columns = list(values.values()) if isinstance(values, dict) else [values]
        held = held | reduce(np.logical_and, (column.is_null().to_numpy(zero_copy_only=False) for column in columns))
    return np.flatnonzero(~held)


def _refuse_repeated_keys(typed: Columns, key: tuple[str, ...], source: str, shown: int = 5) -> None:
    if len(typed[key[0]]) < 2:
        return
    keys = pd.DataFrame({name: _pandas(typed[name]) for name in key}).dropna()
    # A key can repeat only where its time (both keys end in one) repeats too, and times hash several times
    # faster than text ids (~250 -> ~70 ms per million answers).
    shared = keys[key[-1]].duplicated(keep=False).to_numpy()
    keys = keys[shared] if shared.sum() < len(keys) / 2 else keys
    ids = keys.loc[keys.duplicated(keep=False), key[0]].unique()
    if len(ids):
        listed = ", ".join(f"'{value}'" for value in ids[:shown]) + (", ..." if len(ids) > shown else "")
        problem = f"the same ({', '.join(key)}) appears more than once, for {len(ids)} ids: {listed}"
        raise FileRefused(source, problem, key[0])


def _contract_text(raw: pd.DataFrame, specs: tuple[ColumnSpec, ...]) -> Columns:
    """The contract's columns as Arrow text as pandas writes it (40 -> "40", True -> "True"), trimmed, blank ->
    missing; an absent optional column is all missing. Non-text columns are converted in one call, since per
    column pandas costs more than a request's data."""
    frame = raw[[spec.name for spec in specs if spec.name in raw]]
    textual = [name for name, dtype in frame.dtypes.items() if dtype == TEXT]
    present = {name: _arrow(frame[name]) for name in textual}
    others = frame.drop(columns=textual)
    if not others.columns.empty:
        stacked = arrow.array(pd.array(others.to_numpy(dtype=object).T.ravel(), dtype=TEXT), type=ARROW_TEXT)
        present |= {name: stacked.slice(i * len(frame), len(frame)) for i, name in enumerate(others.columns)}
    absent = arrow.nulls(len(raw), ARROW_TEXT)
    return {spec.name: _trimmed(present[spec.name]) if spec.name in present else absent for spec in specs}


def _trimmed(values: Values) -> Values:
    """Trimmed text with blanks as missing, copied only when some value needs it (large files stay small)."""
    chunks = values.chunks if isinstance(values, arrow.ChunkedArray) else [values]
    if not any(_may_need_trimming(chunk) for chunk in chunks):
        return values
    # Trimming and comparing lengths is ~4x faster than a whitespace regex on a million values.
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(pc.binary_length(trimmed), 0), arrow.scalar(None, ARROW_TEXT), trimmed)


def _may_need_trimming(array: arrow.Array) -> bool:
    """False when no value is blank or starts or ends with a byte <= ' ' or >= 0x80 (maybe a Unicode space):
    reading those bytes in place is ~3x cheaper than trimming a copy of the column."""
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


def _per_distinct(values: Values, function: Callable[[str], object], arrow_type: arrow.DataType) -> Values:
    """Apply `function` once per distinct answer and spread the results: answers repeat, rows are many."""
    distinct = pc.unique(values).drop_null()
    results = arrow.array([function(value) for value in distinct.to_pylist()], type=arrow_type)
    return results.take(pc.index_in(values, value_set=distinct))


def _normalise_choices(answer: str) -> str:
    """' Running|walking' -> 'running;walking': lowercase, sorted, each choice once."""
    choices = {choice.strip().lower() for choice in re.split(EXERCISE_SEPARATORS, answer)}
    return CHOICE_JOINER.join(sorted(choices - {""}))


def _to_number(values: Values) -> Values:
    """Finite decimal numbers as written (`12`, `-0.5`, `1e3`); Arrow parses them, several times faster than pandas."""
    try:  # the common case, a clean column: one cast, no pattern match
        parsed = pc.cast(values, arrow.float64())
        clean = pc.all(pc.is_finite(parsed)).as_py() is not False
    except arrow.ArrowInvalid:
        clean = False
    if not clean:
        numeric = pc.match_substring_regex(values, NUMBER_PATTERN)
        parsed = pc.cast(pc.if_else(numeric, values, arrow.scalar(None, ARROW_TEXT)), arrow.float64())
        parsed = pc.if_else(pc.is_finite(parsed), parsed, arrow.scalar(None, arrow.float64()))  # `1e999` is inf
    return parsed


def _to_boolean(values: Values) -> Values:
    lower = pc.utf8_lower(values)
    true = pc.is_in(lower, value_set=arrow.array(sorted(TRUE_SPELLINGS), ARROW_TEXT))
    false = pc.is_in(lower, value_set=arrow.array(sorted(FALSE_SPELLINGS), ARROW_TEXT))
    return pc.if_else(pc.or_(true, false), true, arrow.scalar(None, arrow.bool_()))


def _iso_datetimes_as_utc(text: pd.Series) -> pd.Series:
    """Dates and ISO-8601 datetimes, an offset converted to UTC. Fractions of a second are cut to
    microseconds: one nanosecond would make pandas read the whole column in nanoseconds, which cannot hold
    another row's year 1 (to be judged too early, not unreadable)."""
    text = text.str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
    return pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").dt.tz_convert(None)


def _times_by_arrow_or(values: Values, arrow_type: arrow.DataType,
                       pandas_parse: Callable[[pd.Series], pd.Series]) -> Values:
    """Microsecond times, when Arrow can cast every value to `arrow_type`; else `pandas_parse` of the text.
    Arrow reads zoneless datetimes ~3x and ISO dates ~10x faster than pandas, which takes other spellings."""
    try:
        return pc.cast(pc.cast(values, arrow_type), MOMENT)
    except arrow.ArrowInvalid:
        parsed = pandas_parse(pd.Series(pd.array(values, dtype=TEXT)))
        return arrow.array(parsed.astype("datetime64[us]").to_numpy(), type=MOMENT, from_pandas=True)


PARSERS: dict[ColumnType, Callable[[Values], Values]] = {
    "text": lambda text: text,
    "category": pc.utf8_lower,
    "multi": lambda text: _per_distinct(text, _normalise_choices, ARROW_TEXT),
    "number": _to_number,
    "integer": _to_number,  # a whole-number rule follows; stored as Int64 once accepted
    "boolean": _to_boolean,
    "datetime": partial(_times_by_arrow_or, arrow_type=MOMENT, pandas_parse=_iso_datetimes_as_utc),
    "date": partial(_times_by_arrow_or, arrow_type=arrow.date32(),
                    pandas_parse=partial(pd.to_datetime, format=ISO_DATE, errors="coerce")),
}


def _column_rules(spec: ColumnSpec, text: Values, present: bool, now: pd.Timestamp,
                  earliest: pd.Timestamp) -> list[Rule]:
    """The contract's rules for one column, each named by its rule in plain words."""
    rules = []
    if spec.required or (spec.required_if_present and present):
        rules.append(Rule(MISSING_REQUIRED, lambda _: pc.is_valid(text), skips_missing=False))
    if spec.type in UNPARSEABLE_RULES:
        rules.append(Rule(UNPARSEABLE_RULES[spec.type], lambda typed: pc.or_(pc.is_valid(typed), pc.is_null(text)),
                          skips_missing=False))
    if spec.type == "integer":
        rules.append(Rule("not a whole number", lambda number: pc.and_(
            pc.equal(pc.trunc(number), number), pc.less_equal(pc.abs(number), 2.0**53))))
    if spec.low is not None or spec.high is not None:
        rules.append(_range_rule(spec))
    if spec.type == "category":
        allowed = arrow.array(spec.allowed, ARROW_TEXT)
        rules.append(Rule(f"not one of: {', '.join(spec.allowed)}", lambda answers: pc.is_in(answers, value_set=allowed)))
    if spec.type == "multi":
        choices = frozenset(spec.allowed)
        rules += [
            Rule(f"not one of: {', '.join(spec.allowed)}", lambda answers: _per_distinct(
                answers, lambda answer: set(answer.split(CHOICE_JOINER)) <= choices, arrow.bool_())),
            Rule(f"'{ALONE_ONLY}' only alone", lambda answers: _per_distinct(
                answers, lambda answer: answer == ALONE_ONLY or ALONE_ONLY not in answer.split(CHOICE_JOINER),
                arrow.bool_())),
        ]
    if spec.type == "text":
        pattern, rule = TEXT_RULES.get(spec.name, ANY_TEXT_RULE)
        rules.append(Rule(rule, lambda answers: pc.match_substring_regex(answers, pattern)))
    if spec.type in ("datetime", "date"):
        latest = arrow.scalar(now if spec.type == "datetime" else now.normalize(), MOMENT)
        rules.append(Rule("in the future", lambda moments: pc.less_equal(moments, latest)))
    if spec.type == "datetime":  # a submission time: year 1 or 1900 is a typo or a placeholder, not an answer
        first = arrow.scalar(earliest, MOMENT)
        rules.append(Rule(f"before {earliest:%Y-%m-%d}", lambda moments: pc.greater_equal(moments, first)))
    return rules


def _range_rule(spec: ColumnSpec) -> Rule:
    low = -np.inf if spec.low is None else spec.low
    high = np.inf if spec.high is None else spec.high
    above_low = pc.greater if spec.low_exclusive else pc.greater_equal
    if spec.low is not None and spec.high is not None and not spec.low_exclusive:
        words = f"must be between {spec.low:g} and {spec.high:g}"
    else:
        bounds = [f"{'>' if spec.low_exclusive else '>='} {spec.low:g}"] if spec.low is not None else []
        words = "must be " + " and ".join(bounds + ([f"<= {spec.high:g}"] if spec.high is not None else []))
    return Rule(words, lambda number: pc.and_(above_low(number, low), pc.less_equal(number, high)))


def _quarantine(failures: pd.DataFrame, text: Columns, row_numbers: np.ndarray) -> pd.DataFrame:
    """One row per broken rule: row number, column (or columns, for a row rule), rule, the value as written."""
    if failures.empty:
        return NOTHING_QUARANTINED.copy()
    pieces = []
    for (label, rule), group in failures.groupby(["column", "check"], sort=False):
        positions = group["index"].to_numpy(dtype="int64")
        cells = [pd.Series(_pandas(text[name].take(positions))) for name in label.split(" + ")]
        raw_value = cells[0] if len(cells) == 1 else reduce(lambda a, b: a + " + " + b, [c.fillna("") for c in cells])
        pieces.append(pd.DataFrame({"row_number": row_numbers[positions], "column": label, "rule": rule,
                                    "raw_value": raw_value}))
    quarantined = pd.concat(pieces, ignore_index=True)
    return quarantined.astype(QUARANTINE_DTYPES).sort_values(["row_number", "column"], ignore_index=True)


def _pandas(values: Values) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """One Arrow column as pandas holds it, built from its buffers (pandas' conversion costs several times more)."""
    if arrow.types.is_large_string(values.type):
        return pd.arrays.ArrowStringArray(values)
    if arrow.types.is_timestamp(values.type):
        return _writable(values)
    missing = _writable(values.is_null())
    if arrow.types.is_boolean(values.type):
        return pd.arrays.BooleanArray(_writable(values.fill_null(False)), missing)
    filled = _writable(values.fill_null(0))
    return (pd.arrays.IntegerArray if arrow.types.is_integer(values.type) else pd.arrays.FloatingArray)(filled, missing)


def _writable(values: Values) -> np.ndarray:
    """Arrow values as a NumPy array pandas may own and change; copied only when Arrow's buffer is shared."""
    array = values.to_numpy(zero_copy_only=False)
    return array if array.flags.writeable else array.copy()


def _canonical(frame: pd.DataFrame, kept: np.ndarray, extras: pd.DataFrame, specs: tuple[ColumnSpec, ...],
               row_numbers: np.ndarray) -> pd.DataFrame:
    """Accepted rows: the contract's columns in order and dtype, then `row_number` and `extras` (JSON)."""
    every_row = kept.all()
    accepted = frame if every_row else frame[kept].reset_index(drop=True)
    for spec in specs:  # one column at a time: a frame's astype visits every column, ~3 ms for one row
        if spec.type == "integer":
            accepted[spec.name] = accepted[spec.name].astype("Int64")
    accepted["row_number"] = row_numbers[kept]
    accepted["extras"] = _extras_json(extras if every_row else extras[kept])
    return accepted


def _extras_json(extras: pd.DataFrame) -> pd.api.extensions.ExtensionArray:
    """Columns the contract does not know, per row, as a JSON object; missing when a file has none."""
    if extras.columns.empty or extras.empty:
        return _pandas(arrow.nulls(len(extras), ARROW_TEXT))
    lines = extras.astype(TEXT).to_json(orient="records", lines=True).rstrip("\n").split("\n")
    return pd.array(lines, dtype=TEXT)
