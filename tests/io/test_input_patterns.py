"""Input patterns with spans, versions and dates."""

from __future__ import annotations

import pytest

from conveyor.io.input_patterns import ALL, RangeConfig, resolve_inputs
from conveyor.types import ConveyorError


def touch(root, *paths):
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("a\n1\n")


def test_input_patterns_default_is_all_files_or_tfx_splits(tmp_path):
    touch(tmp_path / "flat", "a.csv", "sub/b.csv", ".hidden.csv")
    found = resolve_inputs(str(tmp_path / "flat"))
    assert [p.rsplit("/", 1)[-1] for p in found.files[ALL]] == ["a.csv", "b.csv"]
    touch(tmp_path / "tfx", "Split-train/x.gz", "Split-eval/y.gz")
    assert set(resolve_inputs(str(tmp_path / "tfx")).files) == {"train", "eval"}


def test_input_patterns_latest_span_then_latest_version(tmp_path):
    touch(tmp_path, "s1/v1/a.csv", "s2/v1/a.csv", "s2/v3/a.csv", "s2/v2/a.csv")
    found = resolve_inputs(str(tmp_path), {"x": "s{SPAN}/v{VERSION}/*.csv"})
    assert (found.spans, found.version) == ([2], 3)
    assert found.files["x"][0].endswith("s2/v3/a.csv")


def test_input_patterns_static_range_and_missing_span(tmp_path):
    touch(tmp_path, "day-01/a.csv", "day-02/a.csv", "day-04/a.csv")
    found = resolve_inputs(str(tmp_path), {"x": "day-{SPAN:2}/*"}, RangeConfig.static(1, 2))
    assert found.spans == [1, 2] and len(found.files["x"]) == 2
    with pytest.raises(ConveyorError, match=r"Span\(s\) \[3\]"):
        resolve_inputs(str(tmp_path), {"x": "day-{SPAN:2}/*"}, RangeConfig.static(1, 4))


def test_input_patterns_spans_must_exist_in_every_split(tmp_path):
    touch(tmp_path, "1/train/a", "1/eval/a", "2/train/a")
    found = resolve_inputs(str(tmp_path), {"train": "{SPAN}/train/*", "eval": "{SPAN}/eval/*"})
    assert found.spans == [1]


def test_input_patterns_errors(tmp_path):
    touch(tmp_path, "a.csv")
    with pytest.raises(ConveyorError, match="matched no files"):
        resolve_inputs(str(tmp_path), {"train": "b*.csv"})
    with pytest.raises(ConveyorError, match="does not exist"):
        resolve_inputs(str(tmp_path / "nope"))
    with pytest.raises(ConveyorError, match="same"):
        resolve_inputs(str(tmp_path), {"a": "{SPAN}/*", "b": "*"})
    with pytest.raises(ConveyorError, match="needs both"):
        RangeConfig(start_span=1)
