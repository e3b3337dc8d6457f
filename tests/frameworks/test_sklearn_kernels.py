"""Kernels of fitted scikit-learn estimators give, to the bit, the probabilities of their
predict_proba (classifiers) and the values of their predict (regressors), on penguin rows
and on rows far outside them; other estimators and subclasses get none."""

from __future__ import annotations

import numpy as np
import pytest

from conveyor.frameworks.sklearn_kernels import sklearn_kernel


def _rows(penguins) -> np.ndarray:
    X, _ = penguins
    near = np.random.default_rng(5).standard_normal((100, X.shape[1])) * 1e-2
    far = np.random.default_rng(6).standard_normal((100, X.shape[1])) * 1e3
    return np.vstack([X, near, far, np.zeros((1, X.shape[1]))]).astype(np.float32)


def _classifiers():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mlp = {"hidden_layer_sizes": (8,), "max_iter": 300, "random_state": 0}
    return {
        "logistic": (LogisticRegression(max_iter=500), False),
        "logistic-binary": (LogisticRegression(max_iter=500), True),
        "mlp": (MLPClassifier(**mlp), False),
        "mlp-binary": (MLPClassifier(**mlp, activation="tanh"), True),
    }


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", list(_classifiers()))
def test_sklearn_kernel_gives_predict_proba(name, penguins) -> None:
    model, binary = _classifiers()[name]
    X, y = penguins
    model.fit(X, (y == 0) if binary else y)
    rows = _rows(penguins)
    kernel = sklearn_kernel(model)
    assert kernel is not None and kernel.kind == "proba"
    proba = kernel.function(rows)
    assert np.array_equal(proba, model.predict_proba(rows))
    assert np.array_equal(model.classes_[np.argmax(proba, axis=1)], model.predict(rows))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["linear", "ridge", "mlp"])
def test_sklearn_kernel_gives_predict_of_regressors(name, penguins) -> None:
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.neural_network import MLPRegressor

    model = {
        "linear": LinearRegression(),
        "ridge": Ridge(alpha=0.5),
        "mlp": MLPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0),
    }[name]
    X, _ = penguins
    model.fit(X[:, 1:], X[:, 0])
    rows = _rows(penguins)[:, 1:]
    kernel = sklearn_kernel(model)
    assert kernel is not None and kernel.kind == "value"
    assert np.array_equal(kernel.function(rows), model.predict(rows))


def test_sklearn_kernel_none_for_other_estimators_and_subclasses(penguins) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    class Tweaked(LogisticRegression):
        pass

    X, y = penguins
    assert sklearn_kernel(RandomForestClassifier(n_estimators=3).fit(X, y)) is None
    assert sklearn_kernel(Tweaked(max_iter=500).fit(X, y)) is None
    assert sklearn_kernel(object()) is None
