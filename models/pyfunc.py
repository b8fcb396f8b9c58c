"""The registered model as an MLflow pyfunc: questionnaire rows in, risk and reasons out.

Loading `models:/balanceit-imbalance-risk@champion` gives the same answers as `balanceit score`
for the same rows: validation, the feature query and the explanations all run inside `predict`.
Bad rows get a per-row error (column and rule) instead of failing the whole request.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from balanceit.config import Settings
from balanceit.models.additive import AdditiveRiskModel


class RiskModel(mlflow.pyfunc.PythonModel):
    def __init__(self, model: AdditiveRiskModel, settings: Settings):
        self.model = model
        self.window_days = settings.activity_window_days
        self.low_band_below = settings.low_band_below
        self.high_band_from = settings.high_band_from

    def settings(self) -> Settings:
        return Settings(activity_window_days=self.window_days, low_band_below=self.low_band_below,
                        high_band_from=self.high_band_from)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from balanceit.models.score import score_raw_rows

        return score_raw_rows(self.model, model_input, self.settings())
