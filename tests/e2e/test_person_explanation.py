"""`explain` reads one person's stored submission and the risks stored for their batch, and writes nothing.

Runs on a copy of the shared demo workspace, so deleting stored features there leaves the others' alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from conftest import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(demo_workspace, tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("explain") / "workspace"
    shutil.copytree(demo_workspace[0], copy)
    return copy


def _people(home: Path) -> list[str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return [person for (person,) in con.execute(
            "SELECT DISTINCT respondent_id FROM scores ORDER BY respondent_id LIMIT 3").fetchall()]


def test_without_stored_features_the_explanation_is_computed_the_same_and_not_stored(workspace):
    people = _people(workspace)
    stored = [run(workspace, "explain", person) for person in people]
    with duckdb.connect(str(workspace / "warehouse.duckdb")) as con:
        con.execute("DELETE FROM features WHERE respondent_id IN (SELECT unnest($people))", {"people": people})
    assert [run(workspace, "explain", person) for person in people] == stored
    with duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM features WHERE respondent_id IN (SELECT unnest($people))",
                           {"people": people}).fetchone()[0] == 0


def test_standing_counts_the_others_below_by_their_stored_risks(workspace):
    person = _people(workspace)[0]
    explained = run(workspace, "explain", person)
    with duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True) as con:
        version = explained["model_version"]
        batch, own = con.execute("SELECT batch_id, risk FROM scores WHERE respondent_id = ? AND model_version = ?",
                                 [person, version]).fetchone()
        risks = con.execute("SELECT s.risk FROM batch_members m JOIN scores s USING (respondent_id, submitted_at) "
                            "WHERE m.batch_id = ? AND s.model_version = ?", [batch, version]).fetchnumpy()["risk"]
    assert explained["standing"]["people"] == len(risks)
    assert explained["standing"]["share_below"] == float(np.mean(risks < own))
