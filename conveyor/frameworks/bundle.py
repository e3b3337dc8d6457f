"""Model bundles: a trained model of any framework saved with its transform, so it predicts
from raw features anywhere, checked byte for byte before anything in it is deserialized.

A bundle is the directory of a ``Model`` artifact::

    manifest.json     format, framework and versions, input signature (raw features),
                      features (the model's input columns, in order), outputs, label,
                      class_names, the SHA-256 of every other file
    MLmodel           MLflow's description: flavor python_function, so mlflow.pyfunc loads it
    conda.yaml, python_env.yaml, requirements.txt   the environment MLmodel names
    model/            the framework adapter's files (restricted pickle, UBJ, TorchScript, ...)
    transform/        the fitted transform (transform_fn/graph.json and its assets)

Example::

    from conveyor.frameworks import load_model, save_model

    save_model(clf, fn_args.serving_model_dir, features=["culmen_length_mm_z", ...],
               label="species", class_names=["Adelie", "Chinstrap", "Gentoo"],
               transform=fn_args.transform_graph)
    bundle = load_model(model.uri)
    bundle.predict([{"culmen_length_mm": 39.1, "culmen_depth_mm": 18.7, ...}])  # ['Adelie']
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np

from conveyor.frameworks import manifest as mf
from conveyor.frameworks._saving import (
    _checked_class_names,
    _checked_features,
    _outputs,
    _resolve_transform,
    _sample_matrix,
    _save_model_files,
    _task,
)
from conveyor.frameworks.base import ModelAdapter, SavedModel
from conveyor.frameworks.inputs import ModelInputs, feature_matrix
from conveyor.frameworks.registry import adapter_for, get_adapter
from conveyor.frameworks.staging import local_copy, upload, writable
from conveyor.transform.fitted import FittedTransform
from conveyor.transform.fitted import load as load_transform
from conveyor.types import ConveyorError


def save_model(
    model: Any,
    serving_model_dir: str,
    *,
    features: Sequence[str],
    framework: str | None = None,
    label: str | None = None,
    class_names: Sequence[Any] | None = None,
    transform: FittedTransform | str | Any | None = None,
    sample: Any = None,
    task: str | None = None,
) -> str:
    """Save ``model`` as a bundle in ``serving_model_dir`` and return that directory.

    ``features``: the model's input columns in order (transformed features, the label
    excluded). ``framework``: an adapter's name (``"sklearn"``, ...) to use instead of the one
    detected from the model's class. ``class_names``: the label's values by class id, used to
    decode predictions. ``transform``: a ``FittedTransform``, a ``TransformGraph`` artifact or
    a saved transform's uri, copied into the bundle. ``sample``: a few rows of ``X`` (or raw
    rows) for frameworks that trace the model. ``task``: ``"classification"`` or
    ``"regression"``; by default from ``class_names`` or the framework.

    The directory must be empty or hold only a bundle this function wrote, which is replaced.
    """
    features = _checked_features(features, label)
    class_names = None if class_names is None else _checked_class_names(class_names)
    fitted = _resolve_transform(transform)
    inputs = ModelInputs(features, fitted)
    adapter = get_adapter(framework) if framework is not None else adapter_for(model)
    task = _task(task, class_names, adapter, model)
    X_sample = None if sample is None else _sample_matrix(sample, inputs)
    versions = mf.Versions(adapter)
    serving_model_dir = str(getattr(serving_model_dir, "uri", serving_model_dir))
    with writable(serving_model_dir) as root:
        saved = _save_model_files(adapter, model, root, X_sample)
        if fitted is not None:
            fitted.save(os.path.join(root, mf.TRANSFORM_DIR))
        mf.write_mlflow_files(
            root,
            framework=adapter.name,
            python_version=platform.python_version(),
            requirements=versions.requirements(),
        )
        manifest = {
            "format": mf.FORMAT,
            "framework": adapter.name,
            "framework_version": adapter.framework_version(),
            "adapter": versions.adapter(),
            "python_version": platform.python_version(),
            "conveyor_version": versions.conveyor,
            "task": task,
            "signature": {"inputs": inputs.signature()},
            "features": features,
            "outputs": _outputs(task, class_names),
            "label": label,
            "class_names": class_names,
            "transform": mf.TRANSFORM_DIR if fitted is not None else None,
            "model": {"format": saved.format, "files": saved.files, "info": saved.info},
            "needs_code": saved.needs_code,
            "files": mf.hash_files(root),
        }
        try:
            mf.write_manifest(root, manifest)
        except (TypeError, ValueError) as exc:
            raise ConveyorError(
                f"The bundle's manifest is not JSON-able ({exc}): class_names and the "
                f"{adapter.name!r} adapter's SavedModel.info must hold plain values."
            ) from None
    return serving_model_dir


def load_model(uri: str | Any) -> Bundle:
    """The bundle at ``uri`` (a folder, a URI or a ``Model`` artifact). Every file is checked
    against the manifest's SHA-256 first: a changed, missing or unlisted file is refused with
    its name before anything is deserialized."""
    uri = str(getattr(uri, "uri", uri))
    root, workdir = local_copy(uri)
    manifest = mf.read_manifest(root)
    mf.verify_files(root, manifest)
    try:
        adapter = get_adapter(manifest["adapter"]["name"])
    except ConveyorError as exc:
        raise ConveyorError(
            f"The model bundle at {uri} was saved by {manifest['adapter']['class']}, which "
            f"this process does not know. Register it (or install the package that declares "
            f"it) before loading. {exc}"
        ) from None
    transform = None
    if manifest.get("transform"):
        transform = load_transform(os.path.join(root, manifest["transform"]))
    spec = manifest["model"]
    saved = SavedModel(spec["files"], spec["format"], spec["info"], manifest["needs_code"])
    try:
        model = adapter.load(os.path.join(root, mf.MODEL_DIR), saved)
    except ConveyorError:
        raise
    except Exception as exc:
        raise ConveyorError(
            f"The {adapter.name!r} adapter could not load the model in {uri}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    inputs = ModelInputs(manifest["features"], transform)
    return Bundle(root if workdir is None else uri, manifest, adapter, model, inputs, workdir)


class Bundle:
    """A loaded model bundle: predicts from raw features, as served.

    Example::

        bundle = load_model(model.uri)
        bundle.predict(frame)               # labels, decoded with class_names
        bundle.predict_proba(rows)          # [N, C] float, columns in class_names order
        bundle.signature                    # [{"name": ..., "type": ..., "required": ...}]
    """

    def __init__(
        self,
        uri: str,
        manifest: dict[str, Any],
        adapter: ModelAdapter,
        model: Any,
        inputs: ModelInputs,
        workdir: Any = None,
    ) -> None:
        self.uri = uri
        self.manifest = manifest
        self.adapter = adapter
        self.model = model  # the framework's own model object
        self.inputs = inputs
        self._workdir = workdir  # a remote bundle's local copy, kept while the bundle lives

    @property
    def signature(self) -> list[dict[str, Any]]:
        """The raw features ``predict`` reads: name, type and whether required."""
        return self.manifest["signature"]["inputs"]

    @property
    def features(self) -> list[str]:
        return list(self.manifest["features"])

    @property
    def class_names(self) -> list[Any] | None:
        return self.manifest.get("class_names")

    @property
    def label(self) -> str | None:
        return self.manifest.get("label")

    @property
    def task(self) -> str | None:
        return self.manifest.get("task")

    def to_matrix(self, raw: Any) -> np.ndarray:
        """The model's input ``X`` (float32 ``[N, F]``) for raw features."""
        return self.inputs.matrix(raw)

    def predict(self, raw: Any) -> np.ndarray:
        """Predictions for raw features (a DataFrame, a list of dicts, a dict of columns or an
        Arrow Table/RecordBatch): class labels when the bundle has class_names."""
        return self.predict_transformed(self.to_matrix(raw))

    def predict_proba(self, raw: Any) -> np.ndarray:
        """Class probabilities ``[N, C]`` for raw features, columns in class id order."""
        return self.predict_proba_transformed(self.to_matrix(raw))

    def predict_transformed(self, X: Any) -> np.ndarray:
        """Predictions for ``X`` (float32 ``[N, F]``, or an Arrow table of transformed
        features), class labels decoded."""
        X = self._matrix(X)
        if len(X) == 0:
            empty = np.zeros(0, dtype=np.int64 if self.class_names else np.float32)
            return self._decode(empty)
        return self._decode(np.asarray(self.adapter.predict(self.model, X)))

    def predict_proba_transformed(self, X: Any) -> np.ndarray:
        """Class probabilities for ``X`` (see :meth:`predict_transformed`)."""
        X = self._matrix(X)
        if len(X) == 0:
            return np.zeros((0, len(self.class_names or ())), dtype=np.float32)
        proba = self.adapter.predict_proba(self.model, X)
        if proba is None:
            raise ConveyorError(
                f"The {self.adapter.name} model in {self.uri} gives no class probabilities; "
                "call predict for its predictions."
            )
        proba = np.asarray(proba)
        names = self.class_names
        if names is not None and (proba.ndim != 2 or proba.shape[1] != len(names)):
            raise ConveyorError(
                f"The {self.adapter.name} model in {self.uri} returned probabilities of shape "
                f"{list(proba.shape)}, but class_names has {len(names)} entries."
            )
        return proba

    def predict_with_proba_transformed(
        self, X: np.ndarray, *, finite: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Predictions (decoded as :meth:`predict_transformed` decodes them) and class
        probabilities for ``X`` (float32 ``[N, F]``, N > 0) from one model call, where the
        adapter can give both at once (``adapter.predict_with_proba``); None otherwise.
        ``finite``: ``X`` is known to hold no NaN or infinity."""
        both = getattr(self.adapter, "predict_with_proba", None)
        if both is None:
            return None
        answer = both(self.model, self._matrix(X), finite=finite)
        if answer is None:
            return None
        ids, proba = answer
        names = self.class_names
        if names is not None and (proba.ndim != 2 or proba.shape[1] != len(names)):
            return None
        return self._decode(np.asarray(ids)), proba

    def _matrix(self, X: Any) -> np.ndarray:
        if not isinstance(X, np.ndarray):
            if not hasattr(X, "column") or not hasattr(X, "num_rows"):
                raise ConveyorError(
                    "predict_transformed takes X as a float32 array [N, F] or an Arrow table "
                    f"of transformed features; got {type(X).__name__}."
                )
            return feature_matrix(X, self.features)
        if X.ndim != 2 or X.shape[1] != self.inputs.width:
            raise ConveyorError(
                f"X must have shape [N, {self.inputs.width}] (features "
                f"{', '.join(self.features)}); got {list(X.shape)}."
            )
        return np.ascontiguousarray(X, dtype=np.float32)

    def _decode(self, predicted: np.ndarray) -> np.ndarray:
        names = self.class_names
        if names is None:
            return predicted
        ids = predicted
        if ids.dtype.kind == "b":  # a binary classifier's "is class 1"
            ids = ids.astype(np.int64)
        elif ids.dtype.kind not in "iuf":
            raise ConveyorError(
                f"The {self.adapter.name} model in {self.uri} returned {ids.dtype} values, not "
                "class ids; a bundle with class_names needs a classifier."
            )
        if ids.dtype.kind == "f":
            if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
                raise ConveyorError(
                    f"The {self.adapter.name} model in {self.uri} returned values that are not "
                    "class ids; a bundle with class_names needs a classifier."
                )
            ids = ids.astype(np.int64)
        bad = ids[(ids < 0) | (ids >= len(names))] if ids.size else ids
        if bad.size:
            raise ConveyorError(
                f"The {self.adapter.name} model in {self.uri} predicted class id {bad.flat[0]}, "
                f"but class_names has {len(names)} entries."
            )
        return np.asarray(names)[ids]

    def __repr__(self) -> str:
        return (
            f"Bundle({self.uri!r}, framework={self.manifest['framework']!r}, "
            f"features={len(self.features)}, task={self.task!r})"
        )


# ------------------------------------------------------------------ saving helpers
def attach_transform(serving_model_dir: str, transform: FittedTransform | str | Any) -> bool:
    """Put ``transform`` into the bundle at ``serving_model_dir`` when it holds none, so it
    predicts from raw features: the transform is copied beside the model and the manifest's
    signature, transform entry and file hashes are rewritten. The bundle's files are checked
    first; the model files are not touched. Returns whether the transform was added."""
    uri = str(getattr(serving_model_dir, "uri", serving_model_dir))
    manifest = mf.read_manifest(uri)
    if manifest.get("transform"):
        return False
    fitted = _resolve_transform(transform)
    inputs = ModelInputs(manifest["features"], fitted)
    root, keep = local_copy(uri)
    try:
        mf.verify_files(root, manifest)
        fitted.save(os.path.join(root, mf.TRANSFORM_DIR))  # type: ignore[union-attr]
        manifest = {
            **manifest,
            "signature": {"inputs": inputs.signature()},
            "transform": mf.TRANSFORM_DIR,
            "files": mf.hash_files(root),
        }
        mf.write_manifest(root, manifest)
        if keep is not None:  # a remote bundle: upload what changed
            added = [n for n in mf.bundle_files(root) if n.startswith(mf.TRANSFORM_DIR + "/")]
            upload(root, uri, [*added, mf.MANIFEST_FILE])
    finally:
        if keep is not None:
            keep.cleanup()
    return True


def is_bundle(directory: str) -> bool:
    """Whether ``directory`` holds a model bundle (it has a manifest; hashes are checked
    only by :func:`load_model`). A Trainer asks this after ``run_fn``."""
    return mf.is_bundle(str(getattr(directory, "uri", directory)))


__all__ = ["Bundle", "attach_transform", "is_bundle", "load_model", "save_model"]
