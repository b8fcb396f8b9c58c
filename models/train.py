"""Training: candidates compared on the same folds, the chosen one refit and measured on held-out rows.

Only additive candidates can be chosen (explanations must be exact and cheap); a gradient-boosted peer
is fitted alongside so every run records how the chosen model compares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from balanceit.config import Settings
from balanceit.features.catalogue import model_columns, model_input
from balanceit.models.additive import AdditiveRiskModel
from balanceit.models.metrics import classification_metrics, subgroup_metrics

EXPLAINABLE = ("additive_spline", "logistic_linear")


class FillEmptyColumns(TransformerMixin, BaseEstimator):
    """Fill columns that had no value at all in training with 0 (say, no wearable data anywhere):
    HistGradientBoosting cannot bin an all-missing column, and such a column carries nothing."""

    def fit(self, X, y=None) -> FillEmptyColumns:
        self.empty_ = np.isnan(np.asarray(X, dtype=float)).all(axis=0)
        return self

    def transform(self, X) -> np.ndarray:
        filled = np.array(X, dtype=float)
        filled[:, self.empty_] = 0.0
        return filled


def gradient_boosting_peer(seed: int) -> object:
    """HistGradientBoostingClassifier on the same feature columns, categories ordinal-encoded."""
    columns = model_columns()
    categorical = [c.name for c in columns if c.encoding == "category"]
    numeric = [c.name for c in columns if c.encoding == "numeric"]
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    encode = make_column_transformer((ordinal, categorical), ("passthrough", numeric))
    booster = HistGradientBoostingClassifier(categorical_features=list(range(len(categorical))), random_state=seed)
    return make_pipeline(encode, FillEmptyColumns(), booster)


def candidates(seed: int) -> dict[str, object]:
    return {
        "additive_spline": AdditiveRiskModel(n_knots=8, C=1.0, sign_interactions=True),
        "logistic_linear": AdditiveRiskModel(n_knots=2, C=1.0),
        "gradient_boosting": gradient_boosting_peer(seed),
    }


@dataclass
class TrainingResult:
    model: AdditiveRiskModel
    chosen: str
    cross_validation: pd.DataFrame
    holdout_metrics: dict[str, float]
    peer_holdout_metrics: dict[str, float]
    subgroups: pd.DataFrame
    holdout_index: pd.Index
    holdout_risk: np.ndarray
    peer_holdout_risk: np.ndarray
    truth_metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0


def cross_validate(X: pd.DataFrame, y: np.ndarray, settings: Settings) -> pd.DataFrame:
    folds = StratifiedKFold(n_splits=settings.cv_folds, shuffle=True, random_state=settings.random_seed)
    rows = []
    for fold, (train_idx, test_idx) in enumerate(folds.split(X, y)):
        for name, estimator in candidates(settings.random_seed).items():
            started = time.perf_counter()
            fitted = clone(estimator).fit(X.iloc[train_idx], y[train_idx])
            seconds = time.perf_counter() - started
            risk = fitted.predict_proba(X.iloc[test_idx])[:, 1]
            rows.append({"candidate": name, "fold": fold, "fit_seconds": seconds,
                         **classification_metrics(y[test_idx], risk)})
    return pd.DataFrame(rows)


def train_model(features: pd.DataFrame, labels: pd.Series, settings: Settings,
                true_risk: pd.Series | None = None) -> TrainingResult:
    """Compare candidates by cross-validation, refit the chosen one, and measure it on held-out rows."""
    X = model_input(features)
    y = labels.astype(int).to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=settings.holdout_fraction, stratify=y, random_state=settings.random_seed)
    cv = cross_validate(X_train, y_train, settings)
    chosen = str(cv.groupby("candidate")["roc_auc"].mean()[list(EXPLAINABLE)].idxmax())  # best explainable
    started = time.perf_counter()
    model = clone(candidates(settings.random_seed)[chosen]).fit(X_train, y_train)
    fit_seconds = time.perf_counter() - started
    peer = clone(candidates(settings.random_seed)["gradient_boosting"]).fit(X_train, y_train)
    risk, peer_risk = (fitted.predict_proba(X_test)[:, 1] for fitted in (model, peer))
    result = TrainingResult(
        model=model, chosen=chosen, cross_validation=cv, fit_seconds=fit_seconds,
        holdout_metrics=classification_metrics(y_test, risk),
        peer_holdout_metrics=classification_metrics(y_test, peer_risk),
        subgroups=subgroup_metrics(y_test, risk, features.loc[X_test.index, ["sex", "age_band"]]),
        holdout_index=X_test.index, holdout_risk=risk, peer_holdout_risk=peer_risk)
    if true_risk is not None:  # generated data: the Bayes-optimal AUC (the ceiling), each model's share of it
        ceiling, model_auc, peer_auc = (classification_metrics(y_test, p)["roc_auc"]
                                        for p in (true_risk.loc[X_test.index].to_numpy(), risk, peer_risk))
        result.truth_metrics = {"ceiling_roc_auc": ceiling, "share_of_ceiling": model_auc / ceiling,
                                "peer_share_of_ceiling": peer_auc / ceiling}
    return result
