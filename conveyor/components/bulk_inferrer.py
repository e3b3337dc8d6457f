"""BulkInferrer: predict every row of some splits with a model bundle, from raw features, and
write the predictions beside chosen columns of the input (an id, say) as Parquet.

Rows stream through in record batches of ``data_spec.batch_size``, so memory stays bounded
whatever the size of the data. Output layout (an ``InferenceResult``, readable with
``conveyor.io`` like Examples)::

    {uri}/Split-{name}/part-00000.parquet    output_columns..., prediction, class_id,
                                             probability_<class> (one per class)

A classifier gives ``prediction`` (the label, decoded with the bundle's class names),
``class_id`` and, when the model gives them, one probability column per class; a regressor
gives ``prediction`` alone. With a ``model_blessing`` that is not blessed (or is for another
model), nothing is predicted and the artifact records why, as TFX's BulkInferrer skips
unblessed models.

Example::

    bulk_inferrer = BulkInferrer(
        examples=unlabelled_gen.outputs["examples"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec={"example_splits": ["unlabelled"]},
        output_columns=["penguin_id"],
    )
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.components._blessings import blessing_problems
from conveyor.components._ray_data import record_engine, use_ray_data
from conveyor.components._specs import check_names, check_number, with_specs
from conveyor.dsl import Input, Output, Param
from conveyor.io import filesystems as fsx
from conveyor.io.writers import examples_properties
from conveyor.types import ConveyorError, Examples, InferenceResult, Model, ModelBlessing

if TYPE_CHECKING:
    import pyarrow as pa

    from conveyor.frameworks.bundle import Bundle
    from conveyor.io.examples import ExamplesSource

__all__ = ["BulkInferrer", "DataSpec", "infer_examples"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """Which rows to predict: the ``example_splits`` (every split when None), read
    ``batch_size`` rows at a time.

    Example::

        DataSpec(example_splits=["unlabelled"], batch_size=4096)
    """

    example_splits: tuple[str, ...] | None = None
    batch_size: int = 8192

    def __post_init__(self) -> None:
        if self.example_splits is not None:
            splits = check_names("DataSpec", "example_splits", self.example_splits)
            object.__setattr__(self, "example_splits", splits)
        check_number("DataSpec", "batch_size", self.batch_size, integer=True, minimum=1)


@with_specs(data_spec=DataSpec)
def BulkInferrer(
    examples: Input[Examples],
    model: Input[Model],
    inference_result: Output[InferenceResult],
    model_blessing: Input[ModelBlessing] | None = None,
    data_spec: Param[DataSpec | None] = None,
    output_columns: Param[list[str] | None] = None,
):
    """Predict the rows of ``examples`` with ``model``; see the module docstring.
    ``data_spec`` takes a :class:`DataSpec` or a dict of its fields; ``output_columns``
    names input columns copied beside the predictions.

    Properties of ``inference_result``: ``inferred`` (False when the blessing said no),
    ``reasons``, ``model_id``, ``split_names``, ``payload_format``, ``num_examples``
    ({split: rows}) and ``output_columns`` (every column written).
    """
    infer_examples(examples, model, inference_result, model_blessing, data_spec, output_columns)


def infer_examples(
    examples: Examples,
    model: Model,
    inference_result: InferenceResult,
    model_blessing: ModelBlessing | None = None,
    data_spec: DataSpec | None = None,
    output_columns: list[str] | None = None,
) -> None:
    """Everything BulkInferrer does."""
    from conveyor.frameworks.bundle import load_model
    from conveyor.io import open_examples

    spec = data_spec or DataSpec()
    record = {"inferred": False, "model_id": model.id, "split_names": [], "num_examples": {}}
    reasons = blessing_problems(model, model_blessing=model_blessing)
    if reasons:
        logger.warning("Not predicting with model %s: %s", model.id, " ".join(reasons))
        inference_result.properties.update(record, reasons=reasons)
        return
    source = open_examples(examples)
    splits = list(spec.example_splits or source.split_names)
    passthrough = list(output_columns or [])
    bundle = load_model(model)
    predictor = Predictor(bundle)
    schema = _output_schema(source, splits, passthrough, bundle, predictor)
    on_cluster = [s for s in splits if use_ray_data(source, s, "BulkInferrer", also=[model.uri])]
    counts = _predict_here(source, [s for s in splits if s not in on_cluster], passthrough,
                           predictor, spec, inference_result.uri, schema)  # fmt: skip
    shared_model = fsx.origin(model.uri) or model.uri  # where every worker finds it
    for split in on_cluster:
        counts[split] = _predict_on_cluster(source, split, passthrough, bundle, shared_model,
                                            inference_result.uri, schema)  # fmt: skip
    written = examples_properties({split: counts[split] for split in splits})
    inference_result.properties.update(
        written, inferred=True, reasons=[], model_id=model.id, output_columns=schema.names
    )
    record_engine(inference_result, on_cluster)
    logger.info("Predicted %s rows with model %s", written["num_examples"], model.id)


def _predict_here(
    source: ExamplesSource,
    splits: list[str],
    passthrough: list[str],
    predictor: Predictor,
    spec: DataSpec,
    uri: str,
    schema: pa.Schema,
) -> dict[str, int]:
    from conveyor.io.writers import ExamplesWriter

    with ExamplesWriter(uri, splits, schema) as writer:
        for split in splits:
            for batch in _predicted_batches(source, split, passthrough, predictor, spec):
                writer.write(split, batch)
    return dict(writer.counts)


def _predict_on_cluster(
    source: ExamplesSource,
    split: str,
    passthrough: list[str],
    bundle: Bundle,
    model_uri: str,
    uri: str,
    schema: pa.Schema,
) -> int:
    """Predict ``split`` block by block on the Ray cluster's workers, each loading the
    model once."""
    from conveyor.io.distributed import map_write

    columns = _input_columns(source, split, passthrough, bundle)
    where = f"split {split!r} of the Examples at {source.uri}"
    predict = functools.partial(_predict_block, model_uri, passthrough, where)
    return map_write(source, split, predict, uri, schema, columns=columns).rows


@functools.cache
def _predictor(model_uri: str) -> Predictor:
    """The model's predictor, loaded once per process (each Ray worker's, too)."""
    from conveyor.frameworks.bundle import load_model

    return Predictor(load_model(model_uri))


def _predict_block(
    model_uri: str, passthrough: list[str], where: str, block: pa.Table
) -> pa.RecordBatch:
    try:
        return predicted_batch(_predictor(model_uri), block, passthrough)
    except ConveyorError as exc:
        raise ConveyorError(f"Cannot predict a block of {block.num_rows} rows of {where}: "
                            f"{exc}") from exc  # fmt: skip


class Predictor:
    """A bundle's outputs for raw record batches, as Arrow columns."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.classifier = bundle.task == "classification"
        self.class_names = bundle.class_names
        self._index = {name: i for i, name in enumerate(self.class_names or ())}
        self.num_probabilities = self._probability_width() if self.classifier else 0
        self.fields = self._fields()

    def _fields(self) -> list[pa.Field]:
        import pyarrow as pa

        if not self.classifier:
            return [pa.field("prediction", pa.float64())]
        label = pa.array(self.class_names).type if self.class_names else pa.int64()
        fields = [pa.field("prediction", label), pa.field("class_id", pa.int64())]
        return fields + [pa.field(n, pa.float32()) for n in self.probability_names()]

    def probability_names(self) -> list[str]:
        names = self.class_names or range(self.num_probabilities)
        return [f"probability_{name}" for name in names][: self.num_probabilities]

    def columns(self, raw: pa.RecordBatch) -> list[pa.Array]:
        import numpy as np
        import pyarrow as pa

        X = self.bundle.to_matrix(raw)
        prediction = np.asarray(self.bundle.predict_transformed(X))
        if not self.classifier:
            return [pa.array(prediction.reshape(len(X), -1)[:, 0], pa.float64())]
        if self._index:
            ids = np.fromiter((self._index[v] for v in prediction.tolist()), np.int64, len(X))
        else:
            ids = prediction.astype(np.int64)
        columns = [pa.array(prediction, self.fields[0].type), pa.array(ids)]
        if self.num_probabilities:
            proba = np.asarray(self.bundle.predict_proba_transformed(X), dtype=np.float32)
            columns += [pa.array(proba[:, i]) for i in range(self.num_probabilities)]
        return columns

    def _probability_width(self) -> int:
        """How many probabilities the model gives per row (0: none), from one row of zeros."""
        import numpy as np

        X = np.zeros((1, self.bundle.inputs.width), dtype=np.float32)
        proba = self.bundle.adapter.predict_proba(self.bundle.model, X)
        return 0 if proba is None else int(np.asarray(proba).reshape(1, -1).shape[1])


def _output_schema(
    source: ExamplesSource,
    splits: list[str],
    passthrough: list[str],
    bundle: Bundle,
    predictor: Predictor,
) -> pa.Schema:
    """Passthrough columns (typed as in the first split) then the predictions; every split
    checked first, so a missing column or feature fails before anything is written."""
    import pyarrow as pa

    names = [f.name for f in predictor.fields]
    clashing = [c for c in passthrough if c in names]
    if clashing:
        raise ConveyorError(
            f"output_columns {', '.join(map(repr, clashing))} would clash with the prediction "
            f"columns ({', '.join(names)}); leave them out of output_columns."
        )
    types: dict[str, pa.DataType] = {}
    for split in splits:
        schema = source.schema(split)  # an unknown split fails here, naming the known ones
        _check_split(source, split, schema, passthrough, bundle)
        for column in passthrough:
            kind = types.setdefault(column, schema.field(column).type)
            if schema.field(column).type != kind:
                raise ConveyorError(
                    f"Column {column!r} is {schema.field(column).type} in split {split!r} but "
                    f"{kind} in split {splits[0]!r} of the Examples at {source.uri}; the "
                    "output holds one type per column."
                )
    return pa.schema([pa.field(c, types[c]) for c in passthrough] + predictor.fields)


def _check_split(
    source: ExamplesSource, split: str, schema: pa.Schema, passthrough: list[str], bundle: Bundle
) -> None:
    available = schema.names
    unknown = [c for c in passthrough if c not in available]
    if unknown:
        raise ConveyorError(
            f"Unknown output_columns {', '.join(map(repr, unknown))}: split {split!r} of the "
            f"Examples at {source.uri} has columns {', '.join(available)}."
        )
    inputs = bundle.signature
    missing = [f["name"] for f in inputs if f.get("required") and f["name"] not in available]
    if missing:
        raise ConveyorError(
            f"Split {split!r} of the Examples at {source.uri} lacks feature "
            f"{', '.join(map(repr, missing))}, which the model needs (its inputs: "
            f"{', '.join(f['name'] for f in inputs)}). Give examples that hold it, or leave "
            "the split out with data_spec={'example_splits': [...]}."
        )


def _input_columns(
    source: ExamplesSource, split: str, passthrough: list[str], bundle: Bundle
) -> list[str]:
    available = set(source.schema(split).names)
    features = [f["name"] for f in bundle.signature if f["name"] in available]
    return list(dict.fromkeys([*passthrough, *features]))


def predicted_batch(
    predictor: Predictor, batch: pa.RecordBatch | pa.Table, passthrough: list[str]
) -> pa.RecordBatch:
    """The ``passthrough`` columns of ``batch`` and its predictions."""
    import pyarrow as pa

    predicted = predictor.columns(batch)
    kept = [_one_chunk(batch.column(c)) for c in passthrough]
    names = passthrough + [f.name for f in predictor.fields]
    return pa.RecordBatch.from_arrays(kept + predicted, names=names)


def _one_chunk(column: Any) -> Any:
    """A table's column as one array (a record batch's is one already)."""
    import pyarrow as pa

    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _predicted_batches(
    source: ExamplesSource,
    split: str,
    passthrough: list[str],
    predictor: Predictor,
    spec: DataSpec,
) -> Any:
    from conveyor.io import record_batches

    columns = _input_columns(source, split, passthrough, predictor.bundle)
    done = 0
    for batch in record_batches(source, split, batch_size=spec.batch_size, columns=columns):
        try:
            yield predicted_batch(predictor, batch, passthrough)
        except ConveyorError as exc:
            raise ConveyorError(
                f"Cannot predict rows {done}-{done + batch.num_rows - 1} of split {split!r} "
                f"of the Examples at {source.uri}: {exc}"
            ) from exc
        done += batch.num_rows
