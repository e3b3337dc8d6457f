"""The Chicago taxi pipeline, TFX's taxi example with a LightGBM model: will a trip's tip be
more than 20 % of its fare?

CsvExampleGen hash-splits the trips 2:1 into train and eval; StatisticsGen, SchemaGen and
ExampleValidator describe and check them; Transform runs TFX's taxi ``preprocessing_fn``
(z-scores, vocabularies, quantile buckets, the ``tips_xf`` label); Trainer fits LightGBM on
the transformed train split (``taxi_lightgbm.py``). Evaluator scores the bundle on the raw
eval trips, overall and for each ``trip_start_hour``, deriving the label with the bundle's
own transform, and blesses it when its accuracy is at least 0.6 and its AUC no worse than
the last blessed model's; Pusher then publishes it under ``$PUSH_DESTINATION`` (else
``serving_model/chicago-taxi`` in the Conveyor home).

    conveyor run examples/chicago_taxi/pipeline.py
    conveyor show <the ModelEvaluation's id> --html --open
"""

import os
from pathlib import Path

from conveyor import LatestBlessedModel, Pipeline, Resolver
from conveyor.components import (
    CsvExampleGen,
    Evaluator,
    ExampleValidator,
    Pusher,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
)
from conveyor.evaluation import ChangeThreshold, EvalConfig, MetricThreshold, SlicingSpec
from conveyor.settings import conveyor_home
from conveyor.types import ModelBlessing

HERE = Path(__file__).resolve().parent
PIPELINE_NAME = "chicago-taxi"

EVAL_CONFIG = EvalConfig(
    label_key="tips_xf",  # computed from the raw tips and fare by the bundle's transform
    metrics=["example_count", "accuracy", "roc_auc", "pr_auc", "log_loss", "calibration"],
    slicing_specs=[SlicingSpec(), SlicingSpec(feature_keys=["trip_start_hour"])],
    thresholds={
        "accuracy": MetricThreshold(lower=0.6),
        "roc_auc": MetricThreshold(change=ChangeThreshold(absolute=-1e-10)),
    },
)


def create_pipeline(
    *,
    name: str = PIPELINE_NAME,
    root: str | Path | None = None,
    metadata_url: str | None = None,
    push_destination: str | Path | None = None,
) -> Pipeline:
    """The taxi pipeline; ``push_destination`` defaults to ``$PUSH_DESTINATION``, else
    ``serving_model/<name>`` in the Conveyor home."""
    destination = push_destination or os.environ.get("PUSH_DESTINATION")
    destination = destination or conveyor_home() / "serving_model" / name
    example_gen = CsvExampleGen(input_base=str(HERE / "data"))
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=str(HERE / "preprocessing.py"),
    )
    trainer = Trainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        module_file=str(HERE / "taxi_lightgbm.py"),
    )
    latest_blessed = Resolver(
        LatestBlessedModel, model=trainer.outputs["model"], model_blessing=ModelBlessing
    ).with_id("LatestBlessedModel")
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        schema=schema_gen.outputs["schema"],
        eval_config=EVAL_CONFIG,
    )
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=str(destination),
    )
    nodes = [example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
             latest_blessed, evaluator, pusher]  # fmt: skip
    return Pipeline(name, nodes, root=root, metadata_url=metadata_url)


pipeline = create_pipeline()
