"""The scikit-learn, XGBoost, LightGBM, ONNX and Keras adapters pass check_adapter on models
trained on the penguin data, in this process and in a fresh one."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from conveyor.frameworks.base import ModelAdapter, SavedModel
from conveyor.frameworks.keras import KerasAdapter
from conveyor.frameworks.lightgbm import LightGBMAdapter
from conveyor.frameworks.onnx import OnnxAdapter
from conveyor.frameworks.registry import adapter_for
from conveyor.frameworks.sklearn import SklearnAdapter
from conveyor.frameworks.xgboost import XGBoostAdapter
from conveyor.testing import AdapterCheckFailed, check_adapter
from conveyor.types import ConveyorError

FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
SPECIES = np.array(["Adelie", "Chinstrap", "Gentoo"])


def accuracy(adapter: ModelAdapter, model, X, y) -> float:
    return float(np.mean(adapter.predict(model, X) == y))


# scikit-learn


def test_sklearn_logistic_regression_round_trips(penguins):
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    model = LogisticRegression(max_iter=500).fit(X, y)
    loaded = check_adapter(SklearnAdapter(), model, X[::7], expect_proba=True, exact=True)
    assert type(loaded) is LogisticRegression
    assert accuracy(SklearnAdapter(), loaded, X, y) > 0.9


def test_sklearn_mlp_pipeline_round_trips(penguins):
    """The TFX penguin scikit-learn example's model: an MLP behind a StandardScaler."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = penguins
    mlp = MLPClassifier(
        hidden_layer_sizes=[8, 8, 8], batch_size=20, learning_rate_init=0.005, max_iter=200
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a short run is enough here
        model = make_pipeline(StandardScaler(), mlp).fit(X, y)
    loaded = check_adapter(SklearnAdapter(), model, X[::5], expect_proba=True)
    assert [name for name, _ in loaded.steps] == ["standardscaler", "mlpclassifier"]
    assert accuracy(SklearnAdapter(), loaded, X, y) > 0.9


def test_sklearn_random_forest_regressor_round_trips(penguins):
    from sklearn.ensemble import RandomForestRegressor

    X, _ = penguins
    inputs, body_mass = X[:, :3], X[:, 3]
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(
        inputs, body_mass
    )
    adapter = SklearnAdapter()
    check_adapter(adapter, model, inputs[::9], expect_proba=False, exact=True)
    assert adapter.is_classifier(model) is False
    assert adapter.predict(model, inputs).dtype.kind == "f"


def test_sklearn_string_labels_predict_class_ids(penguins, tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    model = LogisticRegression(max_iter=500).fit(X, SPECIES[y])
    adapter = SklearnAdapter()
    saved = adapter.save(model, str(tmp_path), sample=X[:4])
    assert saved.info["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    ids = adapter.predict(model, X)
    assert ids.dtype == np.int64
    assert list(SPECIES[ids]) == list(model.predict(X))
    check_adapter(adapter, model, X[::11], expect_proba=True, exact=True)


class HandRolledClassifier:
    """An estimator defined outside scikit-learn: code the loader must not run unasked."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.threshold_ = float(np.median(X[:, 0]))
        return self

    def predict(self, X):
        return (X[:, 0] > self.threshold_).astype(np.int64)


def scaled(X):
    return X * 2.0


def test_sklearn_untrusted_function_refused_at_save(penguins, model_dir):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = penguins
    model = make_pipeline(FunctionTransformer(scaled), LogisticRegression()).fit(X, y)
    with pytest.raises(ConveyorError, match=rf"{__name__}\.scaled") as failure:
        SklearnAdapter().save(model, str(model_dir), sample=X[:4])
    assert "SklearnAdapter(trusted=" in str(failure.value)
    assert not list(model_dir.iterdir())  # nothing written


def test_sklearn_untrusted_type_refused_at_load(penguins, tmp_path):
    X, y = penguins
    model = HandRolledClassifier().fit(X, y)
    type_name = f"{__name__}.HandRolledClassifier"
    saved = SklearnAdapter(trusted=[type_name]).save(model, str(tmp_path), sample=None)
    assert type_name in saved.info["names"]
    with pytest.raises(ConveyorError, match=type_name) as failure:
        SklearnAdapter().load(str(tmp_path), saved)
    assert "not trusted" in str(failure.value) and "SklearnAdapter(trusted=" in str(failure.value)
    loaded = SklearnAdapter(trusted=[type_name]).load(str(tmp_path), saved)
    assert np.array_equal(loaded.predict(X), model.predict(X))


class Payload:
    def __reduce__(self):
        return os.system, ("echo loaded",)


def test_sklearn_model_file_calling_os_system_is_refused_naming_it(penguins, tmp_path):
    """A model file swapped for a pickle that would run a command, manifest names and all."""
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    saved = SklearnAdapter().save(LogisticRegression().fit(X, y), str(tmp_path), sample=None)
    Path(tmp_path, "model.pkl").write_bytes(pickle.dumps(Payload(), protocol=5))
    saved.info["names"].append(f"{os.system.__module__}.system")
    with pytest.raises(ConveyorError, match=rf"{os.system.__module__}\.system") as failure:
        SklearnAdapter().load(str(tmp_path), saved)
    assert "not trusted" in str(failure.value)


def test_sklearn_skops_files_still_load_under_the_same_trust(penguins, tmp_path):
    """Bundles saved before the restricted pickle hold model.skops."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    skops.io.dump(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "model.skops")
    saved = SavedModel(files=["model.skops"], format="skops")
    assert SklearnAdapter().load(str(tmp_path), saved).predict(X).shape == (len(X),)

    model = HandRolledClassifier().fit(X, y)
    skops.io.dump(model, tmp_path / "model.skops")
    type_name = f"{__name__}.HandRolledClassifier"
    with pytest.raises(ConveyorError, match=type_name) as failure:
        SklearnAdapter().load(str(tmp_path), saved)
    assert "not trusted" in str(failure.value)
    loaded = SklearnAdapter(trusted=[type_name]).load(str(tmp_path), saved)
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_sklearn_skops_file_without_skops_says_how_to_read_it(tmp_path, monkeypatch):
    (tmp_path / "model.skops").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "skops.io", None)  # as if skops were not installed
    saved = SavedModel(files=["model.skops"], format="skops")
    with pytest.raises(ConveyorError, match="pip install skops"):
        SklearnAdapter().load(str(tmp_path), saved)


def test_sklearn_skops_files_holding_a_scipy_stats_distribution_are_refused(penguins, tmp_path):
    """Rebuilding a scipy.stats distribution execs a template from the file: not trusted."""
    import scipy.stats
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    model = LogisticRegression(max_iter=500).fit(X, y)
    model.prior_ = scipy.stats.norm
    skops.io.dump(model, tmp_path / "model.skops")
    saved = SavedModel(files=["model.skops"], format="skops")
    with pytest.raises(ConveyorError, match=r"scipy\.stats\._continuous_distns\.norm_gen"):
        SklearnAdapter().load(str(tmp_path), saved)
    with pytest.raises(ConveyorError, match=r"scipy\.stats\._continuous_distns\.norm_gen"):
        SklearnAdapter().save(model, str(tmp_path / "again"), sample=None)


def test_sklearn_load_imports_neither_skops_nor_torch(penguins, tmp_path):
    """Loading costs the scikit-learn modules the model uses, nothing more."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = penguins
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(StandardScaler(), MLPClassifier(max_iter=5)).fit(X, y)
    saved = SklearnAdapter().save(model, str(tmp_path), sample=None)
    script = (
        "import json, sys\n"
        "from conveyor.frameworks.base import SavedModel\n"
        "from conveyor.frameworks.sklearn import SklearnAdapter\n"
        "saved = SavedModel(**json.loads(sys.argv[2]))\n"
        "SklearnAdapter().load(sys.argv[1], saved)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'skops', 'torch', 'sklearn'})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), json.dumps(asdict(saved))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == ["sklearn"]


# XGBoost


def test_xgboost_classifier_round_trips(penguins):
    import xgboost

    X, y = penguins
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
    adapter = XGBoostAdapter()
    loaded = check_adapter(adapter, model, X[::6], expect_proba=True, exact=True)
    assert type(loaded) is xgboost.XGBClassifier
    assert accuracy(adapter, loaded, X, y) > 0.9


def test_xgboost_booster_round_trips(penguins):
    import xgboost

    X, y = penguins
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=y), num_boost_round=20)
    adapter = XGBoostAdapter()
    loaded = check_adapter(adapter, booster, X[::6], expect_proba=True, exact=True)
    assert isinstance(loaded, xgboost.Booster)
    assert adapter.is_classifier(loaded)
    assert accuracy(adapter, loaded, X, y) > 0.9


def test_xgboost_binary_and_regression_boosters_round_trip(penguins):
    import xgboost

    X, y = penguins
    adapter = XGBoostAdapter()
    gentoo = xgboost.train(
        {"objective": "binary:logistic"}, xgboost.DMatrix(X, label=y == 2), num_boost_round=10
    )
    check_adapter(adapter, gentoo, X[::6], expect_proba=True, exact=True)
    assert accuracy(adapter, gentoo, X, y == 2) > 0.9
    mass = xgboost.train(
        {"objective": "reg:squarederror"}, xgboost.DMatrix(X[:, :3], label=X[:, 3]), 10
    )
    check_adapter(adapter, mass, X[::6, :3], expect_proba=False, exact=True)
    assert adapter.is_classifier(mass) is False


# LightGBM


def test_lightgbm_classifier_round_trips(penguins):
    import lightgbm

    X, y = penguins
    model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1).fit(X, y)
    adapter = LightGBMAdapter()
    loaded = check_adapter(adapter, model, X[::6], expect_proba=True, exact=True)
    assert isinstance(loaded, lightgbm.Booster)
    assert np.array_equal(adapter.predict(loaded, X), model.predict(X))
    assert np.array_equal(adapter.predict_proba(loaded, X), model.predict_proba(X))
    assert accuracy(adapter, loaded, X, y) > 0.9


def test_lightgbm_booster_round_trips(penguins):
    import lightgbm

    X, y = penguins
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 8, "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(X, label=y), num_boost_round=30)
    adapter = LightGBMAdapter()
    loaded = check_adapter(adapter, booster, X[::6], expect_proba=True, exact=True)
    assert accuracy(adapter, loaded, X, y) > 0.9


def test_lightgbm_records_labels_and_regressors_give_values(penguins, tmp_path):
    import lightgbm

    X, y = penguins
    adapter = LightGBMAdapter()
    classifier = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, SPECIES[y])
    saved = adapter.save(classifier, str(tmp_path), sample=None)
    assert saved.info["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert list(SPECIES[adapter.predict(classifier, X)]) == list(classifier.predict(X))
    regressor = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(X[:, :3], X[:, 3])
    check_adapter(adapter, regressor, X[::6, :3], expect_proba=False, exact=True)
    assert adapter.is_classifier(regressor) is False


# ONNX


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "tensor"])
def test_onnx_from_skl2onnx_round_trips(penguins, zipmap):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    sklearn_model = LogisticRegression(max_iter=500).fit(X, y)
    onnx_model = to_onnx(sklearn_model, X[:1], options={id(sklearn_model): {"zipmap": zipmap}})
    adapter = OnnxAdapter()
    check_adapter(adapter, onnx_model, X[::5], expect_proba=True, exact=True)
    assert np.array_equal(adapter.predict(onnx_model, X), sklearn_model.predict(X))
    np.testing.assert_allclose(
        adapter.predict_proba(onnx_model, X), sklearn_model.predict_proba(X), atol=1e-5
    )


def test_onnx_model_file_path_round_trips(penguins, tmp_path):
    import onnx
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    path = tmp_path / "penguins.onnx"
    onnx.save_model(to_onnx(LogisticRegression(max_iter=500).fit(X, y), X[:1]), path)
    adapter = OnnxAdapter()
    assert adapter.handles(str(path)) and adapter.handles(path)
    assert not adapter.handles(str(tmp_path / "model.txt"))
    check_adapter(adapter, str(path), X[::5], expect_proba=True, exact=True)


# Keras (Keras 3 on the PyTorch backend: no TensorFlow needed)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras' torch backend and NumPy 2
def test_keras_logits_model_round_trips(penguins, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # read at keras's first import
    import keras

    X, y = penguins
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(X, y, epochs=15, batch_size=64, verbose=0)
    adapter = KerasAdapter()
    assert adapter_for(model).name == "keras"  # not torch, though it is an nn.Module too
    loaded = check_adapter(adapter, model, X[::5], expect_proba=True)
    assert adapter.is_classifier(loaded)
    assert accuracy(adapter, loaded, X, y) > 0.9


# The conformance suite catches broken adapters


class ForgetfulAdapter(SklearnAdapter):
    """Writes a stray file it does not list."""

    def save(self, model, directory, *, sample):
        saved = super().save(model, directory, sample=sample)
        Path(directory, "notes.txt").write_text("not listed")
        return saved


class ForeignLoadAdapter(SklearnAdapter):
    """Loads some other model than the one it saved."""

    def load(self, directory, saved):
        from sklearn.dummy import DummyClassifier

        model = super().load(directory, saved)
        return DummyClassifier(strategy="most_frequent").fit(np.zeros((3, 4)), model.classes_)


class CarelessLoadAdapter(SklearnAdapter):
    """Fails with an unrelated error when a file is missing."""

    def load(self, directory, saved):
        if not Path(directory, "model.pkl").exists():
            raise RuntimeError("boom")
        return super().load(directory, saved)


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        (ForgetfulAdapter(), "differ from the files save"),
        (ForeignLoadAdapter(), "differs from the original model's"),
        (CarelessLoadAdapter(), "must raise a ConveyorError"),
    ],
    ids=["unlisted-file", "different-model", "unclear-missing-file"],
)
def test_check_adapter_catches_broken_adapters(penguins, adapter, message):
    from sklearn.linear_model import LogisticRegression

    X, y = penguins
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(AdapterCheckFailed, match=message):
        check_adapter(adapter, model, X[::10], fresh_process=False)


def test_check_adapter_expect_proba_is_enforced(penguins):
    from sklearn.ensemble import RandomForestRegressor

    X, _ = penguins
    model = RandomForestRegressor(n_estimators=3).fit(X[:, :3], X[:, 3])
    with pytest.raises(AdapterCheckFailed, match="probabilities expected"):
        check_adapter(SklearnAdapter(), model, X[:10, :3], expect_proba=True)
