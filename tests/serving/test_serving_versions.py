"""Model versions over real HTTP: a new version published under continuous load is swapped
in with no failed request; a corrupt version is refused and reported while the old one keeps
answering; removing the serving version rolls back; a server with nothing loadable fails to
start with the reason."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from conveyor.frameworks import load_model
from conveyor.frameworks.sklearn import MODEL_FILE as SKLEARN_MODEL_FILE
from conveyor.serving import start_server
from conveyor.types import ConveyorError

FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
MODEL_FILE = f"model/{SKLEARN_MODEL_FILE}"


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _serving_version(client: httpx.Client) -> str | None:
    for status in client.get("/v1/models/penguin").json()["model_version_status"]:
        if status["state"] == "AVAILABLE":
            return status["version"]
    return None


def _infer_body(rows: list[dict]) -> dict:
    return {
        "inputs": [
            {"name": f, "datatype": "FP64", "shape": [len(rows)], "data": [r[f] for r in rows]}
            for f in FEATURES
        ],
        "outputs": [{"name": "probabilities"}],
    }


def test_serving_swaps_version_under_load_without_failures(
    tmp_path, sklearn_bundles, publish, penguin_rows
) -> None:
    rows = penguin_rows[:4]
    expected = {
        "1": load_model(str(sklearn_bundles["a"])).predict_proba(rows),
        "2": load_model(str(sklearn_bundles["b"])).predict_proba(rows),
    }
    assert not np.allclose(expected["1"], expected["2"], atol=1e-3)
    base = tmp_path / "penguin"
    publish(base, 1, sklearn_bundles["a"])
    answers: list[list[tuple[str, np.ndarray]]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    with start_server(model_name="penguin", model_base=str(base), poll_s=0.1) as server:

        def send(mine: list[tuple[str, np.ndarray]]) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for _ in range(3000):  # bounded, whatever the machine's speed
                    if stop.is_set():
                        return
                    try:
                        answer = client.post("/v2/models/penguin/infer", json=_infer_body(rows))
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text}")
                        continue
                    document = answer.json()
                    proba = np.reshape(document["outputs"][0]["data"], (len(rows), 3))
                    mine.append((document["model_version"], proba))

        threads = [threading.Thread(target=send, args=(mine,)) for mine in answers]
        for thread in threads:
            thread.start()
        try:
            _wait_for(lambda: sum(map(len, answers)) >= 40, "answers from version 1")
            publish(base, 2, sklearn_bundles["b"])
            with httpx.Client(base_url=server.url) as client:
                _wait_for(lambda: _serving_version(client) == "2", "version 2 to serve")
            seen = sum(map(len, answers))
            _wait_for(lambda: sum(map(len, answers)) >= seen + 40, "answers after the swap")
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        with httpx.Client(base_url=server.url) as client:
            after = client.post("/v2/models/penguin/infer", json=_infer_body(rows)).json()
            status = client.get("/v1/models/penguin").json()["model_version_status"]

    assert failures == []
    versions = [version for mine in answers for version, _ in mine]
    assert {"1", "2"} <= set(versions)
    for mine in answers:  # each client moves from 1 to 2 once, never back
        sequence = [version for version, _ in mine]
        assert sequence == sorted(sequence)
        for version, proba in mine:
            np.testing.assert_allclose(proba, expected[version], atol=1e-6)
    assert after["model_version"] == "2"
    assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE"), ("1", "END")]


def test_serving_refuses_corrupt_version_keeps_old_and_rolls_back(
    tmp_path, sklearn_bundles, publish, penguin_rows
) -> None:
    base = tmp_path / "penguin"
    publish(base, 1, sklearn_bundles["a"])
    with (
        start_server(model_name="penguin", model_base=str(base), poll_s=0.1) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        publish(base, 2, sklearn_bundles["b"], flip_byte_in=MODEL_FILE)

        def failed() -> bool:
            statuses = client.get("/v1/models/penguin").json()["model_version_status"]
            return any(s["version"] == "2" and s["status"]["error_message"] for s in statuses)

        _wait_for(failed, "version 2 to fail")
        statuses = {
            s["version"]: s for s in client.get("/v1/models/penguin").json()["model_version_status"]
        }
        assert statuses["1"]["state"] == "AVAILABLE"
        assert statuses["2"]["state"] == "END"
        assert statuses["2"]["status"]["error_code"] == "UNKNOWN"
        assert MODEL_FILE in statuses["2"]["status"]["error_message"]

        answer = client.post("/v2/models/penguin/infer", json=_infer_body(penguin_rows[:2]))
        assert (answer.status_code, answer.json()["model_version"]) == (200, "1")
        explicit = client.post(
            "/v1/models/penguin/versions/2:predict", json={"instances": penguin_rows[:1]}
        )
        assert explicit.status_code == 404
        assert MODEL_FILE in explicit.json()["error"]
        assert 'conveyor_serving_model_load_failures_total{model="penguin"} 1.0' in (
            client.get("/metrics").text
        )

        publish(base, 3, sklearn_bundles["b"])  # a good version after a bad one
        _wait_for(lambda: _serving_version(client) == "3", "version 3 to serve")

        shutil.rmtree(base / "3")  # rolled back: the highest version that loads
        _wait_for(lambda: _serving_version(client) == "1", "the rollback to version 1")
        answer = client.post("/v1/models/penguin:predict", json={"instances": penguin_rows[:1]})
        assert answer.status_code == 200
        assert (
            client.get("/v1/models/penguin/versions/1").json()["model_version_status"][0]["state"]
            == "AVAILABLE"
        )


def test_start_server_fails_with_the_reason_when_nothing_loads(
    tmp_path, sklearn_bundles, publish
) -> None:
    corrupt = tmp_path / "corrupt"
    publish(corrupt, 1, sklearn_bundles["a"], flip_byte_in="transform/transform_fn/graph.json")
    with pytest.raises(ConveyorError, match="graph.json"):
        start_server(model_name="penguin", model_base=str(corrupt))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "not-a-version").mkdir()
    with pytest.raises(ConveyorError, match="no numbered version folders"):
        start_server(model_name="penguin", model_base=str(empty))


def test_remote_version_counts_once_its_manifest_is_uploaded(sklearn_bundles, s3_endpoint):
    import s3fs

    from conveyor.serving.repository import list_versions

    fs = s3fs.S3FileSystem()
    bundle = sklearn_bundles["a"]
    fs.put(str(bundle) + "/", "conveyor/served/penguin/1/", recursive=True)
    partial = [p for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"]
    for path in partial:  # version 2 mid-upload: everything but the manifest
        fs.put_file(str(path), f"conveyor/served/penguin/2/{path.relative_to(bundle)}")
    fs.invalidate_cache()
    assert sorted(list_versions("s3://conveyor/served/penguin")) == [1]
    fs.put_file(str(bundle / "manifest.json"), "conveyor/served/penguin/2/manifest.json")
    fs.invalidate_cache()
    found = list_versions("s3://conveyor/served/penguin")
    assert sorted(found) == [1, 2] and found[2][0] == "s3://conveyor/served/penguin/2"
    assert found[2][1] is not None  # a stamp, so a version that failed is retried once re-pushed
