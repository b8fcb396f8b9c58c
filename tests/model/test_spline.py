"""The NumPy B-spline (`terms.bspline`) against scipy's, on the knots of a model fitted as the demo's is.

Interactive commands evaluate the model without importing scipy; these checks keep its curves scipy's.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from scipy.interpolate import BSpline

from balanceit.config import Settings
from balanceit.data.contract import LABEL
from balanceit.data.synthetic import generate
from balanceit.data.validation import validate_activity, validate_questionnaire
from balanceit.features.build import answers_and_features
from balanceit.features.catalogue import model_input
from balanceit.models.additive import AdditiveRiskModel
from balanceit.models.terms import SplineCurve, bspline

TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def fitted():
    """A model with the demo's spline settings (`train.py`: 8 knots, sign interactions), fitted in seconds."""
    population = generate(3000, seed=0, labelled=True)
    answers = validate_questionnaire(population.questionnaire.astype("string"), "generated").accepted
    activity = validate_activity(population.activity.astype("string"), "generated").accepted
    answers, features = answers_and_features(answers, activity, Settings().activity_window_days)
    X = model_input(features)
    return AdditiveRiskModel(n_knots=8, sign_interactions=True).fit(X, answers[LABEL].astype(bool)), X


def _splines(model: AdditiveRiskModel) -> list[tuple[object, np.ndarray, SplineCurve]]:
    """Every numeric column's transformer, its spline coefficients and the curve built from them."""
    found = []
    for encoders, coefs in zip(model.encoders_, _coefficient_blocks(model), strict=True):
        for encoder, coef in zip(encoders, coefs, strict=True):
            if encoder.spline is not None:
                found.append((encoder.spline, coef[:-1], SplineCurve.of(encoder.spline, coef[:-1])))
    return found


def _coefficient_blocks(model: AdditiveRiskModel) -> list[list[np.ndarray]]:
    blocks = iter(model.coef_slices_)
    return [[next(blocks) for _ in encoders] for encoders in model.encoders_]


def test_the_curves_are_scipys_inside_and_at_the_ends(fitted):
    model, _ = fitted
    splines = _splines(model)
    assert len(splines) >= 5
    for transformer, coef, curve in splines:
        scipy_curve = BSpline(transformer.bsplines_[0].t, coef, curve.degree, extrapolate=False)
        inside = np.linspace(curve.low, curve.high, 2001)
        points = np.concatenate([inside, curve.knots[curve.degree:len(curve.knots) - curve.degree]])
        np.testing.assert_allclose(bspline(curve.knots, curve.coef, curve.degree, points), scipy_curve(points),
                                   rtol=0, atol=TOLERANCE)
        ends = np.array([curve.low, curve.high])
        np.testing.assert_allclose([curve.slope_low, curve.slope_high], scipy_curve(ends, nu=1),
                                   rtol=0, atol=TOLERANCE)


def test_the_curves_extend_the_transformers_linear_extrapolation(fitted):
    model, _ = fitted
    for transformer, coef, curve in _splines(model):
        width = curve.high - curve.low
        x = np.linspace(curve.low - width, curve.high + width, 501)
        np.testing.assert_allclose(curve(x), transformer.transform(x.reshape(-1, 1)) @ coef,
                                   rtol=0, atol=1e-9)


def test_a_model_pickled_with_scipy_splines_loads_without_scipy_and_scores_the_same(fitted, tmp_path):
    """Models registered before hold their curves as scipy `BSpline`s; the registry reads them without scipy."""
    model, X = fitted
    expected = model.predict_proba(X.head(200))[:, 1].tolist()
    for curve in (term.curve for terms in model._column_terms for term in terms if getattr(term, "curve", None)):
        object.__setattr__(curve, "__dict__", {  # the curve's state as it was pickled then
            "spline": BSpline(curve.knots, curve.coef, curve.degree, extrapolate=False), "low": curve.low,
            "high": curve.high, "slope_low": curve.slope_low, "slope_high": curve.slope_high})
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    X.head(200).to_pickle(tmp_path / "rows.pkl")
    probe = ("import json, sys, pandas as pd\n"
             "from balanceit.models.registry import _ModelOnly\n"
             "with open('model.pkl', 'rb') as stored: model = _ModelOnly(stored, evaluation_only=True).load()\n"
             "risks = model.predict_proba(pd.read_pickle('rows.pkl'))[:, 1].tolist()\n"
             "print(json.dumps([sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'sklearn'}), risks]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported, risks = json.loads(done.stdout)
    assert imported == []
    assert risks == expected
