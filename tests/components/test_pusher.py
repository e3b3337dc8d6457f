"""Pusher: blessed bundles become the next numbered version under the destination, checked
and renamed into place at once; anything not blessed is recorded and left out, and a server
watching the destination keeps serving what it had."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from conveyor import Importer, Input, LocalRunner, Output, Param, Pipeline, component
from conveyor.components import Pusher
from conveyor.components import pusher as pusher_module
from conveyor.components.pusher import push_bundle, push_model
from conveyor.frameworks import load_model
from conveyor.frameworks.manifest import read_manifest
from conveyor.types import ConveyorError, InfraBlessing, Model, ModelBlessing, PushedModel


@component
def Bless(model: Input[Model], blessing: Output[ModelBlessing], blessed: Param[bool] = True):
    """Stands in for the Evaluator: a verdict on ``model``."""
    reasons = [] if blessed else ["accuracy 0.31 is below the threshold 0.6."]
    blessing.properties.update(blessed=blessed, model_id=model.id, reasons=reasons)


def output(tmp_path: Path) -> PushedModel:
    folder = tmp_path / "pushed"
    folder.mkdir(parents=True)
    return PushedModel(str(folder))


def blessing(blessed: bool = True, model_id: int = 1, kind=ModelBlessing):
    return kind("/blessings/1", id=9, properties={"blessed": blessed, "model_id": model_id})


def versions(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir())


def test_pusher_pushes_blessed_models_as_increasing_versions(tmp_path, sklearn_bundles):
    base = tmp_path / "models"
    first = output(tmp_path)
    push_model(Model(str(sklearn_bundles["a"]), id=1), first, str(base), blessing())
    (base / "7").mkdir()  # a version pushed by someone else
    second = output(tmp_path / "second")
    push_model(Model(str(sklearn_bundles["b"]), id=2), second, str(base), blessing(model_id=2))
    assert versions(base) == ["1", "7", "8"]  # nothing else: no staging folder left behind
    assert first.properties["pushed"] is True
    assert first.properties["pushed_version"] == 1
    assert first.properties["pushed_destination"] == str(base / "1")
    assert first.properties["reasons"] == []
    assert second.properties["pushed_version"] == 8
    pushed = read_manifest(str(base / "8"))
    assert second.properties["manifest_sha256"] == pushed["manifest_sha256"]
    assert pushed == read_manifest(str(sklearn_bundles["b"]))
    rows = [dict.fromkeys(["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm",
                           "body_mass_g"], 0.5)]  # fmt: skip
    assert (
        load_model(str(base / "1")).predict_proba(rows)
        == load_model(str(sklearn_bundles["a"])).predict_proba(rows)
    ).all()
    record = json.loads((Path(first.uri) / "push.json").read_text())
    assert record["pushed_version"] == 1


def test_pusher_same_bundle_again_adds_no_version(tmp_path, sklearn_bundles):
    base = tmp_path / "models"
    for index, bundle in enumerate(["a", "a", "b", "a"]):
        pushed = output(tmp_path / str(index))
        push_model(Model(str(sklearn_bundles[bundle]), id=1), pushed, str(base), blessing())
        assert pushed.properties["pushed"] is True
    assert versions(base) == ["1", "2", "3"]  # a, then b, then a again: it is not the latest
    again = output(tmp_path / "again")
    push_model(Model(str(sklearn_bundles["a"]), id=1), again, str(base), blessing())
    assert versions(base) == ["1", "2", "3"]
    assert again.properties["pushed_version"] == 3
    assert again.properties["already_latest"] is True
    assert again.properties["pushed_destination"] == str(base / "3")


@pytest.mark.parametrize(
    ("blessings", "expected"),
    [
        ({"model_blessing": blessing(False)}, "model blessing (artifact 9) is not blessed"),
        ({"model_blessing": blessing(model_id=5)}, "is for model 5, not for model 1"),
        ({"infra_blessing": blessing(False, kind=InfraBlessing)}, "infra blessing"),
        (
            {"model_blessing": ModelBlessing("/b", id=9, properties={"blessed": True})},
            "names no model_id",
        ),
    ],
)
def test_pusher_without_every_blessing_pushes_nothing_and_says_why(
    tmp_path, sklearn_bundles, blessings, expected
):
    base = tmp_path / "models"
    pushed = output(tmp_path)
    push_model(Model(str(sklearn_bundles["a"]), id=1), pushed, str(base), **blessings)
    assert not base.exists()
    assert pushed.properties["pushed"] is False
    assert pushed.properties["pushed_version"] is None
    assert expected in " ".join(pushed.properties["reasons"])


def test_pusher_quotes_the_blessings_reasons(tmp_path, sklearn_bundles):
    verdict = ModelBlessing(
        "/b", id=4, properties={"blessed": False, "model_id": 1, "reasons": ["accuracy 0.5 < 0.6."]}
    )
    pushed = output(tmp_path)
    push_model(Model(str(sklearn_bundles["a"]), id=1), pushed, str(tmp_path / "m"), verdict)
    assert pushed.properties["reasons"] == [
        "The model blessing (artifact 4) is not blessed: accuracy 0.5 < 0.6."
    ]


def test_pusher_racing_push_takes_the_next_version(tmp_path, sklearn_bundles, monkeypatch):
    base = tmp_path / "models"
    push_bundle(str(sklearn_bundles["a"]), str(base), read_manifest(str(sklearn_bundles["a"])))
    # Another push claimed version 1 after this one looked: its rename must not replace it.
    looks = iter([1])
    monkeypatch.setattr(pusher_module, "next_version", lambda fs, root: next(looks, 2))
    manifest_b = read_manifest(str(sklearn_bundles["b"]))
    assert push_bundle(str(sklearn_bundles["b"]), str(base), manifest_b) == (2, str(base / "2"))
    assert read_manifest(str(base / "1")) == read_manifest(str(sklearn_bundles["a"]))
    assert read_manifest(str(base / "2")) == manifest_b


def test_pusher_concurrent_pushes_get_distinct_versions(tmp_path, sklearn_bundles):
    base = tmp_path / "models"
    manifest = read_manifest(str(sklearn_bundles["a"]))
    found: list[int] = []

    def push() -> None:
        found.append(push_bundle(str(sklearn_bundles["a"]), str(base), manifest)[0])

    threads = [threading.Thread(target=push) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(found) == [1, 2, 3, 4]
    assert versions(base) == ["1", "2", "3", "4"]
    for version in found:
        load_model(str(base / str(version)))  # complete and hash-checked


def test_pusher_refuses_a_bundle_whose_copy_does_not_match(tmp_path, sklearn_bundles):
    changed = tmp_path / "changed"
    shutil.copytree(sklearn_bundles["a"], changed)
    (changed / "model" / "extra.bin").write_bytes(b"not in the manifest")
    base = tmp_path / "models"
    with pytest.raises(ConveyorError, match=r"model/extra.bin .* is not listed in manifest.json"):
        push_bundle(str(changed), str(base), read_manifest(str(changed)))
    assert versions(base) == []  # no version, no staging folder


def test_pusher_unwritable_destination_fails_the_run_naming_it(tmp_path, sklearn_bundles):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the destination's parent should be")
    destination = blocker / "models"
    model = Importer(str(sklearn_bundles["a"]), Model).with_id("model")
    pusher = Pusher(model=model.outputs["result"], push_destination=str(destination))
    result = run(tmp_path, model, pusher)
    assert not result.ok
    node = result["Pusher"]
    assert node.state == "FAILED"
    assert f"Cannot push the model to {destination}" in node.error
    assert "choose another push_destination" in node.error


def run(tmp_path: Path, *nodes):
    pipeline = Pipeline(
        "push", list(nodes), root=tmp_path / "root", metadata_url=f"sqlite:///{tmp_path}/md.db"
    )
    return LocalRunner(display="none").run(pipeline)


def push_run(tmp_path: Path, bundle: Path, destination: Path, *, blessed: bool):
    model = Importer(str(bundle), Model).with_id("model")
    bless = Bless(model=model.outputs["result"], blessed=blessed)
    pusher = Pusher(
        model=model.outputs["result"],
        model_blessing=bless.outputs["blessing"],
        push_destination=str(destination),
    )
    result = run(tmp_path, model, bless, pusher)
    assert result.ok, result.message
    return result["Pusher"].outputs["pushed_model"][0]


def served(server, name: str = "penguin") -> tuple[str, list[float]]:
    """(the version available, the probabilities of one row)."""
    status = httpx.get(f"{server.url}/v1/models/{name}").json()["model_version_status"]
    available = [s["version"] for s in status if s["state"] == "AVAILABLE"]
    row = {"culmen_length_mm": 0.4, "culmen_depth_mm": 0.6, "flipper_length_mm": 0.3,
           "body_mass_g": 0.3}  # fmt: skip
    answer = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": [row]})
    return available[0], answer.json()["predictions"][0]["probabilities"]


def test_pusher_server_keeps_its_version_until_a_blessed_push(tmp_path, sklearn_bundles):
    from conveyor.serving import start_server

    destination = tmp_path / "serving" / "penguin"
    first = push_run(tmp_path, sklearn_bundles["a"], destination, blessed=True)
    assert first.properties["pushed_version"] == 1
    with start_server(model_name="penguin", model_base=str(destination), poll_s=0.1) as server:
        version, probabilities_a = served(server)
        assert version == "1"
        worse = push_run(tmp_path, sklearn_bundles["b"], destination, blessed=False)
        assert worse.properties["pushed"] is False
        assert "accuracy 0.31 is below the threshold 0.6" in worse.properties["reasons"][0]
        time.sleep(0.5)  # several looks at the destination
        assert versions(destination) == ["1"]
        assert served(server) == ("1", probabilities_a)
        better = push_run(tmp_path, sklearn_bundles["b"], destination, blessed=True)
        assert better.properties["pushed_version"] == 2
        deadline = time.monotonic() + 60
        while served(server)[0] != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        version, probabilities_b = served(server)
        assert version == "2"
        assert probabilities_b != probabilities_a


def test_pusher_to_an_object_store_uploads_then_publishes(tmp_path, sklearn_bundles, s3_endpoint):
    import s3fs

    destination = "s3://conveyor/models/penguin"
    for expected, bundle in ((1, "a"), (2, "b")):
        pushed = output(tmp_path / str(expected))
        push_model(Model(str(sklearn_bundles[bundle]), id=1), pushed, destination, blessing())
        assert pushed.properties["pushed_version"] == expected
        assert pushed.properties["pushed_destination"] == f"{destination}/{expected}"
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    listed = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("conveyor/models/penguin"))
    assert listed == ["1", "2"]  # the hidden upload prefix is gone
    bundle = load_model(f"{destination}/2")
    assert bundle.manifest == read_manifest(str(sklearn_bundles["b"]))
    again = output(tmp_path / "again")
    push_model(Model(str(sklearn_bundles["b"]), id=1), again, destination, blessing())
    assert again.properties["already_latest"] is True and again.properties["pushed_version"] == 2
