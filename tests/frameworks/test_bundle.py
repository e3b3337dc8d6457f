"""Model bundles: save_model's layout and manifest, load_model's checks before anything is
deserialized, predictions from raw penguin rows in this process and a fresh one, bad rows,
and loading through MLflow."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import conveyor.transform as tft
from conveyor.frameworks import (
    ModelAdapter,
    SavedModel,
    attach_transform,
    is_bundle,
    load_model,
    register_adapter,
    save_model,
)
from conveyor.frameworks.inputs import feature_matrix
from conveyor.frameworks.registry import default_registry
from conveyor.types import ConveyorError

PENGUIN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "penguin"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(PENGUIN / "penguins_processed.csv")


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> tft.FittedTransform:
    def preprocessing_fn(inputs):
        return {k: tft.scale_to_z_score(inputs[k]) for k in FEATURES} | {
            "species": inputs["species"]
        }

    return tft.fit(preprocessing_fn, frame)


@pytest.fixture(scope="module")
def classifier(frame: pd.DataFrame, fitted: tft.FittedTransform):
    from sklearn.linear_model import LogisticRegression

    transformed = fitted.transform(frame)
    X = feature_matrix(transformed, FEATURES)
    return LogisticRegression(max_iter=500).fit(X, transformed["species"].to_numpy())


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, classifier, fitted) -> Path:
    directory = tmp_path_factory.mktemp("bundle") / "model"
    save_model(
        classifier,
        str(directory),
        features=FEATURES,
        label="species",
        class_names=SPECIES,
        transform=fitted,
    )
    return directory


@pytest.fixture()
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    return copy


def expected_species(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(SPECIES)[frame["species"].to_numpy()]


class Centroids:
    """A framework-free classifier: the nearest of a few centroids."""

    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = np.asarray(centroids, dtype=np.float32)


class CentroidAdapter(ModelAdapter):
    name = "centroids"
    modules = ()

    def handles(self, model):
        return isinstance(model, Centroids)

    def framework_version(self):
        return np.__version__

    def save(self, model, directory, *, sample):
        np.save(os.path.join(directory, "centroids.npy"), model.centroids)
        return SavedModel(files=["centroids.npy"], format="npy")

    def load(self, directory, saved):
        return Centroids(np.load(os.path.join(directory, "centroids.npy"), allow_pickle=False))

    def predict(self, model, X):
        distances = ((X[:, None, :] - model.centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def is_classifier(self, model):
        return True


@pytest.fixture()
def centroid_adapter():
    adapter = register_adapter(CentroidAdapter())
    yield adapter
    default_registry().unregister(adapter.name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- layout and manifest
def test_save_model_writes_the_layout_and_a_manifest_of_every_file(bundle_dir: Path):
    import sklearn

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    files = sorted(
        p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()
    )
    assert "model/model.pkl" in files and "transform/transform_fn/graph.json" in files
    assert {"MLmodel", "manifest.json", "requirements.txt"} <= set(files)
    assert sorted(manifest["files"]) == [f for f in files if f != "manifest.json"]
    for name, digest in manifest["files"].items():
        assert digest == sha256(bundle_dir / name), name
    assert manifest["format"] == "conveyor.model/1"
    assert manifest["framework"] == "sklearn"
    assert manifest["framework_version"] == sklearn.__version__
    assert manifest["adapter"]["name"] == "sklearn" and manifest["adapter"]["version"]
    assert manifest["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["conveyor_version"] == __import__("conveyor").__version__
    assert manifest["features"] == FEATURES
    assert manifest["label"] == "species" and manifest["class_names"] == SPECIES
    assert manifest["task"] == "classification" and manifest["needs_code"] is False
    assert manifest["model"]["files"] == ["model.pkl"]
    assert manifest["outputs"][0] == {"name": "prediction", "type": "string"}


def test_signature_is_the_raw_features_the_model_needs_without_the_label(bundle_dir: Path):
    bundle = load_model(str(bundle_dir))
    assert bundle.signature == [
        {"name": name, "type": "float64", "required": True} for name in FEATURES
    ]
    assert bundle.manifest["signature"]["inputs"] == bundle.signature


def test_a_feature_missing_in_training_is_optional_in_the_signature(
    tmp_path, frame, centroid_adapter
):
    holes = frame.copy()
    holes.loc[::7, "body_mass_g"] = None

    def preprocessing_fn(inputs):
        return {
            "mass": tft.fill_missing(inputs["body_mass_g"], 0.5),
            "flipper": inputs["flipper_length_mm"],
        }

    fitted = tft.fit(preprocessing_fn, holes)
    save_model(
        Centroids([[0.3, 0.2], [0.8, 0.8]]),
        str(tmp_path / "m"),
        features=["mass", "flipper"],
        transform=fitted,
    )
    bundle = load_model(str(tmp_path / "m"))
    assert bundle.signature == [
        {"name": "flipper_length_mm", "type": "float64", "required": True},
        {"name": "body_mass_g", "type": "float64", "required": False},
    ]
    assert list(bundle.predict([{"flipper_length_mm": 0.9}])) == [1]


def test_mlmodel_names_the_pyfunc_loader_and_the_manifest(bundle_dir: Path):
    text = (bundle_dir / "MLmodel").read_text()
    assert "  python_function:\n    loader_module: conveyor.frameworks.mlflow_pyfunc\n" in text
    assert "    data: .\n" in text and "      virtualenv: python_env.yaml\n" in text
    assert "  conveyor:\n    manifest: manifest.json\n" in text
    assert (bundle_dir / "requirements.txt").read_text().startswith("conveyor[sklearn]==")


# ---------------------------------------------------------------- predictions
def test_predict_decodes_labels_from_every_kind_of_raw_input(bundle_dir: Path, frame):
    bundle = load_model(str(bundle_dir))
    raw = frame.drop(columns=["species"])
    expected = bundle.predict(raw)
    assert expected.shape == (len(frame),) and set(expected) <= set(SPECIES)
    assert (expected == expected_species(frame)).mean() >= 0.9
    head = raw.head(20)
    for given in (
        head,
        head.to_dict("records"),
        {name: head[name].tolist() for name in FEATURES},
        pa.Table.from_pandas(head, preserve_index=False),
        pa.RecordBatch.from_pandas(head, preserve_index=False),
        frame.head(20),  # the label's column is there too, and is ignored
    ):
        assert list(bundle.predict(given)) == list(expected[:20])


def test_predict_matches_the_model_on_transformed_features(bundle_dir, frame, fitted, classifier):
    bundle = load_model(str(bundle_dir))
    X = feature_matrix(fitted.transform(frame), FEATURES)
    ids = classifier.predict(X)
    assert list(bundle.predict(frame)) == [SPECIES[i] for i in ids]
    assert list(bundle.predict_transformed(X)) == [SPECIES[i] for i in ids]
    np.testing.assert_allclose(bundle.predict_proba(frame), classifier.predict_proba(X), 1e-6)


def test_predict_proba_rows_sum_to_one(bundle_dir: Path, frame):
    proba = load_model(str(bundle_dir)).predict_proba(frame.head(9).to_dict("records"))
    assert proba.shape == (9, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_a_bundle_loads_and_predicts_in_a_fresh_process(bundle_dir: Path, frame):
    rows = frame.drop(columns=["species"]).head(12).to_dict("records")
    script = (
        "import json, sys\n"
        "from conveyor import load_model\n"
        "rows = json.loads(sys.stdin.read())\n"
        "print(json.dumps(load_model(sys.argv[1]).predict(rows).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(bundle_dir)],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == load_model(str(bundle_dir)).predict(rows).tolist()


def test_without_a_transform_the_raw_features_are_the_model_features(tmp_path, centroid_adapter):
    model = Centroids([[0.0, 0.0], [1.0, 1.0]])
    uri = save_model(model, str(tmp_path / "m"), features=["a", "b"], class_names=["low", "high"])
    bundle = load_model(uri)
    assert bundle.manifest["transform"] is None
    assert bundle.signature == [
        {"name": "a", "type": "float32", "required": True},
        {"name": "b", "type": "float32", "required": True},
    ]
    rows = [{"a": 0.1, "b": 0.2}, {"a": 0.9, "b": 1}]
    assert list(bundle.predict(rows)) == ["low", "high"]
    assert list(bundle.predict(pd.DataFrame(rows))) == ["low", "high"]
    with pytest.raises(tft.BadRowError, match="'b'"):
        bundle.predict([{"a": 0.1}])
    with pytest.raises(ConveyorError, match="gives no class probabilities"):
        bundle.predict_proba(rows)


def test_a_bundle_on_a_remote_filesystem_saves_and_loads(classifier, fitted, frame):
    uri = "memory://bundles/penguin"
    save_model(classifier, uri, features=FEATURES, class_names=SPECIES, transform=fitted)
    assert is_bundle(uri)
    bundle = load_model(uri)
    assert bundle.uri == uri
    assert (bundle.predict(frame) == expected_species(frame)).mean() >= 0.9


def test_loading_needs_the_adapter_that_saved_the_bundle(tmp_path: Path, centroid_adapter):
    uri = save_model(Centroids([[0.0]]), str(tmp_path / "m"), features=["a"])
    default_registry().unregister(centroid_adapter.name)
    with pytest.raises(ConveyorError, match="saved by test_bundle.CentroidAdapter.*Register it"):
        load_model(uri)


# ---------------------------------------------------------------- bad rows
@pytest.mark.parametrize(
    ("make_raw", "match"),
    [
        (lambda rows: [{k: v for k, v in rows[0].items() if k != "body_mass_g"}], "body_mass_g"),
        (lambda rows: [rows[0] | {"culmen_depth_mm": "deep"}], "culmen_depth_mm.*a number"),
        (lambda rows: [rows[0] | {"flipper_length_mm": None}], "flipper_length_mm"),
        (lambda rows: pd.DataFrame(rows).drop(columns=["culmen_length_mm"]), "culmen_length_mm"),
        (
            lambda rows: pd.DataFrame(rows).assign(body_mass_g=["x"] + [1.0] * (len(rows) - 1)),
            "body_mass_g",
        ),
        (
            lambda rows: pa.Table.from_pylist(rows).set_column(
                1, "culmen_depth_mm", pa.array(["a"] * len(rows))
            ),
            "culmen_depth_mm.*float64.*string",
        ),
        (lambda rows: {"culmen_length_mm": 0.3}, "culmen_length_mm.*list of values"),
    ],
)
def test_predict_refuses_bad_rows_naming_the_feature(bundle_dir, frame, make_raw, match):
    rows = frame.drop(columns=["species"]).head(3).to_dict("records")
    with pytest.raises(tft.BadRowError, match=match):
        load_model(str(bundle_dir)).predict(make_raw(rows))


def test_predict_refuses_a_matrix_and_points_to_predict_transformed(bundle_dir: Path):
    with pytest.raises(ConveyorError, match="predict_transformed"):
        load_model(str(bundle_dir)).predict(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ConveyorError, match=r"shape \[N, 4\]"):
        load_model(str(bundle_dir)).predict_transformed(np.zeros((2, 3), dtype=np.float32))


# ---------------------------------------------------------------- verification
@pytest.fixture()
def nothing_deserialized(monkeypatch):
    """Fail the test if the model or the transform is read."""
    import conveyor.frameworks.bundle as bundle_module
    from conveyor.frameworks import restricted_pickle

    def refuse(*args, **kwargs):
        raise AssertionError("deserialized before the hashes were checked")

    monkeypatch.setattr(restricted_pickle, "loads", refuse)
    monkeypatch.setattr(bundle_module, "load_transform", refuse)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "name", ["model/model.pkl", "transform/transform_fn/graph.json", "MLmodel"]
)
def test_a_changed_byte_is_refused_naming_the_file(bundle_copy, nothing_deserialized, name):
    flip_byte(bundle_copy / name)
    with pytest.raises(ConveyorError, match=f"{name} in the model bundle .* SHA-256"):
        load_model(str(bundle_copy))


def test_a_changed_manifest_is_refused(bundle_copy: Path, nothing_deserialized):
    path = bundle_copy / "manifest.json"
    text = path.read_text()
    path.write_text(text.replace('"Chinstrap"', '"Chinstrab"'))
    with pytest.raises(ConveyorError, match="manifest.json does not match its manifest_sha256"):
        load_model(str(bundle_copy))
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ConveyorError, match="manifest.json is not valid JSON"):
        load_model(str(bundle_copy))


@pytest.mark.parametrize("name", ["model/model.pkl", "transform/transform_fn/graph.json"])
def test_a_missing_file_is_refused_naming_it(bundle_copy, nothing_deserialized, name):
    (bundle_copy / name).unlink()
    with pytest.raises(ConveyorError, match=f"lacks {name}"):
        load_model(str(bundle_copy))


def test_an_unlisted_file_beside_the_model_is_refused(bundle_copy, nothing_deserialized):
    (bundle_copy / "model" / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(ConveyorError, match="model/extra.pkl .* not listed"):
        load_model(str(bundle_copy))


def test_a_folder_without_a_manifest_is_not_a_bundle(tmp_path: Path, bundle_dir: Path):
    assert is_bundle(str(bundle_dir))
    assert not is_bundle(str(tmp_path))
    with pytest.raises(ConveyorError, match="not a model bundle: it has no manifest.json"):
        load_model(str(tmp_path))


# ---------------------------------------------------------------- save_model's arguments
def test_save_model_on_an_unknown_object_lists_the_frameworks(tmp_path: Path):
    with pytest.raises(ConveyorError, match=r"(?s)No framework adapter handles.*sklearn.*"):
        save_model(object(), str(tmp_path / "m"), features=["a"])
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_save_model_takes_a_framework_by_name(tmp_path, classifier, fitted):
    uri = save_model(
        classifier, str(tmp_path / "m"), framework="sklearn", features=FEATURES, transform=fitted
    )
    bundle = load_model(uri)
    assert bundle.manifest["framework"] == "sklearn" and bundle.class_names is None
    assert bundle.predict([{k: 0.5 for k in FEATURES}]).tolist()[0] in (0, 1, 2)
    with pytest.raises(ConveyorError, match="No framework adapter named 'sklearnn'"):
        save_model(classifier, str(tmp_path / "n"), framework="sklearnn", features=FEATURES)


def test_requirements_pin_the_framework_without_reading_every_installed_distribution(
    tmp_path, classifier, fitted, monkeypatch
):
    import importlib.metadata

    def every_distribution():  # reads every installed package's file list: a second or so
        raise AssertionError("read every installed distribution")

    monkeypatch.setattr(importlib.metadata, "packages_distributions", every_distribution)
    save_model(classifier, str(tmp_path / "m"), features=FEATURES, transform=fitted)

    lines = (tmp_path / "m" / "requirements.txt").read_text().splitlines()
    assert lines[1] == f"scikit-learn=={importlib.metadata.version('scikit-learn')}"


def test_requirements_find_a_distribution_named_unlike_its_module():
    import importlib.metadata

    from conveyor.frameworks.manifest import Versions

    class DateutilAdapter:  # what Versions reads of an adapter
        extra, modules = None, ("dateutil.parser",)

    found = Versions(DateutilAdapter()).requirements()  # type: ignore[arg-type]

    assert found[1] == f"python-dateutil=={importlib.metadata.version('python-dateutil')}"


def test_save_model_takes_a_saved_transform_by_uri(tmp_path, classifier, fitted, frame):
    fitted.save(str(tmp_path / "tf"))
    uri = save_model(
        classifier,
        str(tmp_path / "m"),
        features=FEATURES,
        class_names=SPECIES,
        transform=str(tmp_path / "tf"),
    )
    assert (load_model(uri).predict(frame) == expected_species(frame)).mean() >= 0.9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": "culmen_length_mm"}, "'features' parameter of save_model"),
        ({"features": []}, "'features' parameter of save_model"),
        ({"features": [*FEATURES, "species"], "label": "species"}, "label 'species' is among"),
        ({"features": ["culmen_length"]}, "not outputs of the transform.*culmen_length_mm"),
        ({"features": FEATURES, "class_names": ["a", 1]}, "'class_names' parameter"),
        ({"features": FEATURES, "task": "ranking"}, "'task' parameter of save_model"),
        ({"features": FEATURES, "sample": np.zeros((2, 3))}, r"'sample' parameter.*\[N, 4\]"),
    ],
)
def test_save_model_checks_its_arguments(tmp_path, classifier, fitted, kwargs, match):
    with pytest.raises(ConveyorError, match=match):
        save_model(classifier, str(tmp_path / "m"), transform=fitted, **kwargs)


def test_save_model_replaces_its_own_bundle_but_not_other_files(tmp_path, classifier, fitted):
    target = tmp_path / "m"
    save_model(classifier, str(target), features=FEATURES, transform=fitted)
    save_model(classifier, str(target), features=FEATURES, class_names=SPECIES, transform=fitted)
    assert load_model(str(target)).class_names == SPECIES
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConveyorError, match=r"did not write \(notes.txt\)"):
        save_model(classifier, str(target), features=FEATURES, transform=fitted)
    assert (target / "notes.txt").read_text() == "mine" and is_bundle(str(target))


def test_a_failed_save_leaves_the_directory_empty(tmp_path: Path, centroid_adapter, monkeypatch):
    def save_unlisted(self, model, directory, *, sample):
        Path(directory, "weights.bin").write_bytes(b"\0")
        return SavedModel(files=[], format="bin")

    monkeypatch.setattr(CentroidAdapter, "save", save_unlisted)
    target = tmp_path / "m"
    with pytest.raises(ConveyorError, match=r"wrote \['weights.bin'\] .* lists \[\]"):
        save_model(Centroids([[0.0]]), str(target), features=["a"])
    assert [p for p in target.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------- feature matrix
def test_feature_matrix_spreads_fixed_size_lists_and_keeps_nulls_as_nan():
    batch = pa.record_batch(
        {
            "x": pa.array([1, None, 3], pa.int64()),
            "onehot": pa.array([[1, 0], None, [0, 1]], pa.list_(pa.int64(), 2)),
        }
    )
    X = feature_matrix(batch, ["onehot", "x"])
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, [[1, 0, 1], [np.nan, np.nan, np.nan], [0, 1, 3]])


# ---------------------------------------------------------------- MLflow and the package
def test_mlflow_pyfunc_loads_the_bundle(bundle_dir: Path, frame):
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(bundle_dir))
    predicted = loaded.predict(frame.drop(columns=["species"]).head(15))
    assert list(predicted) == list(load_model(str(bundle_dir)).predict(frame.head(15)))
    assert loaded.unwrap_python_model().class_names == SPECIES


def test_import_conveyor_stays_light_and_exports_load_model():
    script = (
        "import sys, conveyor, conveyor.frameworks\n"
        "heavy = [m for m in ('numpy', 'pyarrow', 'pandas', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from conveyor.frameworks.bundle import load_model\n"
        "assert conveyor.load_model is load_model\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- a transform added later
@pytest.mark.parametrize("where", ["local", "memory"])
def test_attach_transform_makes_a_bundle_predict_from_raw_rows(
    where, tmp_path, classifier, fitted, frame
):
    uri = str(tmp_path / "m") if where == "local" else f"memory://attach/{tmp_path.name}"
    save_model(classifier, uri, features=FEATURES, label="species", class_names=SPECIES)
    model_files = load_model(uri).manifest["model"]["files"]
    assert attach_transform(uri, fitted) is True
    assert attach_transform(uri, fitted) is False  # it has one now
    bundle = load_model(uri)  # every hash checked, the new transform's included
    assert bundle.manifest["model"]["files"] == model_files
    assert [i["name"] for i in bundle.signature] == FEATURES
    raw = frame.drop(columns=["species"]).to_dict("records")
    assert (bundle.predict(raw) == expected_species(frame)).mean() > 0.9


def test_attach_transform_refuses_a_transform_without_the_model_features(
    tmp_path, classifier, frame
):
    uri = save_model(classifier, str(tmp_path / "m"), features=FEATURES, label="species")
    other = tft.fit(lambda inputs: {"x": inputs["culmen_length_mm"] * 2}, frame)
    with pytest.raises(ConveyorError, match="culmen_depth_mm|features"):
        attach_transform(uri, other)
