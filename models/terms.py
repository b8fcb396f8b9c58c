"""The fitted additive model's arithmetic (see `additive`): evaluating it needs no sklearn (~1 s to import),
so `registry.load_model` reads a registered model into `AdditiveTerms`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from balanceit.features.catalogue import ModelInput

if TYPE_CHECKING:
    from sklearn.preprocessing import SplineTransformer

MISSING = "missing"


def bspline(knots: np.ndarray, coef: np.ndarray, degree: int, x: np.ndarray, derivative: int = 0) -> np.ndarray:
    """scipy's `BSpline(knots, coef, degree)(x, nu=derivative)` for x within [knots[degree], knots[-degree - 1]].

    Importing scipy.interpolate takes ~0.4 s, more than `balanceit explain` spends on its work. This is
    scipy's de Boor recursion (`_deBoor_D`, then the coefficients' sum, in scipy's __fitpack.cc) in the same
    operations in the same order, vectorised over x, so the values are scipy's to the last bit. The knots must
    be strictly increasing inside the range (SplineTransformer's uniform knots are), as scipy's interval
    search then gives t[i] <= x < t[i + 1] with the last interval closed.
    """
    last = len(knots) - degree - 2
    interval = np.clip(np.searchsorted(knots, x, side="right") - 1, degree, last)
    knot = {shift: knots[interval + shift] for shift in range(1 - degree, degree + 1)}  # t[i + shift], read once
    basis = [1.0]
    for order in range(1, degree + 1):
        previous, basis = basis, [0.0]
        for n in range(1, order + 1):
            right, left = knot[n], knot[n - order]
            if order <= degree - derivative:
                weight = previous[n - 1] / (right - left)
                basis[n - 1] = basis[n - 1] + weight * (right - x)
                basis.append(weight * (x - left))
            else:  # scipy's derivative step
                weight = order * previous[n - 1] / (right - left)
                basis[n - 1] = basis[n - 1] - weight
                basis.append(weight)
    value = 0.0
    for offset, values in enumerate(basis):
        value = value + coef[interval - degree + offset] * values
    return value


@dataclass(frozen=True)
class SplineCurve:
    """`SplineTransformer(extrapolation="linear").transform(x) @ coef` as one B-spline (see `bspline`).

    sklearn's per-call input checks cost far more than the arithmetic when a request holds a few rows.
    Past the training range the curve continues along its tangent at the boundary, as the transformer's
    linear extrapolation does.
    """

    knots: np.ndarray
    coef: np.ndarray
    degree: int
    low: float
    high: float
    slope_low: float
    slope_high: float

    @classmethod
    def of(cls, transformer: SplineTransformer, coef: np.ndarray) -> SplineCurve:
        basis = transformer.bsplines_[0]
        knots, degree = np.ascontiguousarray(basis.t, dtype=float), int(basis.k)
        coef = np.ascontiguousarray(coef, dtype=float)
        ends = np.array([knots[degree], knots[len(knots) - degree - 1]])
        slopes = bspline(knots, coef, degree, ends, derivative=1)
        return cls(knots, coef, degree, float(ends[0]), float(ends[1]), float(slopes[0]), float(slopes[1]))

    def __setstate__(self, state: dict) -> None:
        """Models pickled when the curve held a scipy `BSpline` (`spline`) load as its knots and coefficients."""
        if "spline" in state:
            spline = state.pop("spline")
            state.update(knots=np.ascontiguousarray(spline.t, dtype=float),
                         coef=np.ascontiguousarray(spline.c, dtype=float), degree=int(spline.k))
        self.__dict__.update(state)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        inside = np.clip(x, self.low, self.high)
        slope = np.where(x < self.low, self.slope_low, self.slope_high)
        return bspline(self.knots, self.coef, self.degree, inside) + (x - inside) * slope


@dataclass(frozen=True)
class CategoryTerm:
    """A one-hot block as a look-up of its category's coefficient (0 for an unseen category)."""

    categories: pd.Index
    coef: np.ndarray

    def __call__(self, values) -> np.ndarray:
        # Once per distinct label, then spread: cheap for one row and for a million; missing (code -1) is last.
        codes, labels = ((values.codes, values.categories) if isinstance(values, pd.Categorical)
                         else pd.factorize(np.asarray(values, dtype=object)))
        return np.array([self._coef_by_label.get(label, 0.0) for label in (*labels, MISSING)])[codes]

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
        numbers = values if isinstance(values, np.ndarray) and values.dtype == float else pd.to_numeric(
            pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(numbers)
        term = missing * self.missing_coef
        if self.curve is not None:
            term = term + self.curve(np.where(missing, self.fill, numbers))
        return term


ColumnTerm = CategoryTerm | NumericTerm


def _as_category(values) -> np.ndarray:
    """Category labels (text, as `model_input` gives them) with missing as a label of its own."""
    labels = np.asarray(values, dtype=object)
    return np.where(pd.isna(labels), MISSING, labels)


class AdditiveTerms:
    """A fitted `AdditiveRiskModel`'s parameters and everything computed from them."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._upgrade()

    def _upgrade(self) -> None:
        """Models pickled before sign interactions existed load as the plain additive model they are."""
        if "coef_slices_" in self.__dict__ and "weights_" not in self.__dict__:
            self.sign_interactions = False
            self._without_interactions()

    def _without_interactions(self) -> None:
        """The plain additive model's parameters in the two-stage form: weights 1, no products."""
        self.intercept_ = float(self.logistic_.intercept_[0])
        self.weights_ = np.ones(len(self.features_))
        self.pairs_ = np.empty((0, 2), dtype=int)
        self.pair_mean_ = self.pair_scale_ = self.pair_coef_ = np.empty(0)
        self.pair_owner_ = np.empty((len(self.features_), 0))

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features_]

    @cached_property
    def _column_terms(self) -> list[list[ColumnTerm]]:
        """Each feature's fitted column terms, built once (also for models pickled before they existed)."""
        coefs = iter(self.coef_slices_)
        return [[encoder.fitted_term(next(coefs)) for encoder in encoders] for encoders in self.encoders_]

    def feature_term(self, X: ModelInput, index: int) -> np.ndarray:
        """g_f(x) for catalogue feature `index`, the sum of its columns' terms (a what-if computes only the
        features it touches)."""
        return sum(term(X[encoder.column.name])
                   for encoder, term in zip(self.encoders_[index], self._column_terms[index], strict=True))

    def terms(self, X: ModelInput, unknown: np.ndarray | None = None) -> np.ndarray:
        """The features' shape terms g_f(x), one column per catalogue feature. An `unknown` feature (its
        question was not asked) carries no information about anyone: its term is its expectation over the
        training population, so it adds nothing against the average person instead of the "answer skipped" term."""
        terms = np.column_stack([self.feature_term(X, i) for i in range(len(self.encoders_))])
        if unknown is not None and unknown.any():
            terms[:, unknown] = self.mean_terms_[unknown]
        return terms

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

    def contributions(self, X: pd.DataFrame, unknown: np.ndarray | None = None) -> pd.DataFrame:
        """`contributions_from_terms` as a frame with the catalogue's feature names."""
        return pd.DataFrame(self.contributions_from_terms(self.terms(X, unknown), unknown),
                            columns=self.feature_names, index=X.index)

    def decision_function(self, X: pd.DataFrame, unknown: np.ndarray | None = None) -> np.ndarray:
        return self.logit_from_terms(self.terms(X, unknown), unknown)

    def predict_proba(self, X: pd.DataFrame, unknown: np.ndarray | None = None) -> np.ndarray:
        risk = expit(self.decision_function(X, unknown))
        return np.column_stack([1 - risk, risk])


def expit(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))
