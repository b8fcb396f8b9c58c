"""Checks against the generator's truth: do the drivers name the real causes?"""

from __future__ import annotations

import pandas as pd

from balanceit.data.contract import QUESTIONNAIRE_KEY
from balanceit.features.catalogue import SIGNS


def explanation_agreement(scored: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Among people whose largest true risk factor is clear, how often the drivers name it; and the share of
    everyone whose drivers include a sign, which should be (near) zero since signs are reported apart."""
    truth = truth.assign(submitted_at=pd.to_datetime(truth["submitted_at"]))
    joined = scored.merge(truth, on=list(QUESTIONNAIRE_KEY), how="inner")
    drivers = joined[["driver_1", "driver_2", "driver_3"]]
    clear = joined["true_top_factor_clear"].astype(bool)
    top = joined["true_top_factor"]
    in_top3 = drivers.eq(top, axis=0).any(axis=1)
    return {
        "people_compared": int(len(joined)),
        "people_with_clear_top_factor": int(clear.sum()),
        "top_factor_among_drivers": float(in_top3[clear].mean()),
        "top_factor_is_driver_1": float((joined["driver_1"] == top)[clear].mean()),
        "share_with_sign_among_drivers": float(drivers.isin(SIGNS).any(axis=1).mean()),
    }
