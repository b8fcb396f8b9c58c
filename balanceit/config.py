"""All configuration in one typed place: every setting has a default that works on a laptop and an
environment variable `BALANCEIT_<SETTING>` to override it; paths derive from `home`, one folder for all state.
"""

from __future__ import annotations

import os
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    import numpy as np


@cache
def user_tracking_uri() -> str | None:
    """A team's tracking server, as the user set it. Read once, at first use: `mlflow.set_tracking_uri`
    then writes MLFLOW_TRACKING_URI into the environment, which must not leak one workspace into the next."""
    return os.environ.get("MLFLOW_TRACKING_URI")


def masked_uri(uri: str) -> str:
    """`uri` fit to print or store: a password in it (`http://user:pass@host`) is replaced by `***`."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _InWorkspace:
    """A file or folder of the workspace as a read-only attribute, so every path derives from `home`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, settings: Settings, owner: type[Settings]) -> Path:
        return settings.root / self.name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BALANCEIT_", frozen=True, ignored_types=(_InWorkspace,))

    home: Path = Field(default=Path(".balanceit"), description="Workspace folder holding all state.")

    # Risk bands: risk < low_band_below is "low", risk >= high_band_from is "high", else "moderate".
    low_band_below: float = 0.30
    high_band_from: float = 0.60

    # Privacy: population tables never show a group smaller than this.
    min_group_size: int = 10

    # Reweighting to a target population (`report population --target`): raking keeps every weight under
    # this many times the median where the margins allow; the report warns below this effective sample size.
    reweight_trim_ratio: float = 10.0
    reweight_min_effective_size: int = 100

    # Validation: a questionnaire row submitted before this date is quarantined (typos, placeholders).
    earliest_submitted_at: date = date(1990, 1, 1)

    # Model training and the promotion gate.
    registered_model_name: str = "balanceit-imbalance-risk"
    experiment_name: str = "balanceit"
    cv_folds: int = 5
    holdout_fraction: float = 0.2
    random_seed: int = 42
    promotion_auc_tolerance: float = 0.002
    promotion_brier_tolerance: float = 0.002
    # Label sanity before training (data/labels.py): a file's label rate may differ from the reference set's
    # by at most this, and a correlation above this (and 3/sqrt(rows)) may not reverse a known association.
    label_rate_tolerance: float = 0.15
    label_contradiction_correlation: float = 0.05

    # Schedules for `balanceit serve`.
    retrain_cron: str = "0 2 * * *"
    inbox_interval_minutes: int = 15

    # Features: wearable days before submission that count.
    activity_window_days: int = 28

    # Scoring and feature building work on partitions of this many rows, one task each; in this process at most
    # one per core at a time, so that memory holds no more than that many partitions.
    rows_per_partition: int = 250_000

    # Where partition tasks run (flows/cluster.py): None = in this process, "local:N" = a Dask
    # LocalCluster of N worker processes, "tcp://HOST:PORT" = an existing scheduler.
    cluster: str | None = None
    # Partition files, readable and writable by every Dask worker: a shared folder or an fsspec URL
    # (s3://..., gs://..., abfs://...); None = `<home>/partitions`, enough for a LocalCluster.
    shared_path: str | None = None

    @cached_property
    def root(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def mlflow_tracking_uri(self) -> str:
        return user_tracking_uri() or f"sqlite:///{self.root / 'mlflow.db'}"

    warehouse_path = _InWorkspace("warehouse.duckdb")
    lock_path = _InWorkspace("warehouse.lock")
    mlflow_artifacts_path = _InWorkspace("mlartifacts")
    prefect_home = _InWorkspace("prefect")
    reports_path = _InWorkspace("reports")
    inbox_path = _InWorkspace("inbox")
    partitions_path = _InWorkspace("partitions")
    exports_path = _InWorkspace("exports")

    def bands(self, risk: np.ndarray) -> np.ndarray:
        """The band of every risk: the one place the cut-offs are applied (NaN falls in "moderate")."""
        import numpy as np  # here, so that `balanceit --help` loads no NumPy

        return np.where(risk < self.low_band_below, "low", np.where(risk >= self.high_band_from, "high", "moderate"))


def load_settings(home: str | Path | None = None, cluster: str | None = None) -> Settings:
    """Settings from the environment, with `home` (`--home`) and `cluster` (`--cluster`) taking precedence.

    Resolved once where a run starts (the command line, a deployment, the pyfunc) and passed on as it
    is; nothing is created here: each folder is made where something is written into it."""
    given = {"home": Path(home) if home else None, "cluster": cluster or None}
    return Settings(**{name: value for name, value in given.items() if value is not None})
