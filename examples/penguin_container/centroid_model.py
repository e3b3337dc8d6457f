"""The Python side of the shell trainer: the CSV it reads, the bundle around the file it
writes, and the ``predict_fn`` with which Evaluator scores that bundle.

- ``ExportCsv`` writes one split of the transformed examples as ``{uri}/data.csv`` (a
  ``CsvExamples`` artifact), which the shell script reads.
- ``CentroidTrainer`` (a container component) runs ``centroids.sh``: per-class feature means.
- ``PackageModel`` puts ``centroids.csv`` in a model bundle with the transform and the class
  names, so the bundle turns raw rows into the features the centroids were computed on. The
  built-in ``files`` adapter keeps files no framework can call: ``predict_fn`` does the
  predicting.

    evaluator = Evaluator(examples=..., model=package.outputs["model"],
                          module_file="centroid_model.py", eval_config=...)
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from conveyor import Input, Output, Param, component, container_component
from conveyor.frameworks import save_model
from conveyor.types import Artifact, Examples, Model, TransformGraph

HERE = Path(__file__).resolve().parent
CENTROIDS = "centroids.csv"
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


class CsvExamples(Artifact):
    """One split of examples as ``{uri}/data.csv``, with a header row."""

    TYPE_NAME = "CsvExamples"


@component
def ExportCsv(examples: Input[Examples], csv_examples: Output[CsvExamples],
              split: Param[str] = "train"):  # fmt: skip
    """Write ``split`` of ``examples`` as CSV for programs that cannot read Parquet."""
    from conveyor.io import read_table

    table = read_table(examples, split)
    table.to_pandas().to_csv(Path(csv_examples.uri, "data.csv"), index=False)
    csv_examples.properties.update(split=split, rows=table.num_rows)


CentroidTrainer = container_component(
    name="CentroidTrainer",
    command=[
        "sh",
        str(HERE / "centroids.sh"),
        "{inputs.examples}/data.csv",
        "{outputs.model}",
        "{parameters.label}",
    ],
    inputs={"examples": CsvExamples},
    outputs={"model": Model},
    parameters={"label": "species"},
)


@component
def PackageModel(
    model_files: Input[Model],
    transform_graph: Input[TransformGraph],
    model: Output[Model],
    class_names: Param[list | None] = None,
):
    """The shell trainer's files as a bundle that carries the transform."""
    with open(Path(model_files.uri, CENTROIDS)) as handle:
        label, *features = next(csv.reader(handle))
    save_model(
        model_files.uri,
        model.uri,
        framework="files",
        features=features,
        label=label,
        class_names=class_names or SPECIES,
        transform=transform_graph,
    )


def predict_fn(model, batch):
    """Nearest centroid: the class id whose mean features lie closest to each row's."""
    table = np.loadtxt(Path(model.model, CENTROIDS), delimiter=",", skiprows=1, ndmin=2)
    classes, centroids = table[:, 0].astype(np.int64), table[:, 1:]
    X = model.to_matrix(batch)
    distances = ((X[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return classes[distances.argmin(axis=1)]
