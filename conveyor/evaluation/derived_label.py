"""Labels the model's own transform computes from raw columns, as TFMA's
``preprocessing_function_names`` gives them: TFX's taxi label ``tips_xf`` (a tip above 20 %
of the fare) exists only after the transform, so the Evaluator, which reads raw examples,
derives it from ``tips`` and ``fare`` with the transform carried in the candidate bundle.

Example::

    derived = DerivedLabel.find(bundle, "tips_xf", raw_columns)  # None: a raw column
    batch = derived.add_to(batch)                                 # gains a tips_xf column
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from conveyor.types import ConveyorError

__all__ = ["DerivedLabel"]


class DerivedLabel:
    """Computes ``label_key`` from the raw columns it depends on, batch by batch."""

    def __init__(self, transform: Any, label_key: str, uri: str) -> None:
        self.label_key = label_key
        self.transform = transform
        self.inputs = list(transform.raw_schema.names)
        self.field = transform.transformed_schema.field(label_key)
        self.uri = uri

    @classmethod
    def find(cls, bundle: Any, label_key: str, columns: Any) -> DerivedLabel | None:
        """The derivation when ``label_key`` is not a raw column but an output of the
        bundle's transform; None when it is a raw column or the bundle cannot compute it."""
        if label_key in columns:
            return None
        manifest = getattr(bundle, "manifest", None) or {}
        if not manifest.get("transform"):
            return None
        from conveyor.frameworks.inputs import serving_transform
        from conveyor.transform.fitted import load

        fitted = load(os.path.join(bundle.uri, manifest["transform"]))
        if label_key not in fitted.graph.outputs:
            return None
        derived = cls(serving_transform(fitted, [label_key]), label_key, bundle.uri)
        missing = [name for name in derived.inputs if name not in columns]
        if missing:
            raise ConveyorError(
                f"The label {label_key!r} is computed by the transform of the model at "
                f"{bundle.uri} from raw column(s) {', '.join(map(repr, missing))}, which the "
                f"examples do not have (columns: {', '.join(columns)}). Evaluate examples "
                "that carry them, or name a raw label column in EvalConfig(label_key=...)."
            )
        return derived

    @property
    def fields(self) -> dict[str, pa.Field]:
        return {self.label_key: self.field}

    def compute(self, table: pa.Table | pa.RecordBatch) -> pa.Array | pa.ChunkedArray:
        """The label for every row of ``table`` (which holds at least :attr:`inputs`)."""
        if isinstance(table, pa.Table):
            table = table.combine_chunks().to_batches()[0] if table.num_rows else None
            if table is None:
                return pa.array([], self.field.type)
        return self.transform.transform_batch(table.select(self.inputs)).column(0)

    def add_to(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with the label appended (replacing a column of that name)."""
        label = self.compute(batch)
        if self.label_key in batch.schema.names:
            batch = batch.drop_columns([self.label_key])
        return batch.append_column(self.field, label)
