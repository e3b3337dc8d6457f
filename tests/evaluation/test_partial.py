"""Partial sums of an evaluation, made from shares of the rows (as a cluster's workers make
them, each numbering its slices in its own order) and merged by slice key, give what one
pass over the rows gives."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from conveyor.evaluation import EvalConfig, SlicingSpec, evaluate
from conveyor.evaluation.partial import EvalPartial
from conveyor.io import read_table

SLICES = [SlicingSpec(), SlicingSpec(feature_keys=["color"]),
          SlicingSpec(feature_keys=["hour", "color"])]  # fmt: skip


def in_shares(order: list[slice], batch_size: int = 200):
    """A ``split_pass`` scoring the split in shares of rows (``order``: which rows each
    share holds, in the order the shares are made), each from a pickled plan and sent back
    pickled, merged in row order."""

    def split_pass(plan, source, split):
        table = read_table(source, split, columns=plan.columns)
        shares = {}
        for rows in order:
            worker_plan = pickle.loads(pickle.dumps(plan))
            partial = worker_plan.create(split)
            for batch in table.slice(rows.start, rows.stop - rows.start).to_batches(batch_size):
                worker_plan.add(partial, batch)
            shares[rows.start] = pickle.loads(pickle.dumps(partial))
        merged = [shares[start] for start in sorted(shares)]
        return merged[0] if len(merged) == 1 else _merge(merged)

    return split_pass


def _merge(partials: list[EvalPartial]) -> EvalPartial:
    total = partials[0]
    for other in partials[1:]:
        total = total.merge(other)
    return total


def assert_same_results(found, expected) -> None:
    """Counts exactly; sums of floats to 1e-12 (their order differs)."""
    assert found.num_examples == expected.num_examples
    assert found.excluded == expected.excluded
    assert found.unseen_labels == expected.unseen_labels
    for ours, theirs in [(found.candidate, expected.candidate),
                         (found.baseline or [], expected.baseline or [])]:  # fmt: skip
        assert [s.slice for s in ours] == [s.slice for s in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert (a.undefined, a.notes) == (b.undefined, b.notes)
            assert a.metrics.keys() == b.metrics.keys()
            for name, value in b.metrics.items():
                assert a.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
            assert_close(a.plots, b.plots, a.slice)


def assert_close(found, expected, where: str) -> None:
    """Plots: their numbers rounded to 5 digits may differ in the last one."""
    if isinstance(expected, dict):
        assert found.keys() == expected.keys(), where
        for key in expected:
            assert_close(found[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list):
        assert len(found) == len(expected), where
        for a, b in zip(found, expected, strict=True):
            assert_close(a, b, where)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=1e-12, abs=1e-5), where
    else:
        assert found == expected, where


def test_partial_merge_of_shares_equals_one_pass_for_a_classifier(examples, bundles):
    config = EvalConfig(label_key="kind", slicing_specs=SLICES, example_weight_key="w",
                        metrics=["accuracy", "log_loss", "brier_score", "roc_auc",
                                 "pr_auc", "f1_macro", "calibration"])  # fmt: skip
    whole = evaluate(examples, bundles["multiclass"], config, baseline_model=bundles["weak"])
    # the last share is made first: it meets the slices in another order
    shares = in_shares([slice(1100, 1500), slice(0, 700), slice(700, 1100)])
    merged = evaluate(examples, bundles["multiclass"], config, baseline_model=bundles["weak"],
                      split_pass=shares)  # fmt: skip
    assert_same_results(merged, whole)
    assert merged.candidate[0].metrics["example_count"] == 1500


def test_partial_merge_of_shares_equals_one_pass_for_a_regressor(examples, bundles):
    config = EvalConfig(label_key="target", slicing_specs=SLICES,
                        metrics=["mse", "mae", "r2", "mean_label"])  # fmt: skip
    whole = evaluate(examples, bundles["regressor"], config)
    merged = evaluate(examples, bundles["regressor"], config,
                      split_pass=in_shares([slice(900, 1500), slice(0, 900)]))  # fmt: skip
    assert_same_results(merged, whole)


def test_partial_merge_counts_unseen_and_missing_labels_of_every_share(
    table, write_examples, bundles
):
    labels = table["kind"].to_pylist()
    labels[:30] = [7] * 30  # a class the model never saw, in the first share only
    labels[1400:1420] = [None] * 20  # missing labels, in the last share only
    data = table.set_column(table.schema.get_field_index("kind"), "kind",
                            pa.array(labels, pa.int64()))  # fmt: skip
    uri = write_examples(data)
    config = EvalConfig(label_key="kind", slicing_specs=SLICES)
    whole = evaluate(uri, bundles["multiclass"], config)
    merged = evaluate(uri, bundles["multiclass"], config,
                      split_pass=in_shares([slice(750, 1500), slice(0, 750)]))  # fmt: skip
    assert merged.unseen_labels == {"7": 30}
    assert merged.excluded == {"missing label": 20}
    assert_same_results(merged, whole)


def test_partial_merge_with_a_share_without_rows(examples, bundles):
    config = EvalConfig(label_key="answer", slicing_specs=SLICES)
    whole = evaluate(examples, bundles["binary"], config)
    merged = evaluate(examples, bundles["binary"], config,
                      split_pass=in_shares([slice(0, 0), slice(0, 1500)]))  # fmt: skip
    assert_same_results(merged, whole)
