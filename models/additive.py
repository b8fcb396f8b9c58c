"""A glass-box additive risk model: logit(risk) = intercept + sum over catalogue features f of g_f(x_f),
each g_f a spline or one-hot term.

Being additive, a person's explanation is exact and cheap: contribution_f = g_f(x_f) minus its training
mean, and base + contributions reproduce the logit. What-ifs recompute only the terms they change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, SplineTransformer

from balanceit.features.catalogue import CATALOGUE, Feature, FeatureColumn
from balanceit.models.terms import (MISSING, AdditiveTerms, CategoryTerm, ColumnTerm, NumericTerm, SplineCurve,
                                    _as_category)


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
            encoder.fit(_as_category(values).reshape(-1, 1))
            return cls(column, one_hot=encoder)
        present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
        if len(np.unique(present)) < 2:
            return cls(column)
        spline = SplineTransformer(n_knots=n_knots, degree=3, knots="uniform", extrapolation="linear")
        spline.fit(present.reshape(-1, 1))
        return cls(column, spline=spline, fill=float(np.median(present)))

    def fitted_term(self, coef: np.ndarray) -> ColumnTerm:
        """This column's part of the logit as a function of its values: `transform(values) @ coef`."""
        if self.one_hot is not None:
            return CategoryTerm(pd.Index(self.one_hot.categories_[0]), coef)
        curve = SplineCurve.of(self.spline, coef[:-1]) if self.spline is not None else None
        return NumericTerm(self.fill, float(coef[-1]), curve)

    def transform(self, values: pd.Series) -> np.ndarray:
        if self.one_hot is not None:
            return self.one_hot.transform(_as_category(values).reshape(-1, 1))
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(numbers)
        blocks = [missing.astype(float).reshape(-1, 1)]
        if self.spline is not None:
            filled = np.where(missing, self.fill, numbers).reshape(-1, 1)
            blocks.insert(0, self.spline.transform(filled))
        return np.hstack(blocks)


class AdditiveRiskModel(ClassifierMixin, BaseEstimator, AdditiveTerms):
    """Spline logistic regression over the feature catalogue with exact per-feature contributions.
    With `sign_interactions`, a second logistic fit re-weighs the shape terms and adds the product of each
    sign's (pain, posture) term with every other feature's: what a symptom says depends on the person's
    causes. A product counts for its sign (half each when both are signs), so causes and drivers stay apart."""

    def __init__(self, n_knots: int = 5, C: float = 1.0, max_iter: int = 200, sign_interactions: bool = False,
                 missing_prior_rows: float = 300.0):
        self.n_knots = n_knots
        self.C = C
        self.max_iter = max_iter
        self.sign_interactions = sign_interactions
        self.missing_prior_rows = missing_prior_rows

    def fit(self, X: pd.DataFrame, y) -> AdditiveRiskModel:
        self.__dict__.pop("_column_terms", None)  # a refit must not reuse the old fit's terms
        y = np.asarray(y).astype(int)
        self.features_: tuple[Feature, ...] = CATALOGUE
        self.encoders_ = [
            [_ColumnEncoder.fit(column, X[column.name], self.n_knots) for column in feature.columns]
            for feature in self.features_
        ]
        columns = [encoder for encoders in self.encoders_ for encoder in encoders]
        blocks = [encoder.transform(X[encoder.column.name]) for encoder in columns]
        self.logistic_ = self._logistic().fit(np.hstack(blocks), y)
        self.classes_ = self.logistic_.classes_
        ends = np.cumsum([block.shape[1] for block in blocks])[:-1]
        self.coef_slices_ = [coef.copy() for coef in np.split(self.logistic_.coef_[0], ends)]
        self._shrink_missing_terms(X, columns)
        terms = self.terms(X)
        self.mean_terms_ = terms.mean(axis=0)
        self._without_interactions()
        if self.sign_interactions:
            self._fit_sign_interactions(terms, y)
        self.base_logit_ = float(self.intercept_ + self.weights_ @ self.mean_terms_)
        return self

    def _shrink_missing_terms(self, X: pd.DataFrame, columns: list[_ColumnEncoder]) -> None:
        """Pull each column's "answer missing" term, estimated from few blank rows (hundreds of 15,000),
        toward the answered rows' average term: n blanks keep n / (n + `missing_prior_rows`) of the gap."""
        for encoder, coef in zip(columns, self.coef_slices_, strict=True):
            values = X[encoder.column.name]
            missing = pd.isna(values).to_numpy()
            blanks = int(missing.sum())
            if blanks in (0, len(missing)):
                continue
            term = encoder.fitted_term(coef)(values)
            answered_mean, missing_term = term[~missing].mean(), term[missing][0]
            shift = (answered_mean - missing_term) * self.missing_prior_rows / (blanks + self.missing_prior_rows)
            if encoder.one_hot is not None:
                coef[list(encoder.one_hot.categories_[0]).index(MISSING)] += shift
            else:
                coef[-1] += shift

    def _logistic(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=self.max_iter, solver="newton-cholesky")

    def _fit_sign_interactions(self, terms: np.ndarray, y: np.ndarray) -> None:
        signs = [i for i, feature in enumerate(self.features_) if feature.role == "sign"]
        self.pairs_ = np.array([(s, f) for s in signs for f in range(len(self.features_)) if f != s and
                                not (f in signs and f < s)], dtype=int)
        products = self._pair_products(terms)
        self.pair_mean_, self.pair_scale_ = products.mean(axis=0), products.std(axis=0) + 1e-12
        second = self._logistic().fit(np.hstack([terms, (products - self.pair_mean_) / self.pair_scale_]), y)
        coef = second.coef_[0]
        self.intercept_ = float(second.intercept_[0])
        self.weights_, self.pair_coef_ = coef[:len(self.features_)], coef[len(self.features_):]
        both_signs = np.isin(self.pairs_[:, 1], signs)
        self.pair_owner_ = np.zeros((len(self.features_), len(self.pairs_)))
        self.pair_owner_[self.pairs_[:, 0], np.arange(len(self.pairs_))] = np.where(both_signs, 0.5, 1.0)
        self.pair_owner_[self.pairs_[both_signs, 1], np.flatnonzero(both_signs)] = 0.5

    def __setstate__(self, state: dict) -> None:
        BaseEstimator.__setstate__(self, state)  # sklearn's check of the version that pickled it
        self._upgrade()
