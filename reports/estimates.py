"""Population estimates with 95% intervals that respect how the respondents were sampled.

Surveys such as NHANES draw people in clusters (PSUs) within strata with unequal probabilities (its
2017-2020 adults sit 335 minutes a day unweighted, 356 weighted), so a frame with survey weights gets
weighted figures with design-based intervals (Taylor linearisation by `svy`, no hand-written variance
code): PSUs nested in strata, each row its own PSU when there are none, a single-PSU stratum centred on
the grand mean (R's `lonely.psu = "adjust"`). Unweighted frames get ordinary intervals for the
respondents only. Shares use Korn-Graubard intervals (the NCHS standard), means t intervals. A missing
value is a domain, not a filter; a domain in a single PSU of a single stratum has no interval (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import polars as pl
import svy

from balanceit.reports.aggregate import BANDS, SEGMENT_FIGURES, survey_weights

STRATUM, PSU = "survey_stratum", "survey_psu"
ALPHA = 0.05  # 95% intervals
SHARE_INTERVAL = "korn-graubard"
SINGLETON_RULE = "center"
LONG_SITTING_HOURS = 8.0  # "sitting over 8 hours" is strictly more than this, as the report's "over 8 h" band

WEIGHTED_POPULATION = "Weighted to the population the survey represents."
UNWEIGHTED_POPULATION = "Unweighted: figures describe the respondents only, not the population they came from."
ORDINARY_INTERVALS = ("95% intervals are ordinary ones for a simple random sample of the respondents "
                      "(t for means, Korn-Graubard for shares).")

# Internal column names of the polars frame handed to svy.
_W, _S, _P, _DOMAIN = "_weight", "_stratum", "_psu", "_domain"


class Estimate(NamedTuple):
    """A point estimate with its 95% interval; the interval is NaN where none can be computed."""

    value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | None]:
        """{"value", "ci_low", "ci_high"}, with NaN as None so that it is valid JSON."""
        return {name: float(value) if value is not None and math.isfinite(value) else None
                for name, value in self._asdict().items()}


UNKNOWN = Estimate(math.nan, math.nan, math.nan)


@dataclass(frozen=True, eq=False)
class Design:
    """A weighted design of one frame, row for row: weights, and stratum / PSU codes when known."""

    weight: np.ndarray  # float, all > 0
    stratum: np.ndarray | None  # int codes 0.., or None for a single stratum
    psu: np.ndarray | None  # int codes 0.. (nested in strata), or None: each row is its own PSU
    n_strata: int
    n_psus: int
    singleton_strata: int  # strata with a single PSU, centred on the grand mean

    def describe(self) -> str:
        """One sentence on how the intervals are computed, for the report and its JSON."""
        if self.psu is None:
            units = ", each respondent counted as its own PSU (the data give weights but no PSUs)"
            if self.stratum is not None:
                units += f", within {self.n_strata} strata"
        else:
            units = f" over {self.n_strata} strata and {self.n_psus} PSUs"
        sentence = (f"95% design-based intervals by Taylor linearisation{units}, "
                    f"with {self.n_psus - self.n_strata} degrees of freedom")
        if self.singleton_strata:
            sentence += (f"; strata with a single PSU ({self.singleton_strata}) are centred on the grand mean "
                         "(R's lonely.psu = \"adjust\")")
        return sentence + "."


def design_of(frame: pd.DataFrame) -> Design | None:
    """The frame's survey design, or None when it is unweighted (see the module docstring)."""
    weight = survey_weights(frame)
    if weight is None:
        return None
    stratum, psu = _codes(frame, STRATUM), _codes(frame, PSU)
    strata = np.zeros(len(weight), dtype=np.int64) if stratum is None else stratum
    units = np.arange(len(weight), dtype=np.int64) if psu is None else psu
    # PSUs are nested in strata: one (stratum, PSU) pair is one PSU.
    pairs = pd.DataFrame({"stratum": strata, "psu": units}).drop_duplicates()
    psus_per_stratum = np.bincount(pairs["stratum"].to_numpy())
    return Design(weight=weight, stratum=stratum, psu=psu, n_strata=int((psus_per_stratum > 0).sum()),
                  n_psus=len(pairs), singleton_strata=int((psus_per_stratum == 1).sum()))


def estimate_of(sample: svy.Sample, column: str, y: np.ndarray, share: bool) -> Estimate:
    """One mean or share (see `_estimates`) of the sample's column `y`; NaN when nobody has a value."""
    return _estimates(sample, column, share)[0] if np.isfinite(y).any() else UNKNOWN


def population_estimates(people: pd.DataFrame) -> dict:
    """The headline figures of `people` (`risk`, `band`, `sitting_hours_per_day`, maybe a design), each
    with its 95% interval: {"weighted", "n", "population" (what they describe), "intervals" (how computed),
    "estimates": {name: {"value", "ci_low", "ci_high"}}}. A missing answer leaves out only its own figure."""
    design = design_of(people)
    band = people["band"]
    sitting = _floats(people["sitting_hours_per_day"], people)
    columns = {
        "mean_risk": _floats(people["risk"], people),
        "mean_sitting_hours": sitting,
        **{f"share_{name}_risk": _indicator((band == name).mask(band.isna()), people) for name in BANDS},
        "share_sitting_over_8h": np.where(np.isnan(sitting), np.nan, sitting > LONG_SITTING_HOURS),
    }
    sample = sample_of(design, columns)
    estimates = {name: estimate_of(sample, name, y, name.startswith("share_")) for name, y in columns.items()}
    return {
        "weighted": design is not None,
        "n": int(len(people)),
        "population": WEIGHTED_POPULATION if design is not None else UNWEIGHTED_POPULATION,
        "intervals": design.describe() if design is not None else ORDINARY_INTERVALS,
        "estimates": {name: estimate.as_dict() for name, estimate in estimates.items()},
    }


def segment_estimates(people: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Mean risk and share in the high band with 95% intervals per segment of `labels` (aligned with
    `people`), each a domain: people without a label stay in the design. Segments come in a categorical's
    order, else as they first appear; columns: label, n (people) and SEGMENT_FIGURES."""
    columns = ["label", "n", *SEGMENT_FIGURES]
    labels = _aligned(labels, people)
    codes, uniques = pd.factorize(labels, sort=isinstance(labels.dtype, pd.CategoricalDtype))
    if not len(uniques):
        return pd.DataFrame(columns=columns)
    band = people["band"]
    in_high = _indicator((band == "high").mask(band.isna()), people)
    sample = sample_of(design_of(people), {"risk": _floats(people["risk"], people), "high": in_high,
                                         _DOMAIN: np.where(codes >= 0, codes, np.nan)})
    risk = _estimates(sample, "risk", share=False, by=_DOMAIN, n_domains=len(uniques))
    high = _estimates(sample, "high", share=True, by=_DOMAIN, n_domains=len(uniques))
    figures = {"label": list(uniques), "n": np.bincount(codes[codes >= 0], minlength=len(uniques))}
    for name, found in (("mean_risk", risk), ("share_high", high)):
        figures.update({name: [e.value for e in found], f"{name}_ci_low": [e.ci_low for e in found],
                        f"{name}_ci_high": [e.ci_high for e in found]})
    return pd.DataFrame(figures, columns=columns)


# --- svy plumbing -------------------------------------------------------------------------------------

def sample_of(design: Design | None, columns: dict[str, np.ndarray]) -> svy.Sample:
    """An svy sample of the given row-aligned columns (NaN = missing) under `design` (None: SRS)."""
    data = [pl.Series(name, np.asarray(values, dtype=float), nan_to_null=True) for name, values in columns.items()]
    if design is None:
        return svy.Sample(pl.DataFrame(data))
    data += [pl.Series(name, codes) for name, codes in ((_W, design.weight), (_S, design.stratum), (_P, design.psu))
             if codes is not None]
    return svy.Sample(pl.DataFrame(data), svy.Design(
        stratum=_S if design.stratum is not None else None, psu=_P if design.psu is not None else None,
        wgt=_W, singleton=SINGLETON_RULE if design.singleton_strata else None))


def _estimates(sample: svy.Sample, column: str, share: bool, by: str | None = None,
               n_domains: int = 1) -> list[Estimate]:
    """Mean of a column, or share of 1s in a 0/1 column: svy gives a share a row per level found, so a
    share of 0 or 1 is mirrored."""
    estimation = sample.estimation
    rows = (estimation.prop(column, by=by, alpha=ALPHA, ci_method=SHARE_INTERVAL, drop_nulls=True) if share
            else estimation.mean(column, by=by, alpha=ALPHA, drop_nulls=True)).to_polars()
    found: dict[int, Estimate] = {}
    for row in rows.iter_rows(named=True):
        key = int(row[by]) if by else 0
        if not share or row[column] == 1.0:
            found[key] = Estimate(row["est"], row["lci"], row["uci"])
        else:
            found.setdefault(key, Estimate(1.0 - row["est"], 1.0 - row["uci"], 1.0 - row["lci"]))
    figures = [found.get(key, UNKNOWN) for key in range(n_domains)]
    if not share:
        return figures
    # A share's interval within [0, 1]: rounding can leave it a hair outside.
    return [Estimate(*(min(max(v, 0.0), 1.0) if math.isfinite(v) else v for v in figure))
            for figure in figures]


# --- inputs -------------------------------------------------------------------------------------------

def _codes(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """Integer codes of a design column, or None when it is absent or has a missing value."""
    if column not in frame:
        return None
    codes, _ = pd.factorize(frame[column])
    return None if (codes < 0).any() else codes.astype(np.int64)


def _aligned(values: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """`values` in the frame's row order: by index when the indexes differ, else as given."""
    return values if values.index.equals(frame.index) else values.reindex(frame.index)


def _floats(values: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(_aligned(values, frame), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _indicator(indicator: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    """0/1 floats with NaN for missing; anything other than true/false/0/1 is refused."""
    y = _floats(_aligned(indicator, frame).astype("Float64"), frame)
    if not np.isin(y[np.isfinite(y)], (0.0, 1.0)).all():
        raise ValueError("a share's indicator must be true/false or 0/1 (missing allowed)")
    return y
