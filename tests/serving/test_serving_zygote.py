"""The model server's zygote: start_server forks servers from it while a runner provides one,
each as fresh as ``python -m conveyor.serving``, and falls back to a fresh interpreter."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conveyor.frameworks import ModelAdapter, SavedModel, save_model
from conveyor.frameworks.registry import default_registry, register_adapter
from conveyor.serving import start_server
from conveyor.serving.forking import ForkedProcess
from conveyor.serving.zygote import ZYGOTE_ENV, start_zygote
from conveyor.types import ConveyorError

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
ROW = {"culmen_length_mm": 39.1, "culmen_depth_mm": 18.7, "flipper_length_mm": 181.0,
       "body_mass_g": 3750.0}  # fmt: skip


@pytest.fixture(scope="module")
def zygote():
    started = start_zygote(["sklearn.linear_model"])
    yield started
    started.close()


@pytest.fixture()
def through_zygote(zygote, monkeypatch):
    monkeypatch.setenv(ZYGOTE_ENV, zygote.address)
    return zygote


class Constant:
    """A model of a framework only this test process knows."""


class ConstantAdapter(ModelAdapter):
    name = "constant"
    modules = ()

    def handles(self, model):
        return isinstance(model, Constant)

    def framework_version(self):
        return "1"

    def save(self, model, directory, *, sample):
        Path(directory, "constant.txt").write_text("0")
        return SavedModel(files=["constant.txt"], format="txt")

    def load(self, directory, saved):
        return Constant()

    def predict(self, model, X):
        return np.zeros(len(X), dtype=np.int64)

    def is_classifier(self, model):
        return True


def model_base(bundle: Path, tmp_path: Path) -> str:
    shutil.copytree(bundle, tmp_path / "base" / "1")
    return str(tmp_path / "base")


def predict(server, name: str = "m") -> dict:
    request = urllib.request.Request(
        f"{server.url}/v1/models/{name}:predict",
        data=json.dumps({"instances": [ROW]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def wait_until_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} is still there"
        time.sleep(0.05)


def test_zygote_server_answers_and_stop_ends_it(through_zygote, sklearn_bundles, tmp_path):
    base = model_base(sklearn_bundles["a"], tmp_path)
    with start_server(model_name="m", model_base=base, poll_s=0) as server:
        assert isinstance(server.process, ForkedProcess)
        [answer] = predict(server)["predictions"]
        assert answer["prediction"] in SPECIES
    assert not server.alive
    wait_until_gone(server.process.pid)
    assert "serving m on" in server.log()


def test_zygote_server_does_not_see_adapters_the_caller_registered(through_zygote, tmp_path):
    register_adapter(ConstantAdapter())  # registered here, as a pipeline file might
    try:
        save_model(Constant(), str(tmp_path / "bundle"), features=list(ROW), label="species",
                   class_names=["Adelie", "Chinstrap", "Gentoo"])  # fmt: skip
        base = model_base(tmp_path / "bundle", tmp_path)
        with pytest.raises(ConveyorError, match="could not load"):
            start_server(model_name="m", model_base=base, poll_s=0, ready_timeout_s=60)
    finally:
        default_registry().unregister("constant")


def test_start_server_without_a_reachable_zygote_starts_python(
    sklearn_bundles, tmp_path, monkeypatch
):
    monkeypatch.setenv(ZYGOTE_ENV, str(tmp_path / "no-such-socket"))
    base = model_base(sklearn_bundles["a"], tmp_path)
    with start_server(model_name="m", model_base=base, poll_s=0) as server:
        assert not isinstance(server.process, ForkedProcess)
        assert predict(server)["predictions"][0]["prediction"] in SPECIES


def test_zygote_closed_ends_its_servers(sklearn_bundles, tmp_path, monkeypatch):
    zygote = start_zygote()
    monkeypatch.setenv(ZYGOTE_ENV, zygote.address)
    server = start_server(model_name="m", model_base=model_base(sklearn_bundles["a"], tmp_path))
    zygote.close()
    assert server.process.wait(30) is not None
    wait_until_gone(server.process.pid)
    assert not Path(zygote.address).parent.exists()
    server.stop()
