"""Held-out quality figures: discrimination, calibration, and the same per subgroup."""

from __future__ import annotations

import numpy as np
import pandas as pd


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed - predicted| over equal-width probability bins, weighted by bin size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    gap = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / max(len(p), 1))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted risk and observed rate per equal-width risk bin (empty bins left out)."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)})
    frame["bin"] = np.minimum((frame["p"] * bins).astype(int), bins - 1)
    out = frame.groupby("bin").agg(n=("y", "size"), predicted_mean=("p", "mean"), observed_rate=("y", "mean"))
    out.insert(0, "lower", out.index / bins)
    out.insert(1, "upper", (out.index + 1) / bins)
    return out.reset_index(drop=True)


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score  # reading the registry never needs it

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return {"n": float(len(y))}
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
            "brier": float(brier_score_loss(y, p)), "ece": expected_calibration_error(y, p), "n": float(len(y))}


def subgroup_metrics(y: np.ndarray, p: np.ndarray, groups: pd.DataFrame) -> pd.DataFrame:
    """The same metrics within each level of each grouping column (e.g. sex, age band)."""
    return pd.DataFrame([{"group": column, "level": str(level),
                          **classification_metrics(np.asarray(y)[index], np.asarray(p)[index])}
                         for column in groups.columns
                         for level, index in groups.groupby(column, dropna=False).indices.items()])
