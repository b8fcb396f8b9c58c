"""All configuration in one typed place.

Every setting has a default that works on a laptop; each can be overridden with an environment
variable named `BALANCEIT_<SETTING>` (for example `BALANCEIT_HOME=/data/balanceit`).
Paths are derived from `home`, so one folder holds all state.
"""

from __future__ import annotations

import os
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    import numpy as np


# A team's tracking server, as the user set it. Read once at import: `mlflow.set_tracking_uri`
# writes MLFLOW_TRACKING_URI into the environment, which must not leak one workspace into the next.
_USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def masked_uri(uri: str) -> str:
    """`uri` fit to print or store: a password in it (`http://user:pass@host`) is replaced by `***`."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BALANCEIT_", frozen=False)

    home: Path = Field(default=Path(".balanceit"), description="Workspace folder holding all state.")

    # Risk bands: risk < low_band_below is "low", risk >= high_band_from is "high", else "moderate".
    low_band_below: float = 0.30
    high_band_from: float = 0.60

    # Privacy: population tables never show a group smaller than this.
    min_group_size: int = 10

    # Reweighting a batch to a target population (`report population --target`): raking keeps every
    # weight under this many times the median weight where the margins allow it, and the report warns
    # when the weighted batch's effective sample size is below the minimum.
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
    # Label sanity before training (data/labels.py): a file's label rate may differ from the reference
    # set's by at most this much, and a known association (more sitting, less stretching -> more
    # imbalance) may not be reversed by a correlation stronger than this (nor than 3/sqrt(rows)).
    label_rate_tolerance: float = 0.15
    label_contradiction_correlation: float = 0.05

    # Schedules for `balanceit serve`.
    retrain_cron: str = "0 2 * * *"
    inbox_interval_minutes: int = 15

    # Features: wearable days before submission that count.
    activity_window_days: int = 28

    # Scoring works on partitions of this many rows (one task each).
    rows_per_partition: int = 250_000

    # Where partition tasks run (see flows/cluster.py): None = in this process (Prefect's default
    # task runner, nothing from Dask imported); "local:N" = a Dask LocalCluster of N worker
    # processes started for the run, bound to 127.0.0.1; "tcp://HOST:PORT" = an existing scheduler.
    cluster: str | None = None
    # Folder for partition files that every Dask worker can read and write: a shared mount or any
    # fsspec URL (s3://bucket/balanceit, gs://..., abfs://...; the protocol's fsspec package must be
    # installed where the flow and the workers run); None = `<home>/partitions`, which is enough for
    # a LocalCluster on this machine.
    shared_path: str | None = None

    @cached_property
    def root(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.root / "warehouse.lock"

    @property
    def mlflow_db_path(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return _USER_TRACKING_URI or f"sqlite:///{self.mlflow_db_path}"

    @property
    def mlflow_artifacts_path(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def reports_path(self) -> Path:
        return self.root / "reports"

    @property
    def inbox_path(self) -> Path:
        return self.root / "inbox"

    @property
    def partitions_path(self) -> Path:
        return self.root / "partitions"

    @property
    def exports_path(self) -> Path:
        return self.root / "exports"

    def ensure_dirs(self) -> None:
        for folder in (self.root, self.mlflow_artifacts_path, self.prefect_home, self.reports_path,
                       self.inbox_path, self.inbox_path / "done", self.exports_path):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def bands(self, risk: np.ndarray) -> np.ndarray:
        """The band of every risk: the one place the cut-offs are applied (NaN falls in "moderate")."""
        import numpy as np  # here, so that `balanceit --help` loads no NumPy

        return np.where(risk < self.low_band_below, "low", np.where(risk >= self.high_band_from, "high", "moderate"))


def load_settings(home: Path | None = None) -> Settings:
    """Settings from the environment, with `home` (from `--home`) taking precedence."""
    settings = Settings() if home is None else Settings(home=home)
    settings.ensure_dirs()
    return settings
