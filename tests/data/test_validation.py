"""Validation outcomes promised by the input contract, file by file (sections 1, 2 and 4)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from bad_files import (
    BAD_ACTIVITY, BAD_QUESTIONNAIRES, GOOD_SUFFIXES, NOW, Quarantined, Refused, activity_day, good_frame, good_row,
    write_good_file,
)

from balanceit.data.contract import ACTIVITY_COLUMNS, QUESTIONNAIRE, QUESTIONNAIRE_COLUMNS
from balanceit.data.validation import (
    FileRefused, Validated, load_activity, load_questionnaire, validate_activity, validate_questionnaire,
)


def assert_rows_add_up(validated: Validated) -> None:
    assert len(validated.accepted) + validated.quarantined_rows == validated.rows_read
    assert set(validated.accepted["row_number"]).isdisjoint(validated.quarantined["row_number"])


def assert_outcome(load, path, expected: Refused | Quarantined) -> None:
    if isinstance(expected, Refused):
        with pytest.raises(FileRefused) as refused:
            load(path, now=NOW)
        assert expected.problem in refused.value.problem
        assert refused.value.column == expected.column
        assert str(refused.value) == f"{path}: {refused.value.problem}"
        return
    validated = load(path, now=NOW)
    assert_rows_add_up(validated)
    assert len(validated.accepted) == expected.accepted
    assert validated.reasons() == expected.reasons


@pytest.mark.parametrize("case", list(BAD_QUESTIONNAIRES))
def test_bad_questionnaire_gets_the_contract_outcome(tmp_path, case):
    content, expected = BAD_QUESTIONNAIRES[case]
    path = tmp_path / "questionnaire.csv"
    path.write_bytes(content)
    assert_outcome(load_questionnaire, path, expected)


@pytest.mark.parametrize("case", list(BAD_ACTIVITY))
def test_bad_activity_gets_the_contract_outcome(tmp_path, case):
    content, expected = BAD_ACTIVITY[case]
    path = tmp_path / "activity.csv"
    path.write_bytes(content)
    assert_outcome(load_activity, path, expected)


@pytest.fixture(scope="module")
def canonical_good() -> pd.DataFrame:
    return validate_questionnaire(good_frame(), "good", now=NOW).accepted


@pytest.mark.parametrize("suffix", GOOD_SUFFIXES)
def test_good_file_in_every_format_is_accepted_alike(tmp_path, suffix, canonical_good):
    validated = load_questionnaire(write_good_file(tmp_path, suffix), now=NOW)
    assert_rows_add_up(validated)
    assert validated.quarantined.empty and validated.skipped == {}
    pd.testing.assert_frame_equal(validated.accepted, canonical_good)


def test_canonical_questionnaire_columns_dtypes_and_values(canonical_good):
    accepted = canonical_good
    assert list(accepted.columns) == [*QUESTIONNAIRE_COLUMNS, "row_number", "extras"]
    dtypes = accepted.dtypes.astype(str)
    assert dtypes[["respondent_id", "sex", "exercise_types", "survey_psu", "extras"]].eq("string").all()
    assert dtypes[["age", "movement_breaks_per_day", "exercise_days_per_week"]].eq("Int64").all()
    assert dtypes["row_number"] == "int64"
    assert dtypes[["height_cm", "sitting_hours_per_day", "survey_weight"]].eq("Float64").all()
    assert dtypes[["stretches_before_exercise", "imbalance"]].eq("boolean").all()
    assert pd.api.types.is_datetime64_dtype(accepted["submitted_at"])  # naive, UTC

    full, required_only, spellings = (row for _, row in accepted.iterrows())
    assert full["submitted_at"] == pd.Timestamp("2025-01-02 08:00")  # +02:00 converted to UTC
    assert (full["sex"], full["occupation"], full["strength_training"]) == ("female", "desk", "unbalanced")
    assert full["exercise_types"] == "running;walking"
    booleans = ["stretches_before_exercise", "stretches_after_exercise", "imbalance"]
    assert full[booleans].tolist() == [True, False, True]
    assert (full["age"], full["height_cm"], full["row_number"]) == (34, 168.5, 1)
    assert required_only["sex"] == "male"
    assert required_only[[spec.name for spec in QUESTIONNAIRE if not spec.required]].isna().all()
    assert spellings[booleans].tolist() == [False, True, False]
    assert spellings["exercise_types"] == "none"
    assert accepted["extras"].isna().all()


@pytest.mark.parametrize("answer, normalised", [
    (" Walking|RUNNING ", "running;walking"),
    ("yoga;Yoga | pilates", "pilates;yoga"),
    ("NONE", "none"),
    ("walking;", "walking"),
])
def test_exercise_types_are_sorted_unique_lowercase(answer, normalised):
    raw = pd.DataFrame([good_row("a", exercise_types=answer)])
    assert validate_questionnaire(raw, "q", now=NOW).accepted.loc[0, "exercise_types"] == normalised


def test_unknown_columns_are_kept_as_json_extras():
    raw = pd.DataFrame([good_row("a", Team=" Blue", Notes=None), good_row("b", Team="Red", Notes="late")])
    extras = validate_questionnaire(raw, "q", now=NOW).accepted["extras"].map(json.loads).tolist()
    assert extras == [{"team": " Blue", "notes": None}, {"team": "Red", "notes": "late"}]  # as written


def test_quarantine_rows_name_row_column_rule_and_value():
    raw = pd.DataFrame([good_row("ok"), good_row("bad", age=" 200 ", sex="dog"), good_row("ok2")])
    validated = validate_questionnaire(raw, "q", now=NOW)
    assert validated.quarantined.to_dict("records") == [
        {"row_number": 2, "column": "age", "rule": "must be between 16 and 100", "raw_value": "200"},
        {"row_number": 2, "column": "sex", "rule": "not one of: female, male, other, unknown", "raw_value": "dog"},
    ]
    assert validated.quarantined_rows == 1
    assert validated.accepted["row_number"].tolist() == [1, 3]
    assert validated.quarantined.dtypes.astype(str).tolist() == ["int64", "string", "string", "string"]


@pytest.mark.parametrize("padding", [" ", "\t", "\u00a0"])  # space, tab, no-break space
def test_answers_are_trimmed_and_blank_answers_are_missing(padding):
    raw = pd.DataFrame([good_row("a", occupation=f"{padding}Desk{padding}", neck_pain=padding * 2),
                        good_row("b")])
    accepted = validate_questionnaire(raw, "q", now=NOW).accepted
    assert accepted.loc[0, "occupation"] == "desk"
    assert pd.isna(accepted.loc[0, "neck_pain"])


def test_row_numbers_follow_the_frame_index():
    raw = pd.DataFrame([good_row("a"), good_row("b", age="x")], index=[41, 99])
    validated = validate_questionnaire(raw, "q", now=NOW)
    assert validated.accepted["row_number"].tolist() == [42]
    assert validated.quarantined["row_number"].tolist() == [100]


@pytest.mark.parametrize("imbalance", [None, "", "yes"])
def test_imbalance_may_be_absent_empty_or_filled(imbalance):
    row = good_row("a") if imbalance is None else good_row("a", imbalance=imbalance)
    label = validate_questionnaire(pd.DataFrame([row]), "q", now=NOW).accepted.loc[0, "imbalance"]
    if imbalance == "yes":
        assert label
    else:
        assert pd.isna(label)


def test_future_is_judged_against_the_current_time_by_default():
    raw = pd.DataFrame([good_row("a", submitted_at="2999-01-01"), good_row("b")])
    assert validate_questionnaire(raw, "q").reasons() == {"submitted_at: in the future": 1}


def test_timezone_aware_now_is_compared_in_utc():
    raw = pd.DataFrame([good_row("a", submitted_at="2025-06-01T11:30:00")])
    paris_now = pd.Timestamp("2025-06-01 13:00", tz="Europe/Paris")  # 11:00 UTC
    assert validate_questionnaire(raw, "q", now=paris_now).quarantined_rows == 1


@pytest.mark.parametrize("neighbour", ["2025-05-01T10:00:00", "2025-05-01T10:00:00.123456789",
                                       "2025-05-01T12:00:00+02:00", "2025-5-1"])
def test_a_submission_before_the_earliest_date_is_quarantined_whatever_the_other_rows(neighbour):
    """Year 1 and 1989 are too early, judged the same whether the column parses as a whole or row by row."""
    raw = pd.DataFrame([good_row("a", submitted_at="0001-01-01T00:00:00"),
                        good_row("b", submitted_at="1989-12-31T23:59:59"), good_row("c", submitted_at=neighbour)])
    validated = validate_questionnaire(raw, "q", now=NOW)
    assert validated.reasons() == {"submitted_at: before 1990-01-01": 2}
    assert list(validated.accepted["respondent_id"]) == ["c"]


def test_the_earliest_submission_date_is_a_setting(monkeypatch):
    monkeypatch.setenv("BALANCEIT_EARLIEST_SUBMITTED_AT", "2025-01-01")
    raw = pd.DataFrame([good_row("a", submitted_at="2024-12-31"), good_row("b", submitted_at="2025-01-01")])
    assert validate_questionnaire(raw, "q", now=NOW).reasons() == {"submitted_at: before 2025-01-01": 1}


def test_column_names_that_clash_after_normalising_refuse_the_file():
    raw = pd.DataFrame([["a", "b"]], columns=["Age", " age"])
    with pytest.raises(FileRefused, match="'age' appears more than once"):
        validate_questionnaire(raw, "q")


def test_duplicate_ids_are_named_in_the_refusal():
    raw = pd.DataFrame([good_row(f"id{i // 2}") for i in range(20)])
    with pytest.raises(FileRefused) as refused:
        validate_questionnaire(raw, "q.csv", now=NOW)
    assert str(refused.value) == ("q.csv: the same (respondent_id, submitted_at) appears more than once, "
                                  "for 10 ids: 'id0', 'id1', 'id2', 'id3', 'id4', ...")


def test_canonical_activity_keeps_non_wear_days_with_worn_false(tmp_path):
    path = tmp_path / "activity.csv"
    path.write_bytes(pd.DataFrame([
        activity_day("a", "2025-01-01"),
        activity_day("a", "2025-01-02", steps="0", sedentary="1440", light="0", fairly="0", very="0", calories="1500"),
        activity_day("a", "2025-01-03", steps="0", sedentary="1300", light="140", fairly="0", very="0"),
    ]).to_csv(index=False).encode())
    validated = load_activity(path, now=NOW)
    accepted = validated.accepted
    assert list(accepted.columns) == [*ACTIVITY_COLUMNS, "worn", "row_number", "extras"]
    assert accepted["worn"].tolist() == [True, False, True]
    assert accepted["date"].tolist() == list(pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]))
    assert accepted["steps"].dtype == "Int64" and accepted["respondent_id"].dtype == "string"


def test_fitbit_export_is_mapped_with_unpadded_dates_and_numeric_ids():
    raw = pd.DataFrame({
        "Id": ["1503960366", "1503960366", "1503960366"], "ActivityDate": ["4/2/2016", "04/12/2016", "13/1/2016"],
        "TotalSteps": ["100", "0", "5"], "TotalDistance": ["0.07", "0", "0"], "VeryActiveMinutes": ["0"] * 3,
        "FairlyActiveMinutes": ["0"] * 3, "LightlyActiveMinutes": ["10", "0", "1"],
        "SedentaryMinutes": ["1000", "1440", "9"],
        "Calories": ["1800", "1500", "1"],
    })
    validated = validate_activity(raw, "dailyActivity_merged.csv", now=NOW)
    assert_rows_add_up(validated)
    accepted = validated.accepted
    assert accepted["respondent_id"].tolist() == ["1503960366"] * 2
    assert accepted["date"].tolist() == [pd.Timestamp("2016-04-02"), pd.Timestamp("2016-04-12")]
    assert accepted["worn"].tolist() == [True, False]
    assert json.loads(accepted.loc[0, "extras"]) == {"totaldistance": "0.07"}
    assert validated.quarantined.to_dict("records") == [
        {"row_number": 3, "column": "date", "rule": "not a date", "raw_value": "13/1/2016"},
    ]


def test_fitbit_export_missing_a_column_is_refused():
    raw = pd.DataFrame({"Id": ["1"], "ActivityDate": ["4/2/2016"], "TotalSteps": ["1"]})
    with pytest.raises(FileRefused, match="missing required columns 'sedentary_minutes'"):
        validate_activity(raw, "dailyActivity_merged.csv", now=NOW)


def test_many_rows_validate_without_python_row_loops():
    n = 50_000
    rng = np.random.default_rng(3)
    raw = pd.DataFrame({
        "respondent_id": [f"r{i}" for i in range(n)], "submitted_at": "2025-01-02", "sex": "male",
        "age": rng.integers(10, 100, n).astype(str),
        "sitting_hours_per_day": rng.uniform(0, 30, n).round(1).astype(str),
    })
    validated = validate_questionnaire(raw, "q", now=NOW)
    assert_rows_add_up(validated)
    too_young = int((raw["age"].astype(int) < 16).sum())
    assert validated.reasons()["age: must be between 16 and 100"] == too_young
