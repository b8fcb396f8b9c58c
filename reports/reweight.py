"""Reweighting a batch to the population it should describe (raking to a target's margins).

Most batches are convenience samples (those who sit and hurt the most answer more often). Raking (svy's
iterative proportional fitting, alternated with trimming extreme weights) matches the target's shares on
every margin at once. A target is margins (CSV `column,level,share` or YAML `{column: {level: share}}`)
or reference rows (other CSV or Parquet of contract columns, weighted by `survey_weight`; numbers over
its deciles, as bands `lo-hi` (lo <= value < hi) or `lo+`). Missing answers are a level at their batch
share: nobody is dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import svy
import yaml

from balanceit.data.contract import QUESTIONNAIRE
from balanceit.reports.aggregate import WEIGHT, suppressed_groups, weights_or_ones
from balanceit.reports.estimates import population_estimates
from balanceit.warehouse import registered, transaction

METHOD = "raking"
MISSING = "(missing)"
SHARE_TOLERANCE = 0.02  # a margin's shares must add up to 1 within this
REFERENCE_QUANTILES = tuple(np.arange(1, 10) / 10)  # deciles
MARGIN_COLUMNS = {spec.name: spec for spec in QUESTIONNAIRE
                  if spec.type in {"category", "number", "integer"} and not spec.name.startswith("survey_")}
_BAND = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-\s*(-?\d+(?:\.\d+)?)|(\+))\s*$")
_RAKED = "_raked_weight"


class TargetRefused(ValueError):
    """A target file that cannot be read or that the batch cannot be weighted to; the message says why."""


@dataclass(frozen=True)
class Target:
    """Known shares of the target population: {column: {level: share}} (each margin sums to 1)."""

    file: str
    sha256: str
    kind: str  # "margins" or "reference rows"
    margins: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Reweighting:
    """Raking weights for a batch's rows (mean 1), and how well they make it match the target."""

    target: Target
    weights: np.ndarray
    effective_size: float
    design_effect: float
    trimmed_at: float  # the cap on a weight, relative to the median weight
    weights_over_cap: int  # weights still above the cap (the margins won over the cap)
    balance: list[dict[str, object]]  # per margin level: target, before, after, abs. standardised differences


def read_target(path: Path) -> Target:
    """The target population in `path`: margins (CSV `column,level,share` or YAML) or reference rows."""
    if not path.is_file():
        raise TargetRefused(f"target {path}: no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    suffix = path.suffix.lower()
    if suffix in {".yaml", ".yml"}:
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
            raise TargetRefused(f"target {path}: YAML must map each column to {{level: share}}")
        margins, kind = {str(c): {str(k): v for k, v in levels.items()} for c, levels in loaded.items()}, "margins"
    else:
        try:
            frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, dtype_backend="pyarrow")
        except (ValueError, OSError) as problem:
            raise TargetRefused(f"target {path}: cannot be read ({problem})") from problem
        if {"column", "level", "share"} <= set(frame.columns):
            margins, kind = _margins_from_table(frame, path), "margins"
        else:
            margins, kind = _margins_from_rows(frame, path), "reference rows"
    return Target(file=str(path), sha256=digest, kind=kind, margins=_checked(margins, path))


def reweight(answers: pd.DataFrame, target: Target, trim_ratio: float) -> Reweighting:
    """Rake the batch's rows to the target's margins, trimming weights above `trim_ratio` times the median;
    refuses a target it cannot reach (a level nobody in the batch has, or people in a level it lacks)."""
    levels = {column: _margin_levels(answers, target, column) for column in target.margins}
    shares = {column: _batch_margin(target, column, levels[column], len(answers)) for column in target.margins}
    base = weights_or_ones(answers).to_numpy()  # the batch's own (an NHANES cycle), else 1 for everyone
    sample = svy.Sample(pl.DataFrame({**{f"m{i}": levels[c] for i, c in enumerate(shares)}, "_base": base}),
                        svy.Design(wgt="_base"))
    raked = sample.weighting.rake(
        shares={f"m{i}": shares[c] for i, c in enumerate(shares)}, wgt_name=_RAKED,
        trimming=svy.TrimConfig(upper=svy.Threshold("median", trim_ratio)), on_nonconvergence="ignore")
    weights = raked.data[_RAKED].to_numpy().astype(float)
    weights *= len(weights) / weights.sum()
    design_effect = float(len(weights) * np.sum(weights ** 2) / np.sum(weights) ** 2)  # Kish
    return Reweighting(
        target=target, weights=weights, effective_size=len(weights) / design_effect, design_effect=design_effect,
        trimmed_at=trim_ratio,
        weights_over_cap=int(np.sum(weights > trim_ratio * np.median(weights) * (1 + 1e-3))),
        balance=_balance(levels, shares, base, weights))


def reweighting_report(people: pd.DataFrame, result: Reweighting, min_effective_size: float,
                       min_group_size: int, stored_at: datetime) -> dict[str, object]:
    """What the report and its JSON say: weighted and unweighted figures, each margin's balance before and
    after, the design effect and effective size (flagged when small). Small margin levels (as segments'
    `suppressed_groups`) show no unweighted share: it would tell how many people are in them."""
    before = population_estimates(people)
    after = population_estimates(people.assign(**{WEIGHT: result.weights}))
    balance = _shown_balance(result.balance, min_group_size)
    worst = {when: max((row[f"asd_{when}"] for row in balance if row[f"asd_{when}"] is not None), default=None)
             for when in ("before", "after")}
    return {
        "target": Path(result.target.file).name, "target_sha256": result.target.sha256,
        "target_kind": result.target.kind, "method": METHOD, "computed_at": stored_at.isoformat(),
        "margins": sorted(result.target.margins), "n": int(len(people)),
        "design_effect": result.design_effect, "effective_size": result.effective_size,
        "trimmed_at_median_times": result.trimmed_at, "weights_over_cap": result.weights_over_cap,
        "small_effective_size": result.effective_size < min_effective_size,
        "min_effective_size": min_effective_size,
        "max_asd_before": worst["before"], "max_asd_after": worst["after"],
        "estimates": {name: {"unweighted": before["estimates"][name], "weighted": figure}
                      for name, figure in after["estimates"].items()},
        "intervals": after["intervals"],
        "balance": balance,
    }


def _shown_balance(balance: list[dict[str, object]], min_group_size: int) -> list[dict[str, object]]:
    """The balance rows without head counts, the unweighted share of small groups blanked per margin."""
    table = pd.DataFrame(balance)
    hidden = pd.concat([suppressed_groups(margin["people"], min_group_size)
                        for _, margin in table.groupby("column", sort=False)]).reindex(table.index)
    return [{**{k: v for k, v in row.items() if k != "people"}, "suppressed": bool(hide),
             **({"before": None, "asd_before": None} if hide else {})}
            for row, hide in zip(balance, hidden)]


def store_weights(con: duckdb.DuckDBPyConnection, batch_id: str, answers: pd.DataFrame,
                  result: Reweighting, computed_at: datetime) -> None:
    """Keep the weights with the batch (which target, which method, when), replacing an earlier run of
    the same target on the same batch, so that a report can be rebuilt and a rerun changes nothing else."""
    con.execute("CREATE TABLE IF NOT EXISTS reweightings (batch_id VARCHAR NOT NULL, target VARCHAR NOT NULL, "
                "target_sha256 VARCHAR NOT NULL, method VARCHAR NOT NULL, computed_at TIMESTAMP NOT NULL, "
                "design_effect DOUBLE, effective_size DOUBLE, margins VARCHAR)")
    con.execute("CREATE TABLE IF NOT EXISTS batch_weights (batch_id VARCHAR NOT NULL, target_sha256 VARCHAR NOT NULL, "
                "respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL, weight DOUBLE NOT NULL)")
    key = [batch_id, result.target.sha256]
    rows = pd.DataFrame({"batch_id": batch_id, "target_sha256": result.target.sha256,
                         "respondent_id": answers["respondent_id"].to_numpy(),
                         "submitted_at": answers["submitted_at"].to_numpy(), "weight": result.weights})
    with transaction(con), registered(con, "_weights", rows):
        con.execute("DELETE FROM reweightings WHERE batch_id = ? AND target_sha256 = ?", key)
        con.execute("DELETE FROM batch_weights WHERE batch_id = ? AND target_sha256 = ?", key)
        con.execute("INSERT INTO reweightings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch_id, result.target.file, result.target.sha256, METHOD, computed_at.replace(tzinfo=None),
                     result.design_effect, result.effective_size, json.dumps(result.target.margins)])
        con.execute("INSERT INTO batch_weights SELECT * FROM _weights")


# --- reading targets ----------------------------------------------------------------------------------

def _margins_from_table(frame: pd.DataFrame, path: Path) -> dict[str, dict[str, float]]:
    margins: dict[str, dict[str, float]] = {}
    for row_number, (column, level, share) in enumerate(frame[["column", "level", "share"]].itertuples(index=False),
                                                        start=2):
        try:
            margins.setdefault(str(column), {})[str(level)] = float(share)
        except (TypeError, ValueError):
            raise TargetRefused(f"target {path}, row {row_number}, column share: '{share}' is not a number") from None
    return margins


def _margins_from_rows(frame: pd.DataFrame, path: Path) -> dict[str, dict[str, float]]:
    """Weighted shares of every margin column the reference rows have (number columns over deciles)."""
    columns = [c for c in frame.columns if c in MARGIN_COLUMNS]
    if not columns:
        raise TargetRefused(f"target {path}: neither margins (columns column, level, share) nor reference rows "
                            f"(any of {', '.join(MARGIN_COLUMNS)})")
    weight = (pd.to_numeric(frame[WEIGHT], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
              if WEIGHT in frame else np.ones(len(frame)))
    margins = {}
    for column in columns:
        if MARGIN_COLUMNS[column].type == "category":
            labels = frame[column].astype("string")
        else:
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.isna().all():
                continue
            edges = np.unique(np.round(values.quantile(REFERENCE_QUANTILES).to_numpy(dtype=float), 2))
            labels = pd.Series(_band_labels(values.to_numpy(dtype=float, na_value=np.nan), edges), index=frame.index)
        usable = labels.notna().to_numpy() & np.isfinite(weight) & (weight > 0)
        totals = pd.Series(weight[usable]).groupby(labels[usable].to_numpy()).sum()
        if MARGIN_COLUMNS[column].type != "category":  # bands in order, not as text sorts them
            totals = totals.sort_index(key=lambda bands: bands.map(lambda band: float(_BAND.match(band).group(1))))
        margins[column] = (totals / totals.sum()).to_dict()
    return margins


def _band_labels(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`lo-hi` / `lo+` names of numbers cut at `edges`; the first band starts at 0, every contract minimum."""
    bounds = [f"{edge:g}" for edge in edges]
    names = [f"0-{bounds[0]}", *(f"{lo}-{hi}" for lo, hi in zip(bounds[:-1], bounds[1:])), f"{bounds[-1]}+"]
    codes = np.searchsorted(edges, values, side="right")
    return np.where(np.isnan(values), None, np.array(names, dtype=object)[codes])


def _checked(margins: dict[str, dict[str, float]], path: Path) -> dict[str, dict[str, float]]:
    """Margins on contract columns, with allowed levels and shares in [0, 1] adding up to 1 (then normalised)."""
    if not margins:
        raise TargetRefused(f"target {path}: no margins")
    checked = {}
    for column, levels in margins.items():
        spec = MARGIN_COLUMNS.get(column)
        if spec is None:
            raise TargetRefused(f"target {path}, column '{column}': not a questionnaire column a batch can be "
                                f"weighted on (use one of {', '.join(MARGIN_COLUMNS)})")
        for level, share in levels.items():
            if spec.type == "category" and level not in spec.allowed:
                raise TargetRefused(f"target {path}, column '{column}', level '{level}': not one of "
                                    f"{', '.join(spec.allowed)}")
            if spec.type != "category" and _BAND.match(level) is None:
                raise TargetRefused(f"target {path}, column '{column}', level '{level}': a number column's level "
                                    "must be a band 'lo-hi' or 'lo+'")
            if not (isinstance(share, (int, float)) and 0 <= share <= 1):
                raise TargetRefused(f"target {path}, column '{column}', level '{level}': share {share!r} "
                                    "is not a number between 0 and 1")
        total = sum(levels.values())
        if abs(total - 1) > SHARE_TOLERANCE:
            raise TargetRefused(f"target {path}, column '{column}': shares add up to {total:.3f}, not 1")
        checked[column] = {level: share / total for level, share in levels.items() if share > 0}
    return checked


# --- raking -------------------------------------------------------------------------------------------

def _margin_levels(answers: pd.DataFrame, target: Target, column: str) -> np.ndarray:
    """Each row's margin level as text: the category, or the target's band holding the number; MISSING if blank."""
    if column not in answers:
        raise TargetRefused(f"target {target.file}, column '{column}': the batch has no such column")
    if MARGIN_COLUMNS[column].type == "category":
        return answers[column].astype("string").fillna(MISSING).to_numpy(dtype=object)
    values = pd.to_numeric(answers[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    labels = np.full(len(values), MISSING, dtype=object)
    for level in target.margins[column]:
        low, high, open_ended = _BAND.match(level).groups()
        inside = (values >= float(low)) & (True if open_ended else values < float(high))
        labels[inside & (labels == MISSING)] = level
    outside = ~np.isnan(values) & (labels == MISSING)
    if outside.any():
        raise TargetRefused(f"target {target.file}, column '{column}': {int(outside.sum())} people in the batch "
                            f"answered a value in no band of the target (e.g. {values[outside][0]:g})")
    return labels


def _batch_margin(target: Target, column: str, levels: np.ndarray, rows: int) -> dict[str, float]:
    """The target's shares for this batch: missing answers keep their batch share, the rest are scaled."""
    wanted = target.margins[column]
    found = dict(zip(*np.unique(levels, return_counts=True)))
    absent = [level for level in wanted if level not in found]
    if absent:
        raise TargetRefused(f"target {target.file}, column '{column}': nobody in the batch has "
                            f"{', '.join(repr(level) for level in absent)} (target share "
                            f"{', '.join(f'{wanted[level]:.1%}' for level in absent)}); a batch cannot be weighted "
                            "to people it does not contain: merge that level with another or leave the margin out")
    unlisted = [level for level in found if level not in wanted and level != MISSING]
    if unlisted:
        raise TargetRefused(f"target {target.file}, column '{column}': the batch has people with "
                            f"{', '.join(repr(level) for level in unlisted)}, which the target gives no share")
    missing_share = found.get(MISSING, 0) / rows
    shares = {level: share * (1 - missing_share) for level, share in wanted.items()}
    if missing_share:
        shares[MISSING] = missing_share
    return shares


def _balance(levels: dict[str, np.ndarray], shares: dict[str, dict[str, float]], before: np.ndarray,
             after: np.ndarray) -> list[dict[str, object]]:
    """Per margin level: the target share, the batch's share before and after weighting, and their absolute
    standardised differences from the target, |p - target| / sqrt(target (1 - target))."""
    rows = []
    for column, wanted in shares.items():
        for level, target_share in wanted.items():
            member = levels[column] == level
            share_before, share_after = (float(w[member].sum() / w.sum()) for w in (before, after))
            spread = math.sqrt(target_share * (1 - target_share)) or 1.0
            rows.append({"column": column, "level": level, "people": int(member.sum()), "target": target_share,
                         "before": share_before, "after": share_after,
                         "asd_before": abs(share_before - target_share) / spread,
                         "asd_after": abs(share_after - target_share) / spread})
    return rows
