"""A glass-box additive risk model: one spline (or one-hot) term per feature, logistic link.

logit(risk) = intercept + sum over catalogue features f of g_f(x_f), each g_f a spline or a
one-hot term. Because the model is additive on the logit scale, a person's explanation is exact
and costs one matrix product: contribution_f = g_f(x_f) - mean over the training population of
g_f, and base + sum of contributions reproduces the logit to the last bit. What-ifs recompute
only the terms of the features they change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, SplineTransformer

from balanceit.features.catalogue import CATALOGUE, Feature, FeatureColumn

MISSING = "missing"


@dataclass
class _ColumnEncoder:
    """Encodes one feature-table column into a block of design columns."""

    column: FeatureColumn
    spline: SplineTransformer | None = None
    fill: float = 0.0
    one_hot: OneHotEncoder | None = None

    @classmethod
    def fit(cls, column: FeatureColumn, values: pd.Series, n_knots: int) -> _ColumnEncoder:
        if column.encoding == "category":
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            encoder.fit(_as_category(values).to_frame())
            return cls(column, one_hot=encoder)
        present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
        if len(np.unique(present)) < 2:
            return cls(column)
        spline = SplineTransformer(n_knots=n_knots, degree=3, knots="uniform", extrapolation="linear")
        spline.fit(present.reshape(-1, 1))
        return cls(column, spline=spline, fill=float(np.median(present)))

    @property
    def width(self) -> int:
        if self.one_hot is not None:
            return len(self.one_hot.categories_[0])
        return (self.spline.n_features_out_ if self.spline is not None else 0) + 1

    def transform(self, values: pd.Series) -> np.ndarray:
        if self.one_hot is not None:
            return self.one_hot.transform(_as_category(values).to_frame())
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(numbers)
        blocks = [missing.astype(float).reshape(-1, 1)]
        if self.spline is not None:
            filled = np.where(missing, self.fill, numbers).reshape(-1, 1)
            blocks.insert(0, self.spline.transform(filled))
        return np.hstack(blocks)


def _as_category(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna(MISSING).astype(object)


class AdditiveRiskModel(ClassifierMixin, BaseEstimator):
    """Spline logistic regression over the feature catalogue with exact per-feature contributions."""

    def __init__(self, n_knots: int = 5, C: float = 1.0, max_iter: int = 200):
        self.n_knots = n_knots
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: pd.DataFrame, y) -> AdditiveRiskModel:
        self.features_: tuple[Feature, ...] = CATALOGUE
        self.encoders_ = [
            [_ColumnEncoder.fit(column, X[column.name], self.n_knots) for column in feature.columns]
            for feature in self.features_
        ]
        design = self._design(X)
        self.logistic_ = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="newton-cholesky")
        self.logistic_.fit(design, np.asarray(y).astype(int))
        self.classes_ = self.logistic_.classes_
        widths = [sum(e.width for e in encoders) for encoders in self.encoders_]
        self.block_slices_ = np.split(np.arange(design.shape[1]), np.cumsum(widths)[:-1])
        owner = np.repeat(np.arange(len(widths)), widths)
        self.grouping_ = sparse.csr_matrix(
            (np.ones(len(owner)), (np.arange(len(owner)), owner)), shape=(len(owner), len(widths)))
        self.reference_ = design.mean(axis=0)
        coef = self.logistic_.coef_[0]
        self.base_logit_ = float(self.logistic_.intercept_[0] + self.reference_ @ coef)
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features_]

    def _block(self, X: pd.DataFrame, index: int) -> np.ndarray:
        return np.hstack([e.transform(X[e.column.name]) for e in self.encoders_[index]])

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        return np.hstack([self._block(X, i) for i in range(len(self.encoders_))])

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature logit contributions against the training population's average person."""
        coef = self.logistic_.coef_[0]
        centred = (self._design(X) - self.reference_) * coef
        values = np.asarray(centred @ self.grouping_)
        return pd.DataFrame(values, columns=self.feature_names, index=X.index)

    def feature_contribution(self, X: pd.DataFrame, feature: str) -> np.ndarray:
        """One feature's contribution, computing only that feature's term (for what-ifs)."""
        index = self.feature_names.index(feature)
        cols = self.block_slices_[index]
        coef = self.logistic_.coef_[0][cols]
        return (self._block(X, index) - self.reference_[cols]) @ coef

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.logistic_.decision_function(self._design(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.logistic_.predict_proba(self._design(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def expit(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))
