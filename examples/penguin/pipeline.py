"""The penguin demo: a small pipeline of custom components, run with `conveyor run`.

Ingest splits the CSV into train/eval by a stable hash of each row, Statistics summarises
every feature, Train fits a nearest-centroid classifier and Evaluate measures its accuracy
on the eval split and blesses it when the accuracy clears a bar.

    conveyor run examples/penguin/pipeline.py
"""

import csv
import hashlib
import json
import math
from pathlib import Path

from conveyor import Input, Output, Param, Pipeline, component
from conveyor.types import Examples, ExampleStatistics, Model, ModelBlessing, ModelEvaluation

DATA = Path(__file__).parent / "data" / "penguins_processed.csv"
LABEL = "species"


def read_split(examples, split):
    return json.loads(Path(examples.uri, f"Split-{split}", "rows.json").read_text())


@component
def Ingest(
    examples: Output[Examples], csv_path: Param[str] = str(DATA), eval_buckets: Param[int] = 1
):
    """Hash-split rows 2:1 into train and eval (the same row always lands in the same split)."""
    rows = {"train": [], "eval": []}
    with open(csv_path, newline="") as handle:
        for record in csv.DictReader(handle):
            bucket = int(hashlib.sha256(json.dumps(record).encode()).hexdigest(), 16) % 3
            split = "eval" if bucket < eval_buckets else "train"
            rows[split].append({k: float(v) for k, v in record.items()})
    for split, items in rows.items():
        Path(examples.uri, f"Split-{split}").mkdir()
        Path(examples.uri, f"Split-{split}", "rows.json").write_text(json.dumps(items))
        examples.properties[f"{split}_rows"] = len(items)
    examples.properties["split_names"] = sorted(rows)
    print(f"ingested {sum(map(len, rows.values()))} rows from {csv_path}")


@component
def Statistics(examples: Input[Examples], statistics: Output[ExampleStatistics]):
    """Mean, standard deviation, min and max of each feature of the train split."""
    rows = read_split(examples, "train")
    summary = {}
    for feature in rows[0]:
        values = [row[feature] for row in rows]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        summary[feature] = {"mean": mean, "std": std, "min": min(values), "max": max(values)}
    Path(statistics.uri, "summary.json").write_text(json.dumps(summary, indent=2))
    statistics.properties["features"] = len(summary)


@component
def Train(examples: Input[Examples], statistics: Input[ExampleStatistics], model: Output[Model]):
    """Nearest centroid on z-scored features."""
    stats = json.loads(Path(statistics.uri, "summary.json").read_text())
    features = [f for f in stats if f != LABEL]
    sums, counts = {}, {}
    for row in read_split(examples, "train"):
        label = int(row[LABEL])
        z = [(row[f] - stats[f]["mean"]) / (stats[f]["std"] or 1.0) for f in features]
        sums[label] = [a + b for a, b in zip(sums.get(label, [0.0] * len(z)), z, strict=True)]
        counts[label] = counts.get(label, 0) + 1
    centroids = {label: [v / counts[label] for v in total] for label, total in sums.items()}
    scaling = {f: [stats[f]["mean"], stats[f]["std"] or 1.0] for f in features}
    Path(model.uri, "model.json").write_text(
        json.dumps({"centroids": centroids, "scaling": scaling})
    )
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
    rows = read_split(examples, "eval")
    correct = 0
    for row in rows:
        z = [(row[f] - m) / s for f, (m, s) in fitted["scaling"].items()]
        label = min(
            fitted["centroids"],
            key=lambda c: sum((a - b) ** 2 for a, b in zip(z, fitted["centroids"][c], strict=True)),
        )
        correct += int(label) == int(row[LABEL])
    accuracy = correct / len(rows)
    Path(evaluation.uri, "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    evaluation.properties["accuracy"] = accuracy
    blessing.properties.update(blessed=accuracy >= min_accuracy, model_id=model.id)
    print(f"eval accuracy {accuracy:.3f} on {len(rows)} rows")


ingest = Ingest()
statistics = Statistics(examples=ingest.outputs["examples"])
train = Train(examples=ingest.outputs["examples"], statistics=statistics.outputs["statistics"])
evaluate = Evaluate(examples=ingest.outputs["examples"], model=train.outputs["model"])

pipeline = Pipeline("penguin-demo", [ingest, statistics, train, evaluate])
