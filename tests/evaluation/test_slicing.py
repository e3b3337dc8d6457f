"""Slice keys people can read, and every row in the slices it belongs to."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conveyor.evaluation import EvalConfigError, SlicingSpec
from conveyor.evaluation.slicing import Slicer

BATCH = pa.record_batch({
    "hour": pa.array([3, 3, 4, None, 4, 3], pa.int64()),
    "payment": ["Cash", "Card", "Cash", "Cash", None, "Cash"],
    "fare": [2.0, 10.0, 25.0, float("nan"), 9.99, 10.0],
    "tags": pa.array([[1], [2], [3], [4], [5], [6]]),
})  # fmt: skip


def members(slicer: Slicer, batch: pa.RecordBatch) -> dict[str, list[int]]:
    rows, ids = slicer.assign(batch)
    found: dict[str, list[int]] = {}
    for row, slice_id in zip(rows.tolist(), ids.tolist(), strict=True):
        found.setdefault(slicer.key(slice_id), []).append(row)
    return {key: found[key] for key in slicer.ordered()}


def test_slicer_crosses_read_as_feature_equals_value_joined_by_and():
    slicer = Slicer((SlicingSpec(), SlicingSpec(feature_keys=["hour", "payment"])))
    assert members(slicer, BATCH) == {
        "Overall": [0, 1, 2, 3, 4, 5],
        "hour=3 & payment=Card": [1],
        "hour=3 & payment=Cash": [0, 5],
        "hour=4 & payment=Cash": [2],
        "hour=4 & payment=(missing)": [4],
        "hour=(missing) & payment=Cash": [3],
    }


def test_slicer_buckets_numbers_at_the_boundaries():
    slicer = Slicer((SlicingSpec(boundaries={"fare": [5, 10]}),))
    assert members(slicer, BATCH) == {
        "fare=(-inf, 5)": [0],
        "fare=[5, 10)": [4],
        "fare=[10, inf)": [1, 2, 5],
        "fare=(missing)": [3],
    }


def test_slicer_feature_values_keep_only_matching_rows():
    slicer = Slicer((SlicingSpec(feature_keys=["hour"], feature_values={"payment": "Cash"}),))
    assert members(slicer, BATCH) == {
        "hour=3 & payment=Cash": [0, 5],
        "hour=4 & payment=Cash": [2],
        "hour=(missing) & payment=Cash": [3],
    }


def test_slicer_keeps_ids_and_order_stable_across_batches():
    slicer = Slicer((SlicingSpec(), SlicingSpec(feature_keys=["hour"])))
    _, first = slicer.assign(BATCH.slice(2, 1))  # hour=4 seen first
    slicer.assign(BATCH)
    _, again = slicer.assign(BATCH.slice(2, 1))
    assert np.array_equal(first, again)
    assert slicer.ordered() == ["Overall", "hour=3", "hour=4", "hour=(missing)"]


def test_slicer_refuses_features_it_cannot_slice_by():
    with pytest.raises(EvalConfigError, match="Cannot slice by feature 'tags'"):
        Slicer((SlicingSpec(feature_keys=["tags"]),)).assign(BATCH)
    with pytest.raises(EvalConfigError, match="Cannot bucket feature 'payment'"):
        Slicer((SlicingSpec(boundaries={"payment": [1]}),)).assign(BATCH)
    with pytest.raises(EvalConfigError, match="feature_values\\['hour'\\] = 'x'"):
        Slicer((SlicingSpec(feature_values={"hour": "x"}),)).assign(BATCH)
