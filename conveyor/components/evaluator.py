"""Evaluator: evaluate any framework's model bundle per slice, compare it with the baseline
(the last blessed model) and bless it, or say why not.

Outputs:

- ``evaluation`` (:class:`~conveyor.types.ModelEvaluation`): ``metrics.json``,
  ``metrics.parquet``, ``plots.json`` and ``diff.json`` (see
  :mod:`conveyor.evaluation.results`; read them with ``conveyor.evaluation.load_evaluation``).
  Properties: ``blessed``, ``overall`` (the overall metrics), ``num_slices``,
  ``num_examples`` ({split: rows}), ``model_id``, ``baseline_model_id``; under the Ray
  runner, ``engine`` and ``ray_data_splits`` when splits were evaluated with Ray Data (see
  :mod:`conveyor.components._ray_data_eval`).
- ``blessing`` (:class:`~conveyor.types.ModelBlessing`): a ``BLESSED`` or ``NOT_BLESSED``
  marker file (the latter lists the reasons) and ``blessing.json`` (every check). Properties:
  ``blessed``, ``model_id`` (the evaluated model's id, which ``LatestBlessedModel`` matches),
  ``baseline_model_id``, ``reasons`` and ``skipped``.

``eval_config`` is an :class:`~conveyor.evaluation.EvalConfig` or its ``to_dict()`` form;
the metadata store keeps it as JSON and ``EvalConfig.from_dict`` reads that back.

Example::

    latest_blessed = Resolver(LatestBlessedModel, model=Channel(Model),
                              model_blessing=Channel(ModelBlessing)).with_id("latest_blessed")
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        eval_config=EvalConfig(
            label_key="species",
            slicing_specs=[SlicingSpec(), SlicingSpec(feature_keys=["species"])],
            thresholds={"accuracy": MetricThreshold(
                lower=0.6, change=ChangeThreshold(absolute=-1e-10))},
        ),
    )
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from conveyor.dsl import Input, Output, Param, component
from conveyor.evaluation import EvalConfig
from conveyor.io import filesystems as fsx
from conveyor.types import Examples, Model, ModelBlessing, ModelEvaluation, Schema

__all__ = ["Evaluator", "write_blessing"]

logger = logging.getLogger(__name__)

BLESSED, NOT_BLESSED, BLESSING_FILE = "BLESSED", "NOT_BLESSED", "blessing.json"


@component(file_params=("module_file",))
def Evaluator(
    examples: Input[Examples],
    model: Input[Model],
    evaluation: Output[ModelEvaluation],
    blessing: Output[ModelBlessing],
    baseline_model: Input[Model] | None = None,
    schema: Input[Schema] | None = None,
    eval_config: Param[EvalConfig | dict | None] = None,
    example_splits: Param[list[str] | None] = None,
    predict_fn: Param[str | Callable | None] = None,
    module_file: Param[str | None] = None,
):
    """Evaluate ``model`` on ``example_splits`` (``["eval"]`` by default, taken together) of
    raw ``examples``; see the module docstring.

    The bundle predicts (raw features → its transform → the model). ``predict_fn(model,
    batch)`` overrides that: a function, a dotted path, or a name in ``module_file`` (a
    ``module_file`` alone supplies its ``predict_fn``). ``schema``: the examples' schema,
    against which the config's feature names are checked first.
    """
    from conveyor.components._ray_data import record_engine
    from conveyor.components._ray_data_eval import EvalOnCluster
    from conveyor.evaluation import bless, evaluate, write_evaluation

    on_cluster = EvalOnCluster()
    config = EvalConfig() if eval_config is None else EvalConfig.from_dict(eval_config)
    if schema is not None:
        available = _schema_features(schema.uri) + _transform_outputs(model.uri)
        where = f"the schema at {schema.uri} (or the outputs of the model's transform)"
        config.check_features(available, where=where)
    result = evaluate(
        examples,
        model,
        config,
        splits=example_splits or ["eval"],
        baseline_model=baseline_model,
        predict_fn=load_predict_fn(module_file, predict_fn),
        split_pass=on_cluster,
    )
    verdict = bless(result)
    write_evaluation(evaluation.uri, result, verdict)
    write_blessing(blessing.uri, verdict)
    ids = {"model_id": model.id,
           "baseline_model_id": None if baseline_model is None else baseline_model.id}  # fmt: skip
    overall = result.candidate[0]
    evaluation.properties.update(
        blessed=verdict.blessed, overall=overall.metrics, num_slices=len(result.candidate),
        num_examples=result.num_examples, **ids,
    )  # fmt: skip
    record_engine(evaluation, on_cluster.splits)
    blessing.properties.update(
        blessed=verdict.blessed, reasons=verdict.reasons, skipped=verdict.skipped, **ids
    )
    logger.info("%s: %s", "Blessed" if verdict.blessed else "Not blessed",
                "; ".join(verdict.reasons) or "every threshold passed")  # fmt: skip


def load_predict_fn(module_file: str | None, predict_fn: str | Callable | None) -> Callable | None:
    """The ``predict_fn`` the parameters name, or None to let the bundle predict."""
    if callable(predict_fn):
        return predict_fn
    if not module_file and not predict_fn:
        return None
    from conveyor.transform.module_file import user_function

    return user_function(module_file, predict_fn, default="predict_fn", owner="Evaluator")


def write_blessing(uri: str, verdict: Any) -> None:
    """The marker file TFX tools look for, and every check as JSON."""
    import json

    marker = BLESSED if verdict.blessed else NOT_BLESSED
    with fsx.open_file(fsx.join(uri, marker), "w", encoding="utf-8") as handle:
        handle.write("".join(f"{reason}\n" for reason in verdict.reasons))
    with fsx.open_file(fsx.join(uri, BLESSING_FILE), "w", encoding="utf-8") as handle:
        json.dump(verdict.to_dict(), handle, indent=1, allow_nan=False)


def _schema_features(uri: str) -> list[str]:
    from conveyor.io.tfmd import load_schema

    return [feature.name for feature in load_schema(uri).feature]


def _transform_outputs(model_uri: str) -> list[str]:
    """The columns the bundle's transform computes: a label may be one of them (TFX's taxi
    ``tips_xf``), derived from raw columns when evaluating."""
    import json

    from conveyor.transform.fitted import load

    try:
        with fsx.open_file(fsx.join(model_uri, "manifest.json"), "r", encoding="utf-8") as handle:
            transform = json.load(handle).get("transform")
    except (OSError, ValueError):
        return []  # evaluating reports an unreadable bundle, naming the file
    if not transform:
        return []
    return list(load(fsx.join(model_uri, transform)).graph.outputs)
