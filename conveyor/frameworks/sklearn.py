"""scikit-learn models (plain estimators and Pipelines) in a restricted pickle.

The model file is a pickle that only :mod:`conveyor.frameworks.restricted_pickle` reads: it
admits the classes a model is made of (scikit-learn's; NumPy's array, scalar, dtype and
random types; SciPy's sparse matrices), NumPy ufuncs and the few functions those libraries
rebuild their objects with, constructs classes without running their constructors, and
refuses anything else (``os.system``, your own transformer class, a function in a
FunctionTransformer, a ``scipy.stats`` distribution) before importing or calling it, naming
it. The names a model holds are checked at save, so what load would refuse is refused then,
and listed in the manifest (``SavedModel.info["names"]``); load refuses any name not
listed. Loading imports only the scikit-learn modules the model uses: no skops, and no list
of every estimator. Bundles saved earlier in skops format (``model.skops``) still load
through skops, trusting what the restricted pickle admits. To trust more, register an
adapter that names them::

    from conveyor.frameworks.registry import register_adapter
    from conveyor.frameworks.sklearn import SklearnAdapter

    register_adapter(SklearnAdapter(trusted=["mypackage.features.Winsorizer"]))

A classifier's :meth:`SklearnAdapter.predict` returns class ids, positions in ``classes_``
(recorded in ``SavedModel.info["classes"]``), whatever labels it was trained on. For the
estimators whose ``predict`` picks the most probable class (logistic regression, trees and
forests, Gaussian naive Bayes, alone or ending a Pipeline),
:meth:`SklearnAdapter.predict_with_proba` gives class ids and probabilities from one call::

    ids, proba = SklearnAdapter().predict_with_proba(model, X, finite=True)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from conveyor.frameworks import restricted_pickle
from conveyor.frameworks.base import ModelAdapter, SavedModel
from conveyor.types import ConveyorError

MODEL_FILE = "model.pkl"
FORMAT = "restricted-pickle"
SKOPS_FILE = "model.skops"  # bundles saved before the restricted pickle


class SklearnAdapter(ModelAdapter):
    """scikit-learn estimators and Pipelines, in a restricted pickle (``model.pkl``).

    ``trusted``: extra names (``module.qualname`` of a class or function) to trust on save
    and load.
    """

    name = "sklearn"
    modules = ("sklearn",)
    extra = "sklearn"

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self.trusted = tuple(trusted)

    def framework_version(self) -> str:
        import sklearn

        return sklearn.__version__

    def save(self, model: Any, directory: str, *, sample: np.ndarray | None) -> SavedModel:
        path = os.path.join(directory, MODEL_FILE)
        try:
            data, names = restricted_pickle.dumps(model, trusted=self.trusted)
        except restricted_pickle.UntrustedPickleError as exc:
            raise ConveyorError(_untrusted_message(path, exc.refused)) from None
        with open(path, "wb") as handle:
            handle.write(data)
        info: dict[str, Any] = {"estimator": _type_name(model), "names": names}
        classes = getattr(model, "classes_", None)
        if self.is_classifier(model) and isinstance(classes, np.ndarray) and classes.ndim == 1:
            info["classes"] = classes.tolist()
        return SavedModel(files=[MODEL_FILE], format=FORMAT, info=info)

    def load(self, directory: str, saved: SavedModel) -> Any:
        if saved.format == "skops":
            return self._load_skops(directory)
        path = _existing(directory, MODEL_FILE)
        names = saved.info.get("names")
        if not isinstance(names, list):
            raise ConveyorError(
                f"The manifest of the scikit-learn model in {directory} lists no names for "
                f"{MODEL_FILE}; save the model again with conveyor.frameworks.save_model."
            )
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            return restricted_pickle.loads(data, trusted=self.trusted, names=names)
        except restricted_pickle.UntrustedPickleError as exc:
            raise ConveyorError(_untrusted_message(path, exc.refused)) from None
        except Exception as exc:  # a damaged file, or one from another scikit-learn
            raise ConveyorError(
                f"The scikit-learn model in {path} could not be read ({type(exc).__name__}: "
                f"{exc}). Load it with the scikit-learn version in its manifest, or save the "
                "model again."
            ) from exc

    def _load_skops(self, directory: str) -> Any:
        path = _existing(directory, SKOPS_FILE)
        try:
            import skops.io
        except ImportError:
            raise ConveyorError(
                f"The scikit-learn model in {path} was saved in skops format, an older "
                "Conveyor's; reading it needs skops: pip install skops."
            ) from None

        return skops.io.load(path, trusted=self._trusted_types(path))

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        predictions = np.asarray(model.predict(X))
        classes = getattr(model, "classes_", None)
        if (
            self.is_classifier(model)
            and predictions.ndim == 1
            and isinstance(classes, np.ndarray)
            and classes.ndim == 1
        ):
            return _class_ids(predictions, classes)
        return predictions

    def predict_proba(self, model: Any, X: np.ndarray) -> np.ndarray | None:
        if not self.is_classifier(model) or not hasattr(model, "predict_proba"):
            return None
        proba = model.predict_proba(X)
        return proba if isinstance(proba, np.ndarray) else None  # multi-output: a list

    def predict_with_proba(
        self, model: Any, X: np.ndarray, *, finite: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Class ids and probabilities ``[N, C]`` from one ``predict_proba`` call, or None
        when the model's ``predict`` is not known to pick its most probable class.

        A row whose highest probability is shared by several classes (rounding can tie
        scores that ``predict`` tells apart) is answered by ``predict``, so the ids are always
        those :meth:`predict` gives. ``finite``: the caller has checked that ``X`` holds no
        NaN or infinity, so scikit-learn need not check again.
        """
        if not argmax_predicts(model):
            return None
        if finite:
            import sklearn

            with sklearn.config_context(assume_finite=True):
                proba = model.predict_proba(X)
        else:
            proba = model.predict_proba(X)
        if not isinstance(proba, np.ndarray) or proba.ndim != 2 or len(proba) != len(X):
            return None
        ids = np.argmax(proba, axis=1).astype(np.int64) if proba.shape[1] else None
        if ids is None or not _unique_maximum(proba, ids):
            ids = self.predict(model, X).astype(np.int64)
        return ids, proba

    def is_classifier(self, model: Any) -> bool | None:
        from sklearn.base import is_classifier

        try:
            return bool(is_classifier(model))
        except AttributeError:  # no scikit-learn tags: a duck-typed estimator
            return None

    def _trusted_types(self, path: str) -> list[str]:
        """The types in the skops file at ``path`` to trust, or ConveyorError naming the rest."""
        import skops.io

        found = skops.io.get_untrusted_types(file=path)
        refused = [
            name for name in found if name not in self.trusted and not _is_library_class(name)
        ]
        if refused:
            raise ConveyorError(_untrusted_message(path, dict.fromkeys(refused, "not trusted")))
        return list(found)


def _existing(directory: str, file: str) -> str:
    path = os.path.join(directory, file)
    if not os.path.isfile(path):
        raise ConveyorError(
            f"The scikit-learn model file {file!r} is missing from {directory}; "
            "save the model again with conveyor.frameworks.save_model."
        )
    return path


def _untrusted_message(path: str, refused: dict[str, str]) -> str:
    listed = "; ".join(f"{name} ({why})" for name, why in refused.items())
    return (
        f"The scikit-learn model in {path} holds names that are not trusted: {listed}. "
        "Only classes from scikit-learn, NumPy and SciPy, NumPy ufuncs and their own "
        "rebuilding functions load without being named, since loading runs their code. "
        "If you trust them, register conveyor.frameworks.sklearn.SklearnAdapter(trusted=["
        + ", ".join(repr(name) for name in refused)
        + "]) with conveyor.frameworks.registry.register_adapter, in every process "
        "that saves or loads the model."
    )


def _is_library_class(name: str) -> bool:
    """Whether the restricted pickle would admit ``name`` (``a.b.C``, as skops lists it)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest prefix that imports is the module
        verdict = restricted_pickle.admits(".".join(parts[:cut]), ".".join(parts[cut:]))
        if verdict is not None:
            return verdict
    return False


def argmax_predicts(model: Any) -> bool:
    """Whether ``model`` (or the last step of a Pipeline) is an estimator whose ``predict``
    is, by its code, the class of the highest ``predict_proba`` (ties aside), with one
    output. Exact types only: a subclass may predict otherwise."""
    from sklearn.pipeline import Pipeline

    final = model
    while type(final) is Pipeline:
        final = final.steps[-1][1]
    classes = getattr(final, "classes_", None)
    if not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return False
    if getattr(final, "n_outputs_", 1) != 1:
        return False
    return type(final) in _argmax_types()


@functools.cache
def _argmax_types() -> frozenset[type]:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.naive_bayes import GaussianNB
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    return frozenset(
        {
            DecisionTreeClassifier,
            ExtraTreeClassifier,
            ExtraTreesClassifier,
            GaussianNB,
            LogisticRegression,
            LogisticRegressionCV,
            RandomForestClassifier,
        }
    )


def _unique_maximum(proba: np.ndarray, ids: np.ndarray) -> bool:
    """Whether every row's highest probability is finite and held by one class alone."""
    top = proba[np.arange(len(proba)), ids]
    if not np.isfinite(top).all():
        return False
    return bool(((proba == top[:, None]).sum(axis=1) == 1).all())


def _class_ids(predictions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Positions of ``predictions`` in ``classes`` (int64)."""
    if classes.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes))):
        return predictions.astype(np.int64)
    order = np.argsort(classes, kind="stable")
    positions = np.searchsorted(classes, predictions, sorter=order)
    return order[np.clip(positions, 0, len(classes) - 1)].astype(np.int64)


def _type_name(model: Any) -> str:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}"
