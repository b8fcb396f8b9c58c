"""Reading files of every format into text columns, and refusing what cannot be parsed."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from bad_files import NOW

from balanceit.data.readers import FileRefused, read_table
from balanceit.data.validation import validate_questionnaire

TEXT_WITH_QUIRKS = 'ID , Age,Note\r\n007,30,"a, quoted\nvalue"\n8,,\n'


def test_csv_is_read_as_text_with_normalised_names(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(TEXT_WITH_QUIRKS, encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == ["id", "age", "note"]
    assert (frame.dtypes == "string").all()
    assert frame["id"].tolist() == ["007", "8"]  # leading zeros kept: nothing is guessed
    assert frame["note"].iloc[0] == "a, quoted\nvalue"
    assert frame[["age", "note"]].iloc[1].isna().all()  # empty cell -> missing


@pytest.mark.parametrize("name", ["q.CSV", "q.Csv.Gz", "q.JSONL", "q.ndjson", "q.json", "q.PARQUET"])
def test_format_is_chosen_by_extension_in_any_case(tmp_path, name):
    path = tmp_path / name
    frame = pd.DataFrame({"ID ": ["007", "8"], "Age": ["30", None]}, dtype="string")
    lowered = name.lower()
    if lowered.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif lowered.endswith(".gz"):
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    elif lowered.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        path.write_text(frame.to_json(orient="records", lines=True))
    read = read_table(path)
    expected = pd.DataFrame({"id": ["007", "8"], "age": ["30", None]}, dtype="string")
    pd.testing.assert_frame_equal(read, expected)


def test_header_only_is_zero_rows(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b"\xef\xbb\xbfRespondent_ID,Age\n")
    frame = read_table(path)
    assert frame.empty and list(frame.columns) == ["respondent_id", "age"]


def test_typed_json_and_parquet_values_become_their_text(tmp_path):
    json_path = tmp_path / "q.jsonl"
    json_path.write_text('{"id": 7, "weight": 61.5, "ok": true, "note": null}\n'
                         '{"id": "x8", "weight": "n/a", "ok": false}\n')
    assert read_table(json_path).to_dict("list") == {
        "id": ["7", "x8"], "weight": ["61.5", "n/a"], "ok": ["True", "False"], "note": [None, None],
    }
    parquet_path = tmp_path / "q.parquet"
    typed = pd.DataFrame({"id": [7], "weight": [61.5], "ok": [True], "at": [pd.Timestamp("2025-01-02 10:00")]})
    typed.to_parquet(parquet_path)
    assert read_table(parquet_path).iloc[0].tolist() == ["7", "61.5", "true", "2025-01-02 10:00:00.000000"]


def test_typed_parquet_validates_like_text(tmp_path):
    typed = pd.DataFrame({"Respondent_ID": ["r1"], "Submitted_At": [pd.Timestamp("2025-01-03 10:00")], "AGE": [61],
                          "sex": ["Male"], "sitting_hours_per_day": [4.0], "stretches_before_exercise": [True]})
    path = tmp_path / "q.parquet"
    typed.to_parquet(path, index=False)
    validated = validate_questionnaire(read_table(path), str(path), now=NOW)
    assert validated.quarantined.empty
    accepted = validated.accepted.iloc[0]
    assert accepted[["submitted_at", "age", "sitting_hours_per_day", "stretches_before_exercise"]].tolist() == [
        pd.Timestamp("2025-01-03 10:00"), 61, 4.0, True]


@pytest.mark.parametrize("name, content, problem", [
    ("q.csv", b"", "file is empty"),
    ("q.parquet", b"", "file is empty"),
    ("q.jsonl", b"", "file is empty"),
    ("q.csv.gz", gzip.compress(b""), "file is empty"),
    ("q.csv", b"\x00\x01\x02,\x03\n", "binary data"),
    ("q.csv", "name\n\u00e9t\u00e9\n".encode("latin-1"), "cannot be read"),
    ("q.csv", "\ufeffa,b\n".encode("utf-16"), "cannot be read"),
    ("q.csv", b"a,b\n1,2,3\n", "cannot be read"),
    ("q.csv.gz", b"not gzip at all", "cannot be read"),
    ("q.parquet", b"PAR1 but not really parquet", "cannot be read"),
    ("q.jsonl", b'{"a": 1}\n{"a": 2\n', "cannot be read"),
    ("q.json", b'[{"a": 1}, {"a": 2}]', "not JSON Lines"),
    ("q.jsonl", b"[1, 2]\n[3, 4]\n", "each line must be a JSON object"),
    ("q.xlsx", b"PK\x03\x04", "unsupported file type"),
    ("q.csv", b"Age,age \n1,2\n", "column 'age' appears more than once"),
])
def test_unparseable_files_are_refused(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileRefused) as refused:
        read_table(path)
    assert problem in refused.value.problem
    assert refused.value.file == str(path)


def test_nested_parquet_column_is_refused_naming_it(tmp_path):
    path = tmp_path / "q.parquet"
    pd.DataFrame({"id": ["a"], "tags": [["x", "y"]]}).to_parquet(path)
    with pytest.raises(FileRefused) as refused:
        read_table(path)
    assert refused.value.column == "tags"
