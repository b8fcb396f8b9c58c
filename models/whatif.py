"""What-ifs: each modifiable answer changed by a realistic step, scored again.

A what-if edits feature-table columns (the same ones the feature query derives from the answer),
and because the model is additive only the terms of the catalogue features it touches are
recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Change = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class WhatIf:
    name: str
    label: str
    touches: tuple[str, ...]
    applies: Callable[[pd.DataFrame], pd.Series]
    change: Change


def _with_breaks_ratio(changed: pd.DataFrame) -> pd.DataFrame:
    changed["breaks_per_sitting_hour"] = changed["movement_breaks"] / np.maximum(changed["sitting_hours"], 1.0)
    return changed


def _sit_less(frame: pd.DataFrame) -> pd.DataFrame:
    changed = frame[["sitting_hours", "movement_breaks"]].copy()
    changed["sitting_hours"] = (changed["sitting_hours"] - 2).clip(lower=0)
    return _with_breaks_ratio(changed)


def _hourly_breaks(frame: pd.DataFrame) -> pd.DataFrame:
    changed = frame[["sitting_hours", "movement_breaks"]].copy()
    changed["movement_breaks"] = np.maximum(changed["movement_breaks"].fillna(0), np.ceil(changed["sitting_hours"]))
    return _with_breaks_ratio(changed)


def _stretch_three_days(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"stretching_days": np.maximum(frame["stretching_days"].fillna(0), 3.0)}, index=frame.index)


def _balance_strength(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"strength_training": "balanced", "ex_weightlifting": "1"}, index=frame.index)


def _less_screen(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"screen_hours": (frame["screen_hours"] - 2).clip(lower=0)}, index=frame.index)


WHAT_IFS: tuple[WhatIf, ...] = (
    WhatIf("sit_2h_less", "sitting 2 hours less a day", ("sitting_hours", "movement_breaks"),
           lambda f: f["sitting_hours"] >= 6, _sit_less),
    WhatIf("hourly_breaks", "a movement break every hour you sit", ("movement_breaks",),
           lambda f: f["breaks_per_sitting_hour"].fillna(0) < 1, _hourly_breaks),
    WhatIf("stretch_3_days", "stretching 3 days a week", ("stretching",),
           lambda f: f["stretching_days"].fillna(0) < 3, _stretch_three_days),
    WhatIf("balanced_strength", "balanced strength training (pull as much as you push)", ("strength_training",),
           lambda f: f["strength_training"].astype("string").fillna("").isin(["unbalanced", "none"]),
           _balance_strength),
    WhatIf("screen_2h_less", "2 hours less screen time a day", ("screen_hours",),
           lambda f: f["screen_hours"] >= 4, _less_screen),
)
