"""The penguin pipeline: CsvExampleGen, then custom components that read the Examples
through Conveyor's data access layer.

CsvExampleGen hash-splits the CSV 2:1 into train and eval as Parquet. Statistics summarises
each feature, Train fits a nearest-centroid classifier on z-scored features, and Evaluate
measures its accuracy on the eval split and blesses it when it clears a bar.

    conveyor run examples/penguin/pipeline.py
"""

import json
from pathlib import Path

import numpy as np

from conveyor import Input, Output, Param, Pipeline, component, io
from conveyor.components import CsvExampleGen
from conveyor.types import Examples, ExampleStatistics, Model, ModelBlessing, ModelEvaluation

DATA = Path(__file__).parent / "data"
LABEL = "species"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]


@component
def Statistics(examples: Input[Examples], statistics: Output[ExampleStatistics]):
    """Mean, standard deviation, min and max of each feature of the train split."""
    X, _ = io.to_numpy(examples, "train", features=FEATURES, dtype=np.float64)
    summary = {
        name: {"mean": column.mean(), "std": column.std(), "min": column.min(), "max": column.max()}
        for name, column in zip(FEATURES, X.T, strict=True)
    }
    summary = {name: {k: float(v) for k, v in stats.items()} for name, stats in summary.items()}
    Path(statistics.uri, "summary.json").write_text(json.dumps(summary, indent=2))
    statistics.properties["features"] = len(summary)


@component
def Train(examples: Input[Examples], statistics: Input[ExampleStatistics], model: Output[Model]):
    """Nearest centroid on z-scored features."""
    stats = json.loads(Path(statistics.uri, "summary.json").read_text())
    mean = np.array([stats[f]["mean"] for f in FEATURES])
    std = np.array([stats[f]["std"] or 1.0 for f in FEATURES])
    X, y = io.to_numpy(examples, "train", features=FEATURES, label=LABEL, dtype=np.float64)
    z = (X - mean) / std
    centroids = {int(c): z[y == c].mean(axis=0).tolist() for c in np.unique(y)}
    fitted = {
        "features": FEATURES,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "centroids": centroids,
    }
    Path(model.uri, "model.json").write_text(json.dumps(fitted))
    model.properties["classes"] = len(centroids)


@component
def Evaluate(
    examples: Input[Examples],
    model: Input[Model],
    evaluation: Output[ModelEvaluation],
    blessing: Output[ModelBlessing],
    min_accuracy: Param[float] = 0.9,
):
    """Accuracy on the eval split; bless the model when it reaches ``min_accuracy``."""
    fitted = json.loads(Path(model.uri, "model.json").read_text())
    X, y = io.to_numpy(examples, "eval", features=fitted["features"], label=LABEL, dtype=np.float64)
    z = (X - np.array(fitted["mean"])) / np.array(fitted["std"])
    labels = np.array([int(c) for c in fitted["centroids"]])
    centers = np.array(list(fitted["centroids"].values()))
    predicted = labels[((z[:, None, :] - centers[None]) ** 2).sum(axis=2).argmin(axis=1)]
    accuracy = float((predicted == y).mean())
    Path(evaluation.uri, "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    evaluation.properties.update(accuracy=accuracy, eval_examples=len(y))
    blessing.properties.update(blessed=accuracy >= min_accuracy, model_id=model.id)
    print(f"eval accuracy {accuracy:.3f} on {len(y)} rows")


example_gen = CsvExampleGen(input_base=str(DATA))
statistics = Statistics(examples=example_gen.outputs["examples"])
train = Train(examples=example_gen.outputs["examples"], statistics=statistics.outputs["statistics"])
evaluate = Evaluate(examples=example_gen.outputs["examples"], model=train.outputs["model"])

pipeline = Pipeline("penguin-demo", [example_gen, statistics, train, evaluate])
