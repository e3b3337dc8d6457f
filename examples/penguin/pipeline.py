"""The penguin pipeline, TFX's penguin example end to end: data in, validated, transformed,
trained with the framework of your choice, evaluated against the last blessed model, checked
in a real model server, pushed, and used for batch predictions.

CsvExampleGen hash-splits ``data/labelled`` 2:1 into train and eval as Parquet.
StatisticsGen computes TFDV-compatible statistics per split, SchemaGen infers a schema, and
ExampleValidator checks every split against it (the run stops on anomalies). Transform
z-scores the four measurements (``preprocessing.py``). Trainer runs one framework's
``run_fn`` (``penguin_sklearn.py`` unless ``FRAMEWORK`` says otherwise) on the transformed
train split and saves a bundle that carries the transform. The Resolver finds the latest
blessed model of earlier runs; Evaluator scores the new bundle on the raw eval rows, overall
and per species, and blesses it when its accuracy is at least 0.6 and no worse than that
baseline's. InfraValidator serves the bundle in the model server on a loopback port and
sends it real rows. Pusher copies a model blessed by both as the next version under the push
destination (``$PUSH_DESTINATION``, or ``serving_model/<pipeline>`` in the Conveyor home), the
layout ``conveyor serve --model-base`` watches. BulkInferrer predicts the species of
``data/unlabelled`` with the blessed model.

    conveyor run examples/penguin/pipeline.py
    FRAMEWORK=torch conveyor run examples/penguin/pipeline.py   # or xgboost, flax, ...
    conveyor serve --model-name penguin --model-base ~/.conveyor/serving_model/penguin-demo

From Python, ``create_pipeline(["sklearn", "torch"])`` trains several frameworks on one
shared Transform (nodes ``Trainer.sklearn``, ``Evaluator.sklearn``, ..., each framework
pushed under its own folder).
"""

import os
from collections.abc import Sequence
from pathlib import Path

from conveyor import ConveyorError, LatestBlessedModel, Pipeline, Resolver
from conveyor.components import (
    BulkInferrer,
    CsvExampleGen,
    Evaluator,
    ExampleValidator,
    InfraValidator,
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
LABELLED = HERE / "data" / "labelled"
UNLABELLED = HERE / "data" / "unlabelled"
PIPELINE_NAME = "penguin-demo"

#: framework -> (its Trainer module in this folder, the Trainer's train_args)
TRAINERS = {
    "sklearn": ("penguin_sklearn.py", {"num_steps": 2000}),  # TFX's: 175 epochs of 20 rows
    "xgboost": ("penguin_xgboost.py", None),
    "lightgbm": ("penguin_lightgbm.py", None),
    "torch": ("penguin_torch.py", {"num_steps": 300}),
    "flax": ("penguin_flax.py", {"num_steps": 300}),
    "keras": ("penguin_keras.py", {"num_steps": 300}),
}

#: TFX's penguin eval config: accuracy of at least 0.6, and no worse than the baseline's.
EVAL_CONFIG = EvalConfig(
    label_key="species",
    metrics=[
        "example_count",
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "log_loss",
        "confusion_matrix",
    ],
    slicing_specs=[SlicingSpec(), SlicingSpec(feature_keys=["species"])],
    thresholds={"accuracy": MetricThreshold(lower=0.6, change=ChangeThreshold(absolute=-1e-10))},
)


def create_pipeline(
    framework: str | Sequence[str] = "sklearn",
    *,
    name: str = PIPELINE_NAME,
    root: str | Path | None = None,
    metadata_url: str | None = None,
    push_destination: str | Path | None = None,
    module_file: str | Path | None = None,
) -> Pipeline:
    """The penguin pipeline training ``framework`` (a key of ``TRAINERS``). Given a list of
    frameworks, each gets its own Trainer, Resolver, Evaluator, InfraValidator, Pusher (to
    ``<push_destination>/<framework>``) and BulkInferrer, with ids suffixed ``.<framework>``,
    on the one Transform. ``push_destination`` defaults to ``$PUSH_DESTINATION``, else
    ``<root>/serving_model`` when a root is given, else ``serving_model/<name>`` in the
    Conveyor home. ``module_file`` replaces the framework's Trainer module (one framework)."""
    several = not isinstance(framework, str)
    frameworks = list(framework) if several else [framework]
    unknown = [f for f in frameworks if f not in TRAINERS]
    if unknown or not frameworks:
        raise ConveyorError(
            f"The penguin pipeline trains with {', '.join(TRAINERS)}; got "
            f"{', '.join(map(repr, unknown)) or 'none'}. Set FRAMEWORK to one of them."
        )
    if module_file is not None and several:
        raise ConveyorError("module_file replaces the Trainer module of one framework only.")
    destination = str(push_destination or _default_destination(name, root))  # or a URI

    example_gen = CsvExampleGen(input_base=str(LABELLED))
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        fail_on_anomalies=True,
    )
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=str(HERE / "preprocessing.py"),
    )
    unlabelled_gen = CsvExampleGen(
        input_base=str(UNLABELLED), input_config={"unlabelled": "*.csv"}
    ).with_id("UnlabelledExampleGen")
    nodes = [example_gen, statistics_gen, schema_gen, example_validator, transform, unlabelled_gen]
    for each in frameworks:
        trainer = Trainer(
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            module_file=str(module_file or HERE / TRAINERS[each][0]),
            train_args=TRAINERS[each][1],
        )
        trainer.add_upstream(example_validator)  # train only on data that passed validation
        push_to = f"{destination.rstrip('/')}/{each}" if several else destination
        trained = [trainer, *_evaluate_and_ship(trainer, example_gen, unlabelled_gen, push_to)]
        if several:
            for node in trained:
                node.with_id(f"{node.id}.{each}")
        nodes += trained
    return Pipeline(name, nodes, root=root, metadata_url=metadata_url)


def _evaluate_and_ship(trainer, example_gen, unlabelled_gen, destination: str) -> list:
    """(latest blessed model) → Evaluator, InfraValidator → Pusher, BulkInferrer."""
    latest_blessed = Resolver(
        LatestBlessedModel, model=trainer.outputs["model"], model_blessing=ModelBlessing
    ).with_id("LatestBlessedModel")
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        eval_config=EVAL_CONFIG,
    )
    infra_validator = InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        request_spec={"num_examples": 10},
    )
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"],
        push_destination=str(destination),
    )
    bulk_inferrer = BulkInferrer(
        examples=unlabelled_gen.outputs["examples"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec={"example_splits": ["unlabelled"]},
        output_columns=["culmen_length_mm", "body_mass_g"],
    )
    return [latest_blessed, evaluator, infra_validator, pusher, bulk_inferrer]


def _default_destination(name: str, root: str | Path | None) -> str:
    if os.environ.get("PUSH_DESTINATION"):
        return os.environ["PUSH_DESTINATION"]
    if root is not None:
        return f"{str(root).rstrip('/')}/serving_model"
    return str(conveyor_home() / "serving_model" / name)


def _frameworks_from_environment() -> str | list[str]:
    """``FRAMEWORK``: one framework, or several separated by commas."""
    value = os.environ.get("FRAMEWORK", "").strip() or "sklearn"
    names = [part.strip() for part in value.split(",")]
    return names if len(names) > 1 else names[0]


pipeline = create_pipeline(_frameworks_from_environment())
