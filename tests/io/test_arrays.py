"""Boolean masks between Arrow and NumPy, read from the bit buffers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from conveyor.io.arrays import arrow_mask, bool_mask, row_numbers


@pytest.mark.parametrize(
    "array",
    [
        pa.array([True, None, False, True] * 5),
        pa.array([True, None, False, True] * 5).slice(3, 11),
        pa.array([False, True] * 9).slice(7),
        pa.array([], pa.bool_()),
        pa.chunked_array([[True], [None, False, True]]),
    ],
)
def test_bool_mask_matches_the_values_with_nulls_as_false(array):
    expected = np.array([value is True for value in array.to_pylist()], dtype=bool)
    got = bool_mask(array)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)


def test_bool_mask_refuses_other_types():
    with pytest.raises(TypeError, match="boolean"):
        bool_mask(pa.array([1, 2]))


def test_arrow_mask_round_trips_and_filters():
    mask = np.random.default_rng(0).random(1001) > 0.3
    arrow = arrow_mask(mask)
    assert arrow.type == pa.bool_() and arrow.null_count == 0
    np.testing.assert_array_equal(bool_mask(arrow), mask)
    values = pa.array(np.arange(1001))
    assert values.filter(arrow).to_pylist() == np.flatnonzero(mask).tolist()


def test_splitting_rows_does_not_import_pandas(tmp_path):
    """pandas costs a fresh ExampleGen process a fifth of a second: the hot path avoids it."""
    csv = tmp_path / "in" / "rows.csv"
    csv.parent.mkdir()
    csv.write_text("a,b,c\n" + "".join(f"{i},{'x' if i % 3 else ''},{i / 7}\n" for i in range(500)))
    code = (
        "import sys\n"
        "from conveyor.components.example_gen import generate_examples\n"
        "from conveyor.types import Examples\n"
        "examples = Examples()\n"
        f"examples.uri = {str(tmp_path / 'out')!r}\n"
        f"generate_examples(examples, input_base={str(csv.parent)!r})\n"
        "print(sum(examples.properties['num_examples'].values()), 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["500", "False"]


def test_row_numbers_take_those_rows_in_order():
    batch = pa.record_batch({"a": [10, 11, 12, 13, 14], "s": ["v", "w", None, "y", "z"]})
    picked = batch.take(row_numbers(np.flatnonzero(np.array([1, 0, 1, 0, 1], dtype=bool))))
    assert picked.to_pydict() == {"a": [10, 12, 14], "s": ["v", None, "z"]}
    assert len(row_numbers(np.array([], dtype=np.intp))) == 0
