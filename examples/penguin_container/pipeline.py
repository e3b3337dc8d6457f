"""The penguin pipeline with a trainer that is not Python: ``centroids.sh`` (POSIX shell and
awk) learns per-species feature means from a CSV export of the transformed examples, and
Evaluator scores the result through a Python ``predict_fn`` (``centroid_model.py``).

    conveyor run examples/penguin_container/pipeline.py
    conveyor compile examples/penguin_container/pipeline.py --target kfp -o penguin.yaml
"""

from pathlib import Path

from centroid_model import CentroidTrainer, ExportCsv, PackageModel

from conveyor import Pipeline
from conveyor.components import CsvExampleGen, Evaluator, Transform
from conveyor.evaluation import EvalConfig, MetricThreshold, SlicingSpec

HERE = Path(__file__).resolve().parent
PENGUIN = HERE.parent / "penguin"

EVAL_CONFIG = EvalConfig(
    label_key="species",
    metrics=["example_count", "accuracy", "balanced_accuracy"],
    slicing_specs=[SlicingSpec(), SlicingSpec(feature_keys=["species"])],
    thresholds={"accuracy": MetricThreshold(lower=0.6)},
)


def create_pipeline(*, root: str | Path | None = None, metadata_url: str | None = None) -> Pipeline:
    example_gen = CsvExampleGen(input_base=str(PENGUIN / "data" / "labelled"))
    transform = Transform(examples=example_gen.outputs["examples"],
                          module_file=str(PENGUIN / "preprocessing.py"))  # fmt: skip
    export = ExportCsv(examples=transform.outputs["transformed_examples"])
    trainer = CentroidTrainer(examples=export.outputs["csv_examples"], label="species")
    package = PackageModel(model_files=trainer.outputs["model"],
                           transform_graph=transform.outputs["transform_graph"])  # fmt: skip
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=package.outputs["model"],
        eval_config=EVAL_CONFIG,
        module_file=str(HERE / "centroid_model.py"),
    )
    nodes = [example_gen, transform, export, trainer, package, evaluator]
    return Pipeline("penguin-container", nodes, root=root, metadata_url=metadata_url)
