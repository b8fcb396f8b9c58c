"""The registered model as an MLflow pyfunc: questionnaire rows in, risk and reasons out.

It answers as `balanceit score` does for the same rows (validation, features and explanations run in
`predict`); a bad row gets an `error` (column and rule) instead of failing the request. The code is
copied into the model (`code_paths`), so loading needs no checkout of balanceit.
"""

from __future__ import annotations

import gc
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from balanceit.config import Settings
from balanceit.data.contract import ANSWER_COLUMNS, QUESTIONNAIRE_SPECS
from balanceit.models.additive import AdditiveRiskModel

# The packages scoring needs, by import name; copied as balanceit/<name> into the model.
SCORING_PACKAGES = ("data", "features", "models")
# Set by `mlflow models serve` for its scoring server, and only there (mlflow.pyfunc.scoring_server).
SERVING_PROCESS_VARIABLE = "__pyfunc_model_path__"


class RiskModel(mlflow.pyfunc.PythonModel):
    """The additive model with the settings scoring reads (window, band cut-offs) as plain values, which
    every version has pickled alike; a `Settings` is built from them once, when the model is loaded."""

    def __init__(self, model: AdditiveRiskModel, settings: Settings, warm_up_rows: pd.DataFrame | None = None):
        self.model = model
        self.window_days = settings.activity_window_days
        self.low_band_below = settings.low_band_below
        self.high_band_from = settings.high_band_from
        self.warm_up_rows = warm_up_rows

    def load_context(self, context) -> None:
        """Resolve the settings, score the warm-up rows once, and in a scoring server freeze the heap.

        The first prediction imports the scoring code and fills caches (~1 s): it belongs to loading,
        not to a user's first request. A scoring server's objects after loading (~700k) live until it
        ends, yet every full garbage collection walked them all (one request in ~200 held up by
        100-340 ms); frozen, collections skip them. Elsewhere (a notebook, the nightly flow) the heap is
        not touched: objects frozen there would never be collected.
        """
        self.scoring_settings = self._settings()
        if getattr(self, "warm_up_rows", None) is not None:  # models logged before warm-up rows have none
            self.predict(context, self.warm_up_rows)
        self.serving = bool(os.environ.get(SERVING_PROCESS_VARIABLE))
        if self.serving:
            refuse_json_too_deep_to_read()
            gc.collect()
            gc.freeze()

    def _settings(self) -> Settings:
        return Settings(activity_window_days=self.window_days, low_band_below=self.low_band_below,
                        high_band_from=self.high_band_from)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """`score_raw_rows`; in a scoring server a missing value is None (JSON null): MLflow would write NaN,
        which is not JSON, and strict parsers (a browser's JSON.parse) refuse the whole answer."""
        from balanceit.models.score import score_raw_rows

        settings = self.__dict__.get("scoring_settings") or self._settings()  # not yet loaded: while logging
        scored = score_raw_rows(self.model, model_input, settings)
        return scored.astype(object).where(scored.notna(), None) if getattr(self, "serving", False) else scored


def refuse_json_too_deep_to_read() -> None:
    """In the scoring server, answer 400 with one line to a JSON body nested too deeply to parse.

    MLflow's server (3.17) answers 400 to JSONDecodeError and UnicodeDecodeError only: a RecursionError
    from deep nesting became a 500 with no reason. With no hook before the body is parsed, the server's
    one decoding function is wrapped, in the serving process only.
    """
    from mlflow.pyfunc import scoring_server
    from mlflow.utils.proto_json_utils import MlflowInvalidInputException

    decode = scoring_server._decode_json_input
    if getattr(decode, "refuses_deep_json", False):
        return

    def decode_or_refuse(json_input):
        try:
            return decode(json_input)
        except RecursionError:
            raise MlflowInvalidInputException("the request's JSON is nested too deeply to read") from None

    decode_or_refuse.refuses_deep_json = True
    scoring_server._decode_json_input = decode_or_refuse


def request_contract() -> list[dict]:
    """The contract's request columns with their type, range and allowed values, for the model's metadata.

    Not the signature's inputs: a named input schema keeps only columns spelt exactly as declared, so
    ` Sex ` or `AGE` (which the contract accepts) would be dropped. Without one, rows reach `predict`
    whole and validation answers each one.
    """
    return [{key: list(value) if isinstance(value, tuple) else value
             for key, value in asdict(QUESTIONNAIRE_SPECS[name]).items() if value is not None}
            for name in ANSWER_COLUMNS]


def package_code(folder: Path) -> Path:
    """Copy the scoring code into `folder/balanceit` (a plain package tree) for `code_paths`."""
    import balanceit

    target = folder / "balanceit"
    source_root = Path(balanceit.__path__[0])
    target.mkdir(parents=True)
    for name in ("__init__.py", "config.py", "warehouse.py"):
        shutil.copy(source_root / name, target / name)
    for package in SCORING_PACKAGES:
        module = __import__(f"balanceit.{package}", fromlist=["__path__"])
        shutil.copytree(Path(module.__path__[0]), target / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target
