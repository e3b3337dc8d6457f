"""The evaluation itself: stream the examples once, predict each batch with the candidate
(and the baseline) model, and sum every slice's metrics as the batches go by.

A label that is not a raw column but an output of the candidate's transform (TFX's taxi
``tips_xf``) is computed from the raw columns it needs, batch by batch.

What is read is checked before any prediction: the splits, the label, weight and slicing
columns (named with the columns there are), and the raw features the models need. Rows
without a label (or with a missing or NaN weight) are left out of every metric and counted;
a split whose label column holds no value at all is an error.

Example::

    from conveyor.evaluation import EvalConfig, evaluate

    evaluation = evaluate(examples, model, EvalConfig(label_key="species"), splits=["eval"])
    evaluation.candidate[0].metrics["accuracy"]
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.evaluation.config import EvalConfig
from conveyor.evaluation.derived_label import DerivedLabel
from conveyor.evaluation.model_pass import ModelPass
from conveyor.evaluation.partial import EvalPartial
from conveyor.evaluation.scoring import EvalPlan, Scorer
from conveyor.evaluation.slice_result import SliceResult
from conveyor.evaluation.slicing import Slicer
from conveyor.types import ConveyorError

__all__ = ["Evaluation", "SplitPass", "evaluate"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 65536

#: ``split_pass(plan, source, split)``: a split's sums made elsewhere, or None.
SplitPass = Callable[[EvalPlan, Any, str], EvalPartial | None]


@dataclass
class Evaluation:
    """What one evaluation found: per-slice results of the candidate (and the baseline)."""

    task: str
    label_key: str
    class_names: list[str] | None
    splits: list[str]
    metrics: list[str]
    candidate: list[SliceResult]
    baseline: list[SliceResult] | None = None
    num_examples: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)  # why → rows left out
    unseen_labels: dict[str, int] = field(default_factory=dict)
    config: EvalConfig = field(default_factory=EvalConfig)
    model_uri: str = ""
    baseline_uri: str | None = None


def evaluate(
    examples: Any,
    model: Any,
    config: EvalConfig | dict | None = None,
    *,
    splits: Sequence[str] = ("eval",),
    baseline_model: Any = None,
    predict_fn: Callable[..., Any] | None = None,
    batch_size: int = BATCH_SIZE,
    split_pass: SplitPass | None = None,
) -> Evaluation:
    """Evaluate ``model`` (a bundle, its uri or a ``Model`` artifact) on ``splits`` of
    ``examples`` (taken together, as TFX does), and ``baseline_model`` on the same rows.

    ``split_pass(plan, source, split)`` may score a split elsewhere (on a cluster: see
    :class:`~conveyor.evaluation.scoring.EvalPlan`) and return its sums, or None to score
    it here."""
    from conveyor import io

    config = EvalConfig() if config is None else EvalConfig.from_dict(config)
    source = io.open_examples(examples)
    splits = list(splits)
    bundles = _bundles({"candidate": model, "baseline": baseline_model})
    derived = _derived_label(config, bundles["candidate"], source, splits)
    columns = _checked_columns(source, splits, config, derived)
    passes = _passes(bundles, config, columns, splits, source, predict_fn, derived)
    label_key = passes[0].label_key
    needed = _needed_columns(passes, config, label_key, columns, predict_fn is not None)
    if derived is not None:  # read what the label is computed from, not the label
        needed = list(dict.fromkeys([n for n in needed if n != label_key] + derived.inputs))
    scorer = Scorer(passes, derived, config)
    plan = EvalPlan(config, {role: _shared_uri(b) for role, b in bundles.items()}, label_key,
                    columns[label_key].type, needed, predict_fn, derived is not None)  # fmt: skip
    partials = []
    for split in splits:
        found = None if split_pass is None else split_pass(plan, source, split)
        if found is None:
            found = scorer.new_partial(split)
            for batch in io.record_batches(source, split, batch_size=batch_size, columns=needed):
                scorer.add(found, batch)
        partials.append(found)
        logger.info("Evaluated %d rows of split %s", found.counts.get(split, 0), split)
    return _evaluation(passes, functools.reduce(EvalPartial.merge, partials), splits, config)


def _evaluation(
    passes: list[ModelPass], total: EvalPartial, splits: list[str], config: EvalConfig
) -> Evaluation:
    """The results of every model from the sums of every split."""
    first, baseline = passes[0], passes[1] if len(passes) > 1 else None
    for run, sums in zip(passes, total.models, strict=True):
        run.adopt(sums)
    return Evaluation(
        task=first.task, label_key=first.label_key, class_names=first.class_names and
        first.display_names(), splits=splits, metrics=first.metrics,
        candidate=first.results(total.models[0], total.slicer),
        baseline=None if baseline is None else baseline.results(total.models[1], total.slicer),
        num_examples={split: total.counts.get(split, 0) for split in splits},
        excluded=total.excluded, unseen_labels=first.unseen_labels(total.models[0]),
        config=config, model_uri=str(getattr(first.bundle, "uri", "")),
        baseline_uri=None if baseline is None else str(getattr(baseline.bundle, "uri", "")),
    )  # fmt: skip


def _shared_uri(bundle: Any) -> str:
    """Where other machines find the bundle: the object store a staged copy came from."""
    from conveyor.io import filesystems as fsx

    uri = str(getattr(bundle, "uri", ""))
    return fsx.origin(uri) or uri


def _bundles(models: dict[str, Any]) -> dict[str, Any]:
    """Each model given, loaded (hashes checked) unless it is a loaded bundle already."""
    from conveyor.frameworks import load_model

    return {role: m if hasattr(m, "predict_proba") else load_model(m)
            for role, m in models.items() if m is not None}  # fmt: skip


def _derived_label(
    config: EvalConfig, bundle: Any, source: Any, splits: list[str]
) -> DerivedLabel | None:
    """The label's derivation when it is not a raw column but the candidate's transform
    computes it (see :mod:`conveyor.evaluation.derived_label`)."""
    label_key = config.label_key or getattr(bundle, "label", None)
    if not label_key:
        return None
    raw = [set(source.schema(split).names) for split in splits]
    common = [name for name in source.schema(splits[0]).names if all(name in r for r in raw)]
    return DerivedLabel.find(bundle, label_key, common)


def _passes(
    bundles: dict[str, Any], config: EvalConfig, columns: dict[str, pa.Field],
    splits: list[str], source: Any, predict_fn: Callable[..., Any] | None,
    derived: DerivedLabel | None = None,
) -> list[ModelPass]:  # fmt: skip
    """A :class:`ModelPass` per model given (the candidate first), once the label is known
    to be there."""
    label_key = _label_key(config, bundles["candidate"], columns, splits, source.uri)
    _check_labels(source, splits, label_key, derived)
    passes = [
        ModelPass(bundle, config, label_key=label_key, label_type=columns[label_key].type,
                  name=f"the {role} model", predict_fn=predict_fn)
        for role, bundle in bundles.items()
    ]  # fmt: skip
    if len(passes) > 1:
        _check_same_task(passes)
    return passes


# ---------------------------------------------------------------------- checks before predicting
def _checked_columns(
    source: Any, splits: list[str], config: EvalConfig, derived: DerivedLabel | None = None
) -> dict[str, pa.Field]:
    """The columns every split has (and a derived label); the config's features must be
    among each split's."""
    if not splits or not all(isinstance(s, str) and s for s in splits):
        raise ConveyorError(
            f"The 'example_splits' parameter must be a non-empty list of split names. Got "
            f"{splits!r} instead; the Examples at {source.uri} have "
            f"{', '.join(source.split_names)}."
        )
    common: dict[str, pa.Field] | None = None
    for split in splits:
        schema = source.schema(split)
        where = f"split {split!r} of the examples at {source.uri}"
        extra = derived.fields if derived is not None else {}
        config.check_features([*schema.names, *extra], where=where)
        fields = {f.name: f for f in schema} | extra
        common = fields if common is None else {k: v for k, v in common.items() if k in fields}
    return common or {}


def _label_key(
    config: EvalConfig, bundle: Any, columns: dict[str, pa.Field], splits: list[str], uri: str
) -> str:
    if config.label_key:
        return config.label_key
    label = bundle.label
    if label and label in columns:
        return label
    saved = f"the model's label {label!r} is" if label else "the model names no label, and"
    raise ConveyorError(
        f"EvalConfig has no label_key and {saved} not a column of split(s) "
        f"{', '.join(splits)} of the examples at {uri} (columns: {', '.join(columns)}). Pass "
        "EvalConfig(label_key='...') naming the raw label column."
    )


def _check_labels(
    source: Any, splits: list[str], label_key: str, derived: DerivedLabel | None = None
) -> None:
    """A label column without a single value is an error, before any prediction."""
    from conveyor import io

    for split in splits:
        if derived is None:
            column = io.read_table(source, split, columns=[label_key]).column(0)
        else:
            column = derived.compute(io.read_table(source, split, columns=derived.inputs))
        labelled = len(column) - column.null_count
        if pa.types.is_floating(column.type):
            labelled -= pc.sum(pc.is_nan(column)).as_py() or 0
        if labelled == 0:
            raise ConveyorError(
                f"The label column {label_key!r} of split {split!r} of the examples at "
                f"{source.uri} holds no labels ({len(column)} rows, all missing), so nothing "
                "can be evaluated. Evaluate a split with labels (example_splits=[...])."
            )


def _check_same_task(passes: list[ModelPass]) -> None:
    candidate, baseline = passes
    if candidate.task != baseline.task:
        raise ConveyorError(
            f"The candidate model is a {candidate.task} model but the baseline model "
            f"({baseline.bundle.uri}) is a {baseline.task} model; compare like with like."
        )


def _needed_columns(
    passes: list[ModelPass], config: EvalConfig, label_key: str,
    columns: dict[str, pa.Field], everything: bool,
) -> list[str]:  # fmt: skip
    """The columns to read: the models' raw features, the label, weight and slice columns
    (every column for a predict_fn, which may read any)."""
    if everything:
        return list(columns)
    needed = [label_key, *([config.example_weight_key] if config.example_weight_key else [])]
    needed += Slicer(config.specs).columns
    for run in passes:
        for feature in run.bundle.inputs.fields:
            if feature.name in columns:
                needed.append(feature.name)
            elif not feature.nullable:
                raise ConveyorError(
                    f"{run.name.capitalize()} needs feature {feature.name!r}, which the "
                    f"examples do not have (columns: {', '.join(columns)})."
                )
    return list(dict.fromkeys(needed))
