"""Evaluator over taxi-like rows with 24 slices by ``trip_start_hour``, against the practical
floor: the same Parquet read, the bare scikit-learn ``predict_proba`` and ``sklearn.metrics``
on every slice.

The input is the taxi-like table of ``bench/datasets.py`` with TFX's taxi label added
(``big_tipper``: tips above 20 % of the fare), laid out as an Examples folder
(``Split-eval``). The model is a scikit-learn logistic regression on five raw columns, saved as
a bundle (trained on the 15,000-row taxi sample). Three measurements, each in a fresh
process, best of ``--repeats``:

- ``read + predict_proba``: loading the bundle (hash checks, imports), ``pq.read_table`` of
  the columns, the float32 matrix and the bare model's ``predict_proba``: what predictions
  cost, with no metric at all;
- ``... + sklearn.metrics (floor)``: then, for Overall and each hour, the Evaluator's default
  binary metrics with ``sklearn.metrics`` (accuracy, balanced accuracy, precision, recall, F1,
  ROC AUC, average precision, log loss, Brier score, confusion matrix, calibration curve);
- ``Evaluator``: the component in a one-node pipeline (Importers for the examples and the
  model), its node's duration: the bundle's checked predictions, every metric per slice, the
  exact AUCs, the files (JSON, Parquet, plots) and the blessing.

Peak memory is the process's and its children's (the runner forks the Evaluator).

    .venv/bin/python bench/evaluate.py                          # 1M rows, best of 3
    .venv/bin/python bench/evaluate.py --rows 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import best_of_each, pipeline_script, print_header, print_row
from datasets import OUT, TAXI, make_taxi

FEATURES = ["fare", "trip_miles", "trip_start_hour", "trip_start_day", "trip_start_month"]
LABEL = "big_tipper"
SLICE = "trip_start_hour"
COLUMNS = [*FEATURES, LABEL, SLICE]

_READ = f"""
import json, resource, sys, time
import numpy as np
import pyarrow.parquet as pq
from conveyor.frameworks import load_model
path, model_uri = sys.argv[1], sys.argv[2]
start = time.perf_counter()
model = load_model(model_uri).model
table = pq.read_table(path, columns={sorted(set(COLUMNS))!r})
X = np.column_stack([table[f].to_numpy().astype(np.float32) for f in {FEATURES!r}])
proba = model.predict_proba(X)
y, hours = table[{LABEL!r}].to_numpy(), table[{SLICE!r}].to_numpy()
"""
_METRICS = """
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
def slice_metrics(y, p):
    pred = p.argmax(axis=1)
    out = [skm.accuracy_score(y, pred), skm.balanced_accuracy_score(y, pred),
           skm.precision_score(y, pred, zero_division=0), skm.recall_score(y, pred),
           skm.f1_score(y, pred), skm.log_loss(y, p, labels=[0, 1]),
           skm.brier_score_loss(y, p[:, 1]), skm.confusion_matrix(y, pred, labels=[0, 1]),
           calibration_curve(y, p[:, 1], n_bins=10)]
    if len(np.unique(y)) == 2:
        out += [skm.roc_auc_score(y, p[:, 1]), skm.average_precision_score(y, p[:, 1])]
    return out
results = [slice_metrics(y, proba)]
for hour in np.unique(hours):
    mask = hours == hour
    results.append(slice_metrics(y[mask], proba[mask]))
"""
_DONE = """
seconds = time.perf_counter() - start
peak = max(resource.getrusage(who).ru_maxrss
           for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"seconds": seconds, "rows": len(y), "peak_kb": peak}))
"""
PREDICT = _READ + _DONE
FLOOR = _READ + _METRICS + _DONE
EVALUATOR = pipeline_script(
    f"""
    from conveyor import Importer, Pipeline
    from conveyor.components import Evaluator
    from conveyor.evaluation import EvalConfig, MetricThreshold, SlicingSpec
    from conveyor.types import Examples, Model
    examples = Importer(sys.argv[1], Examples).with_id("examples")
    model = Importer(sys.argv[2], Model).with_id("model")
    config = EvalConfig(label_key={LABEL!r}, slicing_specs=[SlicingSpec(feature_keys=[{SLICE!r}])],
                        thresholds={{"accuracy": MetricThreshold(lower=0.5)}})
    evaluator = Evaluator(examples=examples.outputs["result"], model=model.outputs["result"],
                          eval_config=config)
    pipeline = Pipeline("bench", [examples, model, evaluator], root=workdir + "/root",
                        metadata_url=f"sqlite:///{{workdir}}/md.db")
    """,
    node="Evaluator",
    output="evaluation",
)


def labelled_taxi(rows: int) -> Path:
    """(Once) the ``rows``-row taxi table with ``big_tipper``, as an Examples folder."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = OUT / f"taxi-eval-{rows}"
    target = folder / "Split-eval" / "part-00000.parquet"
    if target.exists():
        return folder
    _, parquet_path = make_taxi(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = pq.ParquetFile(parquet_path)
    schema = source.schema_arrow.append(pa.field(LABEL, pa.int64()))
    tmp = target.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for batch in source.iter_batches(batch_size=250_000):
            big = pc.greater(batch.column("tips"), pc.multiply(batch.column("fare"), 0.2))
            label = pc.cast(pc.fill_null(big, False), "int64")
            writer.write_batch(batch.append_column(LABEL, label))
    tmp.replace(target)
    return folder


def train_bundle(folder: str) -> str:
    """A logistic regression on the taxi sample's five raw columns, saved as a bundle."""
    import numpy as np
    import pyarrow.csv as pacsv
    from sklearn.linear_model import LogisticRegression

    from conveyor.frameworks import save_model

    table = pacsv.read_csv(TAXI)
    X = np.column_stack([table[f].to_numpy().astype(np.float32) for f in FEATURES])
    tips, fare = table["tips"].to_numpy(), table["fare"].to_numpy()
    model = LogisticRegression(max_iter=1000).fit(X, (tips > 0.2 * fare).astype(int))
    return save_model(model, folder, features=FEATURES, label=LABEL, class_names=[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    examples = labelled_taxi(args.rows)
    parquet = examples / "Split-eval" / "part-00000.parquet"
    with tempfile.TemporaryDirectory() as tmp:
        model = train_bundle(os.path.join(tmp, "model"))
        predict, floor, ours = best_of_each(
            [
                (PREDICT, str(parquet), model),
                (FLOOR, str(parquet), model),
                (EVALUATOR, str(examples), model, tmp),
            ],
            args.repeats,
        )
    assert predict["rows"] == floor["rows"] == ours["rows"] == args.rows, (floor, ours)
    print_header(
        "Conveyor Evaluator benchmark (24 slices by trip_start_hour and Overall)",
        f"{args.rows:,} taxi-like rows, {parquet.stat().st_size / 1e6:.1f} MB Parquet, "
        f"logistic regression on {len(FEATURES)} columns",
        args.repeats,
    )
    width = 40
    print(f"{'':{width}}{'seconds':>9}{'rows/s':>12}{'peak MB':>10}")
    print_row("read + predict_proba", predict, width)
    print_row("... + sklearn.metrics per slice (floor)", floor, width)
    print_row("Evaluator", ours, width)
    print(f"\nEvaluator / floor: {ours['seconds'] / floor['seconds']:.2f}x the time, "
          f"{ours['peak_kb'] / floor['peak_kb']:.2f}x the peak memory")  # fmt: skip
    print(f"Evaluator / read + predict_proba: {ours['seconds'] / predict['seconds']:.2f}x the time")


if __name__ == "__main__":
    main()
