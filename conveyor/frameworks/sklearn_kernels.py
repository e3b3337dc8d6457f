"""The arithmetic of a few fitted scikit-learn estimators without their per-call input
checks: for a one-row request, those checks cost twenty times the arithmetic.

A kernel calls the same NumPy and scikit-learn functions, in the same order, as the
estimator's own ``predict_proba`` (classifiers) or ``predict`` (regressors) after its
checks, so it gives the same numbers for a float32 matrix that is finite and has the right
width. It checks nothing: whoever uses one checks ``X`` first and compares the kernel with
the estimator on sample rows before trusting it (the model server does both). Exact types
only, since a subclass may compute otherwise.

===========================================  ==============================================
``LogisticRegression``                       probabilities (multinomial softmax, or binary)
``MLPClassifier`` (one output)               probabilities; labels are their argmax
``LinearRegression``, ``Ridge``, ``Lasso``,  values
``ElasticNet``
``MLPRegressor``                             values
===========================================  ==============================================

Example::

    kernel = sklearn_kernel(model)          # None for other estimators
    if kernel is not None and kernel.kind == "proba":
        proba = kernel.function(X)          # model.predict_proba(X), without the checks
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SklearnKernel:
    """``function(X)``: the estimator's probabilities ``[N, C]`` (``kind == "proba"``; the
    label it predicts is the class of the highest one, ties aside) or its predictions
    (``kind == "value"``)."""

    function: Callable[[np.ndarray], np.ndarray]
    kind: str


def sklearn_kernel(model: Any) -> SklearnKernel | None:
    """The kernel of ``model``, or None when it is not an estimator listed above."""
    name = f"{type(model).__module__}.{type(model).__qualname__}"
    if not name.startswith("sklearn."):
        return None
    from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    kind = type(model)
    if kind is LogisticRegression:
        return _logistic(model)
    if kind is MLPClassifier:
        return _mlp_classifier(model)
    if kind in (LinearRegression, Ridge, Lasso, ElasticNet):
        return _linear(model)
    if kind is MLPRegressor:
        return _mlp_regressor(model)
    return None


def _classes_ok(model: Any) -> bool:
    classes = getattr(model, "classes_", None)
    return isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) >= 2


def _logistic(model: Any) -> SklearnKernel | None:
    """``LogisticRegression.predict_proba``: softmax of the decision function for three
    classes or more, else ``[1 - p, p]`` with ``p = expit(decision)``."""
    from sklearn.utils._array_api import _expit

    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", None)
    if not _classes_ok(model) or not isinstance(coef, np.ndarray) or coef.ndim != 2:
        return None
    coef_t = coef.T
    if len(model.classes_) > 2:

        def proba(X: np.ndarray) -> np.ndarray:
            return _softmax(X @ coef_t + intercept)

        return SklearnKernel(proba, "proba")
    if coef.shape[0] != 1:
        return None

    def binary(X: np.ndarray) -> np.ndarray:
        scores = (X @ coef_t + intercept).reshape(-1)
        p = _expit(scores, out=scores, xp=np)
        return np.stack([1 - p, p], axis=1)

    return SklearnKernel(binary, "proba")


def _softmax(scores: np.ndarray) -> np.ndarray:
    """``sklearn.utils.extmath.softmax(scores, copy=False)`` on a NumPy array, in place."""
    scores -= scores.max(axis=1)[:, None]
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1)[:, None]
    return scores


def _forward(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """``_forward_pass_fast`` of a fitted MLP: its layers and activations."""
    from sklearn.neural_network._base import ACTIVATIONS

    coefs = getattr(model, "coefs_", None)
    intercepts = getattr(model, "intercepts_", None)
    if not isinstance(coefs, list) or not isinstance(intercepts, list) or not coefs:
        return None
    hidden = ACTIVATIONS.get(model.activation)
    output = ACTIVATIONS.get(getattr(model, "out_activation_", ""))
    if hidden is None or output is None:
        return None
    layers = list(zip(coefs, intercepts, strict=True))

    def forward(X: np.ndarray) -> np.ndarray:
        activation = X
        for index, (coef, intercept) in enumerate(layers):
            activation = activation @ coef
            activation += intercept
            if index != len(layers) - 1:
                hidden(activation)
        output(activation)
        return activation

    return forward


def _mlp_classifier(model: Any) -> SklearnKernel | None:
    forward = _forward(model)
    if forward is None or not _classes_ok(model):
        return None
    if model.n_outputs_ == 1 and len(model.classes_) == 2:  # one logistic output

        def binary(X: np.ndarray) -> np.ndarray:
            p = forward(X).ravel()
            return np.vstack([1 - p, p]).T

        return SklearnKernel(binary, "proba")
    if model.n_outputs_ == len(model.classes_) and model.out_activation_ == "softmax":
        return SklearnKernel(forward, "proba")
    return None


def _linear(model: Any) -> SklearnKernel | None:
    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", None)
    if not isinstance(coef, np.ndarray) or intercept is None:
        return None
    coef_t = coef.T

    def values(X: np.ndarray) -> np.ndarray:
        return X @ coef_t + intercept

    return SklearnKernel(values, "value")


def _mlp_regressor(model: Any) -> SklearnKernel | None:
    forward = _forward(model)
    if forward is None:
        return None

    def values(X: np.ndarray) -> np.ndarray:
        y = forward(X)
        return y.ravel() if y.shape[1] == 1 else y

    return SklearnKernel(values, "value")
