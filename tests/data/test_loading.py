"""Loading into the warehouse: lineage, never twice, all or nothing, one writer at a time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from filelock import FileLock

import balanceit.data.load as load
from balanceit.config import Settings
from balanceit.data.load import ingest
from balanceit.data.synthetic import generate
from balanceit.warehouse import open_warehouse, upsert_frame


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(home=tmp_path / "ws")
    settings.root.mkdir()
    return settings


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("survey")
    population = generate(500, seed=2, labelled=True)
    population.questionnaire.to_csv(folder / "survey.csv", index=False)
    return folder / "survey.csv"


def count(settings: Settings, sql: str) -> int:
    with open_warehouse(settings) as con:
        return con.execute(sql).fetchone()[0]


def test_lineage_is_recorded_and_the_same_content_is_a_no_op(settings, survey, tmp_path):
    with open_warehouse(settings) as con:
        first = ingest(con, survey, "questionnaire")
        renamed = tmp_path / "same-content-other-name.csv"
        renamed.write_bytes(survey.read_bytes())
        second = ingest(con, renamed, "questionnaire")
        lineage = con.execute("SELECT file, sha256, kind, rows_read, accepted, quarantined, status, "
                              "started_at <= finished_at FROM ingestions").fetchall()
    assert first.status == "loaded" and first.accepted == 500
    assert second.status == "already_loaded" and "nothing to do" in second.message
    assert len(lineage) == 1
    file, sha, kind, rows_read, accepted, quarantined, status, ordered = lineage[0]
    assert (kind, rows_read, accepted, quarantined, status, ordered) == ("questionnaire", 500, 500, 0, "loaded", True)
    assert len(sha) == 64 and file == str(survey)
    assert count(settings, "SELECT count(*) FROM questionnaire") == 500


def test_a_revised_file_replaces_the_rows_it_repeats_and_keeps_one_row_per_key(settings, survey, tmp_path):
    answers = generate(500, seed=2, labelled=True)
    revised_answers = answers.questionnaire.iloc[300:].assign(occupation="manual")
    revised_days = answers.activity.iloc[len(answers.activity) // 2:].assign(steps=12345)
    revised_answers.to_csv(tmp_path / "survey-revised.csv", index=False)
    answers.activity.to_csv(tmp_path / "days.csv", index=False)
    revised_days.to_csv(tmp_path / "days-revised.csv", index=False)
    with open_warehouse(settings) as con:
        for path, kind in [(survey, "questionnaire"), (tmp_path / "survey-revised.csv", "questionnaire"),
                           (tmp_path / "days.csv", "activity"), (tmp_path / "days-revised.csv", "activity")]:
            assert ingest(con, path, kind).status == "loaded"
        repeated = con.execute("""
            SELECT (SELECT count(*) FROM (SELECT 1 FROM questionnaire GROUP BY respondent_id, submitted_at
                                          HAVING count(*) > 1)),
                   (SELECT count(*) FROM (SELECT 1 FROM activity GROUP BY respondent_id, date HAVING count(*) > 1))
        """).fetchone()
        rows = con.execute("SELECT (SELECT count(*) FROM questionnaire), "
                           "(SELECT count(*) FILTER (occupation = 'manual') FROM questionnaire), "
                           "(SELECT count(*) FROM activity), (SELECT count(*) FILTER (steps = 12345) FROM activity)"
                           ).fetchone()
    assert repeated == (0, 0)
    assert rows[0] == 500 and rows[1] >= 200
    assert rows[2] == len(answers.activity) and rows[3] == len(revised_days)


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_crash_mid_load_leaves_nothing_and_a_rerun_completes(settings, survey, monkeypatch, interruption):
    real_record_batch = load._record_batch

    def crash_after_rows_were_written(*args, **kwargs):
        raise interruption

    monkeypatch.setattr(load, "_record_batch", crash_after_rows_were_written)
    with open_warehouse(settings) as con, pytest.raises(type(interruption)):
        ingest(con, survey, "questionnaire")
    assert count(settings, "SELECT count(*) FROM questionnaire") == 0
    assert count(settings, "SELECT count(*) FROM ingestions") == 0

    monkeypatch.setattr(load, "_record_batch", real_record_batch)
    with open_warehouse(settings) as con:
        assert ingest(con, survey, "questionnaire").status == "loaded"
    assert count(settings, "SELECT count(*) FROM questionnaire") == 500
    assert count(settings, "SELECT count(*) FROM batch_members") == 500


@pytest.mark.slow
def test_a_second_command_waits_for_the_first(settings, survey):
    held = threading.Event()

    def hold_the_workspace_for_three_seconds() -> None:
        with FileLock(str(settings.lock_path)):
            held.set()
            time.sleep(3.0)

    holder = threading.Thread(target=hold_the_workspace_for_three_seconds)
    holder.start()
    held.wait()
    started = time.monotonic()
    second_command = (
        "import sys; from pathlib import Path; from balanceit.config import Settings; "
        "from balanceit.data.load import ingest; from balanceit.warehouse import open_warehouse\n"
        "with open_warehouse(Settings(home=Path(sys.argv[1]))) as con: print(ingest(con, sys.argv[2], 'questionnaire'))")
    process = subprocess.run([sys.executable, "-c", second_command, str(settings.root), str(survey)],
                             capture_output=True, text=True, timeout=300)
    holder.join()
    assert process.returncode == 0, process.stderr
    assert "waiting" in process.stderr
    assert time.monotonic() - started >= 3.0
    assert count(settings, "SELECT count(*) FROM questionnaire") == 500


def test_a_busy_workspace_fails_clearly_after_the_wait(settings):
    with FileLock(str(settings.lock_path)):
        with pytest.raises(RuntimeError, match="still busy"), open_warehouse(settings, wait_seconds=0.5):
            pass


def test_the_warehouse_stays_readable_after_refused_and_bad_files(settings, tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff\xfe binary \x00 garbage")
    with open_warehouse(settings) as con:
        refused = ingest(con, garbage, "questionnaire")
    assert refused.status == "refused" and "garbage.csv" in refused.message
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ingestions").fetchone()[0] == 0


def test_results_of_an_earlier_warehouse_are_upgraded_once_and_rescoring_keeps_one_row_per_key(settings):
    """A warehouse from before results lost their index and drivers moved into `scores` opens with its drivers
    intact (read through the `explanations` view), and an upsert of rows it already holds replaces them (the
    index made re-registering a batch ten times slower)."""
    legacy = duckdb.connect(str(settings.warehouse_path))
    legacy.execute("""CREATE TABLE scores (respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL,
        batch_id VARCHAR NOT NULL, model_version VARCHAR NOT NULL, risk DOUBLE NOT NULL, band VARCHAR NOT NULL,
        scored_at TIMESTAMP, PRIMARY KEY (respondent_id, submitted_at, model_version))""")
    legacy.execute("""CREATE TABLE explanations (respondent_id VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL,
        model_version VARCHAR NOT NULL, kind VARCHAR NOT NULL, rank INTEGER NOT NULL, feature VARCHAR,
        contribution DOUBLE, sentence VARCHAR, answers VARCHAR,
        PRIMARY KEY (respondent_id, submitted_at, model_version, kind, rank))""")
    legacy.execute("INSERT INTO scores VALUES ('p1', '2026-01-01', 'b1', '1', 0.5, 'moderate', NULL), "
                   "('p3', '2026-01-01', 'b1', '1', 0.2, 'low', NULL)")
    legacy.execute("INSERT INTO explanations VALUES ('p1', '2026-01-01', '1', 'driver', 1, 'sitting_hours', 0.4, "
                   "NULL, 'sitting 10 h'), ('p1', '2026-01-01', '1', 'driver', 2, 'stretching', 0.1, NULL, NULL)")
    legacy.close()
    rescored = pd.DataFrame({"respondent_id": ["p1", "p2"], "submitted_at": pd.to_datetime(["2026-01-01"] * 2),
                             "batch_id": "b1", "model_version": "1", "risk": [0.7, 0.1], "band": ["high", "low"],
                             "scored_at": pd.Timestamp("2026-01-02")})
    with open_warehouse(settings) as con:
        keys = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'scores' "
                           "AND constraint_type = 'PRIMARY KEY'").fetchone()[0]
        drivers = con.execute("SELECT respondent_id, rank, feature, contribution, answers FROM explanations "
                              "ORDER BY ALL").fetchall()
        columns = con.execute("SELECT driver_1, driver_2_contribution, driver_3 FROM scores "
                              "WHERE respondent_id = 'p1'").fetchall()
    for _ in range(2):  # opened again, it is left as it is
        with open_warehouse(settings) as con:
            upsert_frame(con, "scores", rescored, ("respondent_id", "submitted_at", "model_version"))
            rows = con.execute("SELECT respondent_id, risk FROM scores ORDER BY respondent_id").fetchall()
    assert keys == 0
    assert drivers == [("p1", 1, "sitting_hours", 0.4, "sitting 10 h"), ("p1", 2, "stretching", 0.1, None)]
    assert columns == [("sitting_hours", 0.1, None)]
    assert rows == [("p1", 0.7), ("p2", 0.1), ("p3", 0.2)]


def test_a_batch_loaded_after_a_small_one_rewrites_none_of_the_rows_already_stored(settings, tmp_path):
    """DuckDB's vacuum merged the small row group a 1,000-row batch leaves at a table's end into its neighbours
    when the next batch committed, rewriting rows already stored (0.8 s more for a 100,000-row batch scored after a
    1,000-row one): the blocks that hold earlier batches stay as they were."""
    people = generate(61_000, seed=3, labelled=False).questionnaire
    files = {}
    for name, rows in (("first", people.iloc[:30_000]), ("small", people.iloc[30_000:31_000]),
                       ("next", people.iloc[31_000:])):
        files[name] = tmp_path / f"{name}.csv"
        rows.to_csv(files[name], index=False)

    def stored_blocks() -> set[tuple]:
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            return set(con.execute("SELECT column_id, block_id, block_offset FROM pragma_storage_info('questionnaire') "
                                   "WHERE block_id >= 0").fetchall())

    for name in ("first", "small"):
        with open_warehouse(settings) as con:
            ingest(con, files[name], "questionnaire")
    before = stored_blocks()
    with open_warehouse(settings) as con:
        ingest(con, files["next"], "questionnaire")
    assert before and before <= stored_blocks()
