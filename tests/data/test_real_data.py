"""The real public files load as the contract says: the Fitbit export unchanged, and NHANES 2017-2020.

The data live outside the repository, in `<repo>/../shared/data` or `$BALANCEIT_SHARED_DATA`; these
tests are skipped where they are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balanceit.data.nhanes import load_nhanes
from balanceit.data.readers import FileRefused
from balanceit.data.validation import Validated, load_activity
from conftest import FITBIT, NHANES_P, shared

NOW = pd.Timestamp("2025-06-01")


@pytest.fixture(scope="module")
def fitbit() -> Validated:
    return load_activity(shared(FITBIT), now=NOW)


@pytest.fixture(scope="module")
def nhanes() -> Validated:
    return load_nhanes(shared(NHANES_P), now=NOW)


def test_fitbit_export_loads_exactly_as_exported(fitbit):
    accepted = fitbit.accepted
    assert (fitbit.rows_read, len(accepted), fitbit.quarantined_rows) == (940, 940, 0)
    assert accepted["respondent_id"].nunique() == 33
    assert (accepted["date"].min(), accepted["date"].max()) == (pd.Timestamp("2016-04-12"), pd.Timestamp("2016-05-12"))
    assert accepted["row_number"].tolist() == list(range(1, 941))


def test_fitbit_non_wear_days_are_kept_with_worn_false(fitbit):
    accepted = fitbit.accepted
    full_day_sitting, no_steps = accepted["sedentary_minutes"] == 1440, accepted["steps"] == 0
    assert (full_day_sitting.sum(), no_steps.sum()) == (79, 77)  # the quirks PROVENANCE.md lists
    assert (~accepted["worn"]).sum() == (full_day_sitting & no_steps).sum() == 72
    assert not accepted.loc[full_day_sitting & no_steps, "worn"].any()


def test_nhanes_p_loads_with_every_respondent_accounted_for(nhanes):
    accepted = nhanes.accepted
    assert nhanes.skipped == {"under 16": 5365, "no PAQ record": 502}
    assert nhanes.rows_read + sum(nhanes.skipped.values()) == 15_560  # P_DEMO rows
    assert nhanes.rows_read == 9_693  # P_PAQ rows: every PAQ respondent is 16 or over
    assert len(accepted) + nhanes.quarantined_rows == nhanes.rows_read
    # PAD680 answered 9,676 times, 66 of them refused / don't know: 83 without sitting time
    assert nhanes.reasons() == {"sitting_hours_per_day: missing required value": 83}
    assert accepted["respondent_id"].str.fullmatch(r"nhanes-P-\d{6}").all()
    assert (accepted["submitted_at"] == pd.Timestamp("2020-03-31")).all()
    assert accepted["survey_psu"].isin(["1", "2", "3"]).all()
    assert accepted["survey_stratum"].str.fullmatch(r"1[4-7]\d").all()
    unasked = ["stretching_days_per_week", "strength_training", "posture_self_report", "back_pain", "occupation",
               "imbalance"]
    assert accepted[unasked].isna().all().all()


def test_nhanes_p_sitting_time_matches_published_figures(nhanes):
    adults = nhanes.accepted[nhanes.accepted["age"] >= 18]
    sitting = adults["sitting_hours_per_day"].to_numpy(dtype=float)
    assert sitting.mean() == pytest.approx(5.58, abs=0.01)
    assert np.average(sitting, weights=adults["survey_weight"].to_numpy(dtype=float)) == pytest.approx(5.93, abs=0.02)


def test_nhanes_exercise_answers_follow_the_mapping(nhanes):
    accepted = nhanes.accepted
    assert set(accepted["exercise_types"].dropna()) == {"none", "other", "walking", "other;walking"}
    no_recreation = accepted["exercise_types"].isin(["none", "walking"])
    assert (accepted.loc[no_recreation, "exercise_days_per_week"] == 0).all()
    assert accepted["exercise_days_per_week"].max() == 7


def test_nhanes_folder_without_paq_is_refused(tmp_path):
    (tmp_path / "P_DEMO.xpt").symlink_to(shared(NHANES_P / "P_DEMO.xpt"))
    with pytest.raises(FileRefused, match="no PAQ file"):
        load_nhanes(tmp_path)


def link(folder: Path, **names: str) -> Path:
    """Give the P files other names, as another cycle's or another download's files would have."""
    for name, original in names.items():
        (folder / name).symlink_to(shared(NHANES_P / original))
    return folder


def test_nhanes_files_are_found_by_name_in_any_case_and_bmx_is_optional(tmp_path):
    folder = link(tmp_path, **{"p_demo.XPT": "P_DEMO.xpt", "P_Paq.Xpt": "P_PAQ.xpt", "notes.txt": "PROVENANCE.md"})
    validated = load_nhanes(folder, now=NOW)
    assert validated.rows_read == 9_693
    assert validated.accepted[["height_cm", "weight_kg"]].isna().all().all()


def test_nhanes_two_year_cycle_names_ask_for_the_two_year_weight(tmp_path):
    folder = link(tmp_path, **{"DEMO_J.XPT": "P_DEMO.xpt", "PAQ_J.XPT": "P_PAQ.xpt"})
    with pytest.raises(FileRefused, match="missing required column 'WTINT2YR'"):
        load_nhanes(folder)


def test_nhanes_files_from_different_cycles_are_refused(tmp_path):
    folder = link(tmp_path, **{"P_DEMO.xpt": "P_DEMO.xpt", "PAQ_J.XPT": "P_PAQ.xpt"})
    with pytest.raises(FileRefused, match="different cycles"):
        load_nhanes(folder)


def test_an_nhanes_cycle_may_declare_questions_too():
    validated = load_nhanes(shared(NHANES_P), not_asked=("height_cm", "weight_kg"))
    assert len(validated.accepted) == 9610
    assert validated.accepted[["height_cm", "weight_kg"]].isna().all().all()
