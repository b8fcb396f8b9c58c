"""A glass-box additive risk model: logit(risk) = intercept + sum over catalogue features f of g_f(x_f).

Being additive on the logit scale makes a person's explanation exact and cheap: contribution_f = g_f(x_f)
minus its training mean, and what-ifs recompute only the terms of the features they change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, SplineTransformer

from balanceit.features.catalogue import CATALOGUE, Feature, FeatureColumn, ModelInput

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
            encoder.fit(_as_category(values).reshape(-1, 1))
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


@dataclass(frozen=True)
class SplineCurve:
    """`SplineTransformer(extrapolation="linear").transform(x) @ coef` as one B-spline, in one scipy call:
    sklearn's per-call input checks cost far more than the arithmetic for a few rows."""

    spline: BSpline
    low: float
    high: float
    slope_low: float
    slope_high: float

    @classmethod
    def of(cls, transformer: SplineTransformer, coef: np.ndarray) -> SplineCurve:
        basis = transformer.bsplines_[0]
        low, high = basis.t[basis.k], basis.t[len(basis.t) - basis.k - 1]
        spline = BSpline(basis.t, coef, basis.k, extrapolate=False)
        return cls(spline, float(low), float(high), float(spline(low, nu=1)), float(spline(high, nu=1)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        inside = np.clip(x, self.low, self.high)
        slope = np.where(x < self.low, self.slope_low, self.slope_high)
        return self.spline(inside) + (x - inside) * slope


@dataclass(frozen=True)
class CategoryTerm:
    """A one-hot block as a look-up of its category's coefficient (0 for an unseen category)."""

    categories: pd.Index
    coef: np.ndarray

    def __call__(self, values) -> np.ndarray:
        # Once per distinct label, then spread: cheap for one row and for a million.
        codes, labels = pd.factorize(_as_category(values))
        return np.array([self._coef_by_label.get(label, 0.0) for label in labels])[codes]

    @cached_property
    def _coef_by_label(self) -> dict[str, float]:
        return dict(zip(self.categories, self.coef.tolist(), strict=True))


@dataclass(frozen=True)
class NumericTerm:
    """A spline of the value (median-filled when missing) plus a coefficient for "missing"."""

    fill: float
    missing_coef: float
    curve: SplineCurve | None

    def __call__(self, values) -> np.ndarray:
        numbers = _numbers(values)
        missing = np.isnan(numbers)
        term = missing * self.missing_coef
        if self.curve is not None:
            term = term + self.curve(np.where(missing, self.fill, numbers))
        return term


ColumnTerm = CategoryTerm | NumericTerm


def _numbers(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == float:
        return values
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _as_category(values) -> np.ndarray:
    """Category labels (text, as `model_input` gives them) with missing as a label of its own."""
    labels = np.asarray(values, dtype=object)
    return np.where(pd.isna(labels), MISSING, labels)


class AdditiveRiskModel(ClassifierMixin, BaseEstimator):
    """Spline logistic regression over the feature catalogue with exact per-feature contributions.

    `sign_interactions` adds a second fit with each sign's term times every other feature's term (what a
    symptom says depends on the causes); a product counts for its sign, so causes' contributions stay theirs.
    """

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
        design = np.hstack([e.transform(X[e.column.name]) for encoders in self.encoders_ for e in encoders])
        self.logistic_ = self._logistic().fit(design, y)
        self.classes_ = self.logistic_.classes_
        widths = [e.width for encoders in self.encoders_ for e in encoders]
        self.coef_slices_ = [coef.copy() for coef in np.split(self.logistic_.coef_[0], np.cumsum(widths)[:-1])]
        self._shrink_missing_terms(X)
        terms = self.terms(X)
        self.mean_terms_ = terms.mean(axis=0)
        self._without_interactions()
        if self.sign_interactions:
            self._fit_sign_interactions(terms, y)
        self.base_logit_ = float(self.intercept_ + self.weights_ @ self.mean_terms_)
        return self

    def _shrink_missing_terms(self, X: pd.DataFrame) -> None:
        """Pull each column's "answer missing" term, learnt from few blank rows, toward the answered rows'
        average: with n blanks it keeps n / (n + `missing_prior_rows`) of its difference."""
        encoders = [encoder for feature_encoders in self.encoders_ for encoder in feature_encoders]
        for encoder, coef in zip(encoders, self.coef_slices_, strict=True):
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

    def _without_interactions(self) -> None:
        """The plain additive model's parameters in the two-stage form: weights 1, no products."""
        self.intercept_ = float(self.logistic_.intercept_[0])
        self.weights_ = np.ones(len(self.features_))
        self.pairs_ = np.empty((0, 2), dtype=int)
        self.pair_mean_ = self.pair_scale_ = self.pair_coef_ = np.empty(0)
        self.pair_owner_ = np.empty((len(self.features_), 0))

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
        """Models pickled before sign interactions existed load as the plain additive model they are."""
        super().__setstate__(state)
        if "coef_slices_" in state and "weights_" not in state:
            self.sign_interactions = False
            self._without_interactions()

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features_]

    @cached_property
    def _column_terms(self) -> list[list[ColumnTerm]]:
        """Each feature's fitted column terms, built once (also for models pickled before they existed)."""
        coefs = iter(self.coef_slices_)
        return [[encoder.fitted_term(next(coefs)) for encoder in encoders] for encoders in self.encoders_]

    def _feature_term(self, X: ModelInput, index: int) -> np.ndarray:
        """g_f(x) for catalogue feature `index`: the sum of its columns' terms."""
        return sum(term(X[encoder.column.name])
                   for encoder, term in zip(self.encoders_[index], self._column_terms[index], strict=True))

    def terms(self, X: ModelInput, unknown: np.ndarray | None = None) -> np.ndarray:
        """The features' shape terms g_f(x), one column per catalogue feature; an `unknown` feature (not
        asked) gets its training mean, adding nothing, instead of the "answer skipped" term."""
        terms = np.column_stack([self._feature_term(X, i) for i in range(len(self.encoders_))])
        if unknown is not None and unknown.any():
            terms[:, unknown] = self.mean_terms_[unknown]
        return terms

    def feature_term(self, X: ModelInput, feature: str) -> np.ndarray:
        """One feature's shape term, computing only that feature (for what-ifs)."""
        return self._feature_term(X, self.feature_names.index(feature))

    def _pair_products(self, terms: np.ndarray) -> np.ndarray:
        return terms[:, self.pairs_[:, 0]] * terms[:, self.pairs_[:, 1]]

    def _interaction_terms(self, terms: np.ndarray, unknown: np.ndarray | None = None) -> np.ndarray:
        """Each sign pair's product term. With one member unknown (`terms` holds its mean) the product
        is its expectation given the known member; with both unknown it is the pair's mean, i.e. 0."""
        interactions = (self._pair_products(terms) - self.pair_mean_) / self.pair_scale_ * self.pair_coef_
        if unknown is not None and unknown.any():
            interactions[:, unknown[self.pairs_].all(axis=1)] = 0.0
        return interactions

    def _pair_owners(self, unknown: np.ndarray | None) -> np.ndarray:
        """Which feature each pair's term counts for: its sign's, or the known member's when the sign is
        unknown, so an unknown feature's contribution is exactly 0."""
        if unknown is None or not unknown.any():
            return self.pair_owner_
        members = self.pairs_
        one_known = unknown[members].sum(axis=1) == 1
        owner = self.pair_owner_.copy()
        owner[:, one_known] = 0.0
        known_member = np.where(unknown[members[:, 0]], members[:, 1], members[:, 0])
        owner[known_member[one_known], np.flatnonzero(one_known)] = 1.0
        return owner

    def contributions_from_terms(self, terms: np.ndarray, unknown: np.ndarray | None = None) -> np.ndarray:
        """Per-feature logit contributions against the training population's average person; they sum
        to the logit minus `base_logit_` exactly, and an `unknown` feature's is 0."""
        return ((terms - self.mean_terms_) * self.weights_
                + self._interaction_terms(terms, unknown) @ self._pair_owners(unknown).T)

    def logit_from_terms(self, terms: np.ndarray, unknown: np.ndarray | None = None) -> np.ndarray:
        return self.intercept_ + terms @ self.weights_ + self._interaction_terms(terms, unknown).sum(axis=1)

    def contribution_matrix(self, X: ModelInput, unknown: np.ndarray | None = None) -> np.ndarray:
        return self.contributions_from_terms(self.terms(X, unknown), unknown)

    def contributions(self, X: pd.DataFrame, unknown: np.ndarray | None = None) -> pd.DataFrame:
        """`contribution_matrix` as a frame with the catalogue's feature names."""
        return pd.DataFrame(self.contribution_matrix(X, unknown), columns=self.feature_names, index=X.index)

    def decision_function(self, X: pd.DataFrame, unknown: np.ndarray | None = None) -> np.ndarray:
        return self.logit_from_terms(self.terms(X, unknown), unknown)

    def predict_proba(self, X: pd.DataFrame, unknown: np.ndarray | None = None) -> np.ndarray:
        risk = expit(self.decision_function(X, unknown))
        return np.column_stack([1 - risk, risk])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def expit(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))
