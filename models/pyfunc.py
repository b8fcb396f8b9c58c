"""The registered model as an MLflow pyfunc: questionnaire rows in, risk and reasons out.

Loading `models:/balanceit-imbalance-risk@champion` gives the same answers as `balanceit score`
for the same rows: validation, the features and the explanations all run inside `predict`.
Bad rows get a per-row `error` (column and rule) instead of failing the whole request. The code
that does this is copied into the model (`code_paths`), so loading needs no checkout of balanceit.
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
from balanceit.data.contract import QUESTIONNAIRE
from balanceit.models.additive import AdditiveRiskModel

# The packages scoring needs, by import name; copied as balanceit/<name> into the model.
SCORING_PACKAGES = ("data", "features", "models")
# Set by `mlflow models serve` for its scoring server, and only there (mlflow.pyfunc.scoring_server).
SERVING_PROCESS_VARIABLE = "__pyfunc_model_path__"


class RiskModel(mlflow.pyfunc.PythonModel):
    def __init__(self, model: AdditiveRiskModel, settings: Settings, warm_up_rows: pd.DataFrame | None = None):
        self.model = model
        self.window_days = settings.activity_window_days
        self.low_band_below = settings.low_band_below
        self.high_band_from = settings.high_band_from
        self.warm_up_rows = warm_up_rows

    def load_context(self, context) -> None:
        """Score the warm-up rows once, and in a scoring server freeze the heap loading has built.

        The first prediction imports the scoring code and fills caches (~1 s): it belongs to loading,
        not to a user's first request. A scoring server lives to serve this model, so what exists
        after loading (~700k objects) stays until the process ends, yet every full garbage
        collection walks it all: one request in ~200 was held up by 100-340 ms. Frozen, those objects
        are left out of collections. Anywhere else (a notebook, the nightly flow) the heap is not
        touched: objects frozen there would never be collected.
        """
        if getattr(self, "warm_up_rows", None) is not None:  # models logged before warm-up rows have none
            self.predict(context, self.warm_up_rows)
        self.serving = bool(os.environ.get(SERVING_PROCESS_VARIABLE))
        if self.serving:
            refuse_json_too_deep_to_read()
            gc.collect()
            gc.freeze()

    def settings(self) -> Settings:
        return Settings(activity_window_days=self.window_days, low_band_below=self.low_band_below,
                        high_band_from=self.high_band_from)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """`score_raw_rows`; in a scoring server a missing value is None, which the answer's JSON writes
        as null: MLflow would write NaN (a what-if that does not apply, a row not scored), which is not
        JSON, and strict parsers (a browser's JSON.parse) refuse the whole answer."""
        from balanceit.models.score import score_raw_rows

        scored = score_raw_rows(self.model, model_input, self.settings())
        return scored.astype(object).where(scored.notna(), None) if getattr(self, "serving", False) else scored


def refuse_json_too_deep_to_read() -> None:
    """In the scoring server, answer 400 with one line to a JSON body nested too deeply to parse.

    MLflow's server (3.17) turns a body `json.loads` cannot decode into a 400, but only for
    JSONDecodeError and UnicodeDecodeError: nesting deeper than the interpreter's recursion limit
    raises RecursionError, which nothing catches, and the server answers 500 with no reason. There is
    no supported hook before the body is parsed (the model only ever sees the parsed rows), so the
    server's one decoding function is wrapped here, in the serving process only.
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

    They are not the signature's inputs: MLflow enforces a named input schema by keeping only the
    columns spelt exactly as declared, so ` Sex ` or `AGE` (which the contract accepts, matching names
    case-insensitively and trimmed) would be dropped, and a request with only unknown columns would
    lose its rows. With no input schema the rows reach `predict` whole and validation answers each one.
    """
    from balanceit.models.score import REQUEST_COLUMNS

    specs = {c.name: c for c in QUESTIONNAIRE}
    return [{key: list(value) if isinstance(value, tuple) else value
             for key, value in asdict(specs[name]).items() if value is not None}
            for name in REQUEST_COLUMNS]


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
