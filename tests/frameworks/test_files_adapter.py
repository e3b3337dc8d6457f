"""The ``files`` adapter: model files that no framework calls, bundled, hash-checked and
carried with their transform, scored by a predict_fn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conveyor.transform as tft
from conveyor.frameworks import load_model, save_model
from conveyor.types import ConveyorError

ROWS = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0], "y": [0.0, 0.0, 1.0, 1.0]})


def _trained_files(folder: Path) -> Path:
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "w.txt").write_text("2.0\n")
    (folder / "threshold.json").write_text(json.dumps({"cut": 5.0}))
    return folder


def _bundle(tmp_path: Path) -> Path:
    fitted = tft.fit(lambda i: {"x2": i["x"] * 2.0, "y": i["y"]}, ROWS)
    trained = str(_trained_files(tmp_path / "trained"))
    saved = save_model(
        trained, str(tmp_path / "bundle"), framework="files", features=["x2"], label="y",
        class_names=["low", "high"], transform=fitted,
    )  # fmt: skip
    return Path(saved)


def test_files_bundle_keeps_every_file_and_its_transform(tmp_path):
    bundle = load_model(_bundle(tmp_path))
    folder = Path(bundle.model)
    assert (folder / "weights" / "w.txt").read_text() == "2.0\n"
    assert json.loads((folder / "threshold.json").read_text()) == {"cut": 5.0}
    assert bundle.manifest["framework"] == "files"
    assert bundle.class_names == ["low", "high"]
    np.testing.assert_array_equal(bundle.to_matrix(ROWS)[:, 0], [2.0, 4.0, 6.0, 20.0])


def test_files_bundle_predicts_only_through_a_predict_fn(tmp_path):
    bundle = load_model(_bundle(tmp_path))
    with pytest.raises(ConveyorError, match="predict_fn"):
        bundle.predict(ROWS)

    def predict_fn(model, batch):
        cut = json.loads(Path(model.model, "threshold.json").read_text())["cut"]
        return (model.to_matrix(batch)[:, 0] > cut).astype(np.int64)

    np.testing.assert_array_equal(predict_fn(bundle, ROWS), [0, 0, 1, 1])


def test_files_bundle_with_a_changed_file_is_refused(tmp_path):
    path = _bundle(tmp_path)
    changed = next(path.rglob("w.txt"))
    changed.write_text("3.0\n")
    with pytest.raises(ConveyorError, match="w.txt"):
        load_model(path)


def test_files_adapter_needs_a_folder(tmp_path):
    with pytest.raises(ConveyorError, match="folder of model files"):
        save_model(object(), str(tmp_path / "b"), framework="files", features=["x"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConveyorError, match="no files"):
        save_model(str(tmp_path / "empty"), str(tmp_path / "c"), framework="files",
                   features=["x"])  # fmt: skip
