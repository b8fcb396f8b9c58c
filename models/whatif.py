"""What-ifs: each modifiable answer changed by a realistic step, scored again.

A what-if edits model-input columns (`model_arrays`: numbers as floats, categories as text), the
same columns features.build derives from the answer. Because the model is additive, only the
terms of the catalogue features it touches are recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from balanceit.features.build import breaks_per_sitting_hour
from balanceit.features.catalogue import ModelInput

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class WhatIf:
    name: str
    label: str
    touches: tuple[str, ...]
    applies: Callable[[ModelInput], np.ndarray]
    change: Callable[[ModelInput], Columns]


def _sitting_and_breaks(sitting_hours: np.ndarray, movement_breaks: np.ndarray) -> Columns:
    """Both answers and the ratio derived from them, which a change to either moves."""
    return {"sitting_hours": sitting_hours, "movement_breaks": movement_breaks,
            "breaks_per_sitting_hour": breaks_per_sitting_hour(movement_breaks, sitting_hours)}


def _balance_strength(X: ModelInput) -> Columns:
    rows = len(X["strength_training"])
    return {"strength_training": np.full(rows, "balanced", dtype=object), "ex_weightlifting": np.full(rows, "1", dtype=object)}


WHAT_IFS: tuple[WhatIf, ...] = (
    WhatIf("sit_2h_less", "sitting 2 hours less a day", ("sitting_hours", "movement_breaks"),
           lambda X: X["sitting_hours"] >= 6,
           lambda X: _sitting_and_breaks(np.clip(X["sitting_hours"] - 2, 0, None), X["movement_breaks"])),
    WhatIf("hourly_breaks", "a movement break every hour you sit", ("movement_breaks",),
           lambda X: np.nan_to_num(X["breaks_per_sitting_hour"]) < 1,
           lambda X: _sitting_and_breaks(
               X["sitting_hours"], np.maximum(np.nan_to_num(X["movement_breaks"]), np.ceil(X["sitting_hours"])))),
    WhatIf("stretch_3_days", "stretching 3 days a week", ("stretching",),
           lambda X: np.nan_to_num(X["stretching_days"]) < 3,
           lambda X: {"stretching_days": np.maximum(np.nan_to_num(X["stretching_days"]), 3.0)}),
    WhatIf("balanced_strength", "balanced strength training (pull as much as you push)", ("strength_training",),
           lambda X: np.isin(X["strength_training"], ["unbalanced", "none"]), _balance_strength),
    WhatIf("screen_2h_less", "2 hours less screen time a day", ("screen_hours",),
           lambda X: X["screen_hours"] >= 4, lambda X: {"screen_hours": np.clip(X["screen_hours"] - 2, 0, None)}),
)
