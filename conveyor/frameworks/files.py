"""Model files that no framework can call: what a trainer outside Python leaves behind.

A container component (a C program, an R script, a shell script) writes its model as plain
files. The ``files`` adapter bundles that folder as it is: every file hashed in the
manifest and checked before anything reads it, with the transform and the class names
beside it, so the bundle still turns raw rows into the features the model was trained on.
It cannot predict by itself; a ``predict_fn(model, batch)`` does (Evaluator's, or
BulkInferrer's), reading the files from ``model.model``, the bundle's model folder.

Example::

    save_model(trained.uri, model.uri, framework="files", features=[...], label="species",
               class_names=["Adelie", "Chinstrap", "Gentoo"], transform=transform_graph)

    def predict_fn(model, batch):              # in the Evaluator's module_file
        centroids = np.loadtxt(Path(model.model, "centroids.csv"), delimiter=",")
        return nearest(model.to_matrix(batch), centroids)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.frameworks.base import ModelAdapter, SavedModel
from conveyor.types import ConveyorError

__all__ = ["FilesAdapter"]

MODEL_DIR = "files"


class FilesAdapter(ModelAdapter):
    """Bundles a folder of model files (``save_model(folder, ..., framework="files")``);
    the loaded model is that folder's path."""

    name = "files"
    modules = ()  # never chosen from a model's type: name it

    def handles(self, model: Any) -> bool:
        return False

    def framework_version(self) -> str:
        return "none"  # plain files: the manifest records Conveyor's own version beside

    def save(self, model: Any, directory: str, *, sample: np.ndarray | None) -> SavedModel:
        source = Path(model) if isinstance(model, str | os.PathLike) else None
        if source is None or not source.is_dir():
            raise ConveyorError(
                f"framework='files' saves a folder of model files; got {model!r}. Pass the "
                "folder's path (e.g. the container trainer's output artifact's uri)."
            )
        target = Path(directory, MODEL_DIR)
        shutil.copytree(source, target, symlinks=False)
        files = sorted(
            str(p.relative_to(directory)).replace(os.sep, "/")
            for p in target.rglob("*")
            if p.is_file()
        )
        if not files:
            raise ConveyorError(f"The model folder {source} holds no files to bundle.")
        return SavedModel(files=files, format="files")

    def load(self, directory: str, saved: SavedModel) -> str:
        return str(Path(directory, MODEL_DIR))

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        raise ConveyorError(
            f"This bundle holds model files ({model}) that no framework can call: score it "
            "with a predict_fn(model, batch) that reads them (Evaluator(predict_fn=...) or "
            "Evaluator(module_file=...) defining predict_fn), or bundle a model a framework "
            "adapter can load."
        )
