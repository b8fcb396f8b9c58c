"""Shared fixtures: synthetic scored populations and report contexts built from them with numpy."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from balanceit.features.catalogue import BY_NAME, CAUSES
from balanceit.models.metrics import calibration_bins
from balanceit.reports import aggregate

# Before anything imports Prefect: its temporary server's first start (database set-up) can take
# longer than Prefect's 20 s default on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

# The real public data sets live beside the repository (never in it); their tests skip where they are absent.
SHARED_DATA = Path(os.environ.get("BALANCEIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FITBIT = SHARED_DATA / "fitbit_fitabase_4.12.16-5.12.16" / "dailyActivity_merged.csv"
NHANES_P = SHARED_DATA / "nhanes_2017-2020_prepandemic_P"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


DRIVER_FEATURES = CAUSES[:6]  # the catalogue's causes a fixture person's drivers are drawn from
OCCUPATIONS = ("desk", "standing", "manual", "driving", "student", "retired")
EXERCISE_CHOICES = ("walking", "walking;yoga", "running;weightlifting", "cycling", "none", "swimming;pilates")


def build_scored(n: int, seed: int = 7) -> pd.DataFrame:
    """A scored frame of `n` people whose risk follows their answers, built with numpy only."""
    rng = np.random.default_rng(seed)
    sitting = np.clip(rng.gamma(6.0, 1.1, n), 0, 16).round(1)
    stretching = rng.integers(0, 8, n).astype(float)
    strength = rng.choice(["none", "balanced", "unbalanced"], n, p=[0.5, 0.3, 0.2])
    logit = -2.4 + 0.28 * sitting - 0.15 * stretching + 0.9 * (strength == "unbalanced") + rng.normal(0, 0.6, n)
    risk = 1 / (1 + np.exp(-logit))
    drivers = rng.permuted(np.tile(np.array(DRIVER_FEATURES, dtype=object), (n, 1)), axis=1)[:, :3]
    scored = pd.DataFrame({
        "respondent_id": [f"r{i:06d}" for i in range(n)],
        "risk": risk,
        "band": np.select([risk < 0.3, risk >= 0.6], ["low", "high"], default="moderate"),
        "occupation": rng.choice(OCCUPATIONS, n, p=[0.4, 0.15, 0.15, 0.1, 0.1, 0.1]),
        "sex": rng.choice(["female", "male", "other"], n, p=[0.5, 0.48, 0.02]),
        "age": rng.integers(16, 90, n),
        "sitting_hours_per_day": sitting,
        "exercise_types": rng.choice(EXERCISE_CHOICES, n).astype(object),
        "stretching_days_per_week": stretching,
        "strength_training": strength.astype(object),
        "driver_1": drivers[:, 0],
        "driver_2": drivers[:, 1],
        "driver_3": drivers[:, 2],
        "imbalance": rng.random(n) < risk,
    })
    unanswered = rng.random(n) < 0.05
    scored.loc[unanswered, "exercise_types"] = None
    return scored


def build_population_context(scored: pd.DataFrame, min_group_size: int = 10, **overrides: Any) -> dict[str, Any]:
    """A complete population report context computed from `scored` with aggregate.py, drivers in the
    catalogue's words."""
    n = len(scored)
    drivers = aggregate.top_drivers(scored)
    high_share = float((scored["band"] == "high").mean())
    high_se = (high_share * (1 - high_share) / max(n, 1)) ** 0.5
    shifted = scored.assign(sitting_hours_per_day=scored["sitting_hours_per_day"] + 3)
    context = {
        "title": "Workplace screening, spring 2025",
        "generated_at": datetime(2025, 6, 2, 9, 30, tzinfo=timezone.utc),
        "population": "Scored batch 'b-2025-06-01' from file spring-survey.csv",
        "min_group_size": min_group_size,
        "weighted": aggregate.survey_weights(scored) is not None,
        "summary": {
            "n": n,
            "mean_risk": aggregate.mean_risk(scored),
            "bands": aggregate.band_counts(scored).to_dict("records"),
        },
        "histogram": aggregate.risk_histogram(scored, min_group_size),
        "segments": aggregate.segment_tables(scored, min_group_size),
        "drivers": [
            {"label": BY_NAME[row.feature].label, "description": BY_NAME[row.feature].description,
             "modifiable": BY_NAME[row.feature].modifiable, "share_top3": row.share_top3,
             "share_first": row.share_first}
            for row in drivers.itertuples()
        ],
        "what_ifs": [
            {"label": "Stretch three days a week", "people_dropping_band": n // 8, "share": 0.125},
            {"label": "Take a movement break every hour", "people_dropping_band": n // 12, "share": 1 / 12},
        ],
        "model": {
            "version": "7", "alias": "champion", "run_id": "3f9c2a71d0b84e2c",
            "trained_at": "2025-05-30 02:00 UTC",
            "training_rows": 48_000,
            "metrics": {"roc_auc": 0.812, "pr_auc": 0.701, "brier": 0.171, "ece": 0.018},
            "calibration": calibration_bins(scored["imbalance"], scored["risk"]).to_dict("records"),
            "limits": [
                "balanceit is a screening aid, not a diagnosis.",
                "Trained on synthetic data shaped by published studies; real populations may differ.",
            ],
        },
        "data_quality": [{
            "file": "spring-survey.csv", "rows_read": n + 7, "accepted": n, "quarantined": 7,
            "reasons": {"age out of range 16-100": 4, "sex not an allowed value": 3},
        }],
        "drift": aggregate.drift_table(
            scored, shifted, ["sitting_hours_per_day", "stretching_days_per_week", "occupation"]
        ).to_dict("records"),
        "estimates": [
            {"name": "Share in the high band", "value": high_share,
             "ci_low": high_share - 1.96 * high_se, "ci_high": high_share + 1.96 * high_se},
            {"name": "Mean risk", "value": aggregate.mean_risk(scored), "ci_low": None, "ci_high": None},
        ],
        "band_cutoffs": {"moderate_from": 0.3, "high_from": 0.6},
    }
    return {**context, **overrides}


def build_person_context(**overrides: Any) -> dict[str, Any]:
    """One respondent's report context, as the explanation step would produce it."""
    context = {
        "respondent_id": "r000042",
        "submitted_at": "2025-06-01 14:05",
        "risk": 0.64,
        "band": "high",
        "summary": "Your answers put you in the high band, mainly because of long sitting and little stretching.",
        "drivers": [
            {"label": "Long sitting", "sentence": "You sit about 10 hours a day; more than 8 raises the risk.",
             "answers": [{"question": "Hours sitting per day", "value": "10"}], "contribution": 0.21},
            {"label": "Little stretching", "sentence": "You stretch on one day a week.",
             "answers": [{"question": "Stretching days per week", "value": "1"}], "contribution": 0.09},
            {"label": "Balanced strength training", "sentence": "You train opposing muscles alike, which helps.",
             "answers": [{"question": "Strength training", "value": "balanced"}], "contribution": -0.06},
        ],
        "signs": ["You report occasional neck pain, which often goes with forward head posture."],
        "missing_answers": ["Movement breaks per day"],
        "what_ifs": [
            {"label": "stretched three days a week", "risk_before": 0.64, "risk_after": 0.55},
            {"label": "sat two hours less a day", "risk_before": 0.64, "risk_after": 0.51},
        ],
        "recommendations": [
            {"title": "Break up long sitting", "text": "Stand up and move for two minutes every half hour."},
            {"title": "Stretch after exercise", "text": "Hold each stretch for 30 seconds, three days a week."},
        ],
        "model_version": "7 (champion)",
    }
    return {**context, **overrides}


@pytest.fixture
def make_scored() -> Callable[..., pd.DataFrame]:
    return build_scored


@pytest.fixture
def make_population_context() -> Callable[..., dict[str, Any]]:
    return build_population_context


@pytest.fixture
def make_person_context() -> Callable[..., dict[str, Any]]:
    return build_person_context


DEMO_ROWS = 4000


def run(home: Path, *args: str, expect: int = 0) -> dict:
    """Run a balanceit command in this process with --json and return its JSON object."""
    from typer.testing import CliRunner

    from balanceit.cli import app

    result = CliRunner().invoke(app, ["--home", str(home), *args, "--json"])
    assert result.exit_code == expect, result.output + repr(result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> tuple[Path, dict]:
    """One demo run shared by the end-to-end tests (Prefect starts once per test process)."""
    home = tmp_path_factory.mktemp("workspace")
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect")))
    return home, run(home, "demo", "--rows", str(DEMO_ROWS))


@pytest.fixture(scope="module")
def own_mlflow_store():
    """Each module that asks for it uses its own MLflow stores and leaves none behind for others.

    `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI into os.environ, which the processes
    started from there (Dask workers, subprocesses) would inherit as the user's tracking server.
    """
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


def labelled_features(con, settings, batch_id: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training set computed in this process, the reference the partitioned path is checked against:
    every labelled answer in the warehouse (or in one batch) and its features; all selected features stored."""
    from balanceit.features.build import compute_features
    from balanceit.features.store import only_labelled, selected_answers
    from balanceit.warehouse import upsert_frame

    answers = selected_answers(con, batch_id)
    features = compute_features(con, answers, "activity", settings.activity_window_days)
    upsert_frame(con, "features", features, ("respondent_id", "submitted_at"))
    return only_labelled(answers, features)
