"""A pipeline root on an object store (moto's S3 server on loopback): components see local
folders, the store records the bucket's URIs, and nothing is uploaded for a failure."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from conveyor import Input, LocalRunner, Output, Param, Pipeline, component
from conveyor.metadata import MetadataStore
from conveyor.orchestration.staging import cache_dir
from conveyor.types import Examples, Model
from conveyor.ui.files import tail


@component
def Gen(examples: Output[Examples], n: Param[int] = 3):
    Path(examples.uri, "sub").mkdir()
    Path(examples.uri, "sub", "data.json").write_text(json.dumps(list(range(n))))
    examples.properties["rows"] = n
    print("generated", n, "rows into", examples.uri)


@component
def Train(examples: Input[Examples], model: Output[Model], fail: Param[bool] = False):
    data = json.loads(Path(examples.uri, "sub", "data.json").read_text())
    Path(model.uri, "weights.json").write_text(json.dumps({"sum": sum(data)}))
    if fail:
        raise ValueError("the trainer gave up")
    model.properties["sum"] = sum(data)


def _pipeline(tmp_path: Path, root: str, *, fail: bool = False, n: int = 3) -> Pipeline:
    gen = Gen(n=n)
    train = Train(examples=gen.outputs["examples"], fail=fail)
    return Pipeline(
        "remote", [gen, train], root=root, metadata_url=f"sqlite:///{tmp_path / 'md.db'}"
    )


@pytest.fixture
def bucket_root(s3_endpoint) -> str:
    return f"s3://conveyor/roots/{uuid.uuid4().hex[:8]}"


def test_remote_root_artifacts_land_in_the_bucket(tmp_path, bucket_root):
    import s3fs

    result = LocalRunner(display="none").run(_pipeline(tmp_path, bucket_root))
    assert result.ok, result.message
    examples = result["Gen"].outputs["examples"][0]
    model = result["Train"].outputs["model"][0]
    assert examples.uri.startswith(bucket_root + "/Gen/examples/")
    assert model.uri.startswith(bucket_root + "/Train/model/")
    assert model.properties["sum"] == 3
    fs = s3fs.S3FileSystem()
    assert json.loads(fs.cat_file(f"{examples.uri}/sub/data.json")) == [0, 1, 2]
    assert json.loads(fs.cat_file(f"{model.uri}/weights.json")) == {"sum": 3}
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    recorded = {a.id: a.uri for a in store.artifacts()}
    execution = store.executions(run_id=result.run_id, node_id="Gen")[0]
    store.close()
    assert recorded[examples.id] == examples.uri
    assert execution.log_uri.startswith(bucket_root + "/.system/logs/")
    assert "generated 3 rows" in tail(execution.log_uri)


def test_remote_root_rerun_is_cached_and_a_new_machine_downloads(tmp_path, bucket_root):
    runner = LocalRunner(display="none")
    first = runner.run(_pipeline(tmp_path, bucket_root))
    assert first.ok, first.message
    again = runner.run(_pipeline(tmp_path, bucket_root))
    assert {n.state for n in again.nodes.values()} == {"CACHED"}
    # Another machine (an empty cache) runs the Trainer from the bucket's copy.
    for entry in cache_dir().iterdir():
        _remove(entry)
    pipeline = _pipeline(tmp_path, bucket_root)
    fresh = LocalRunner(display="none").run(pipeline, enable_cache=False)
    assert fresh.ok, fresh.message
    assert fresh["Train"].outputs["model"][0].properties["sum"] == 3


def test_remote_root_does_not_take_cached_outputs_from_another_root(tmp_path, bucket_root):
    runner = LocalRunner(display="none")
    on_disk = runner.run(_pipeline(tmp_path, str(tmp_path / "root")))
    in_bucket = runner.run(_pipeline(tmp_path, bucket_root))
    assert on_disk.ok and in_bucket.ok
    assert {n.state for n in in_bucket.nodes.values()} == {"COMPLETE"}
    assert in_bucket["Train"].outputs["model"][0].uri.startswith(bucket_root)
    again = runner.run(_pipeline(tmp_path, bucket_root))
    assert {n.state for n in again.nodes.values()} == {"CACHED"}


def test_remote_root_failed_execution_uploads_nothing(tmp_path, bucket_root):
    import s3fs

    result = LocalRunner(display="none").run(_pipeline(tmp_path, bucket_root, fail=True))
    assert not result.ok
    assert "the trainer gave up" in result["Train"].error
    fs = s3fs.S3FileSystem()
    assert fs.find(f"{bucket_root}/Gen/examples")  # the upstream node's output is there
    assert not fs.find(f"{bucket_root}/Train/model")
    assert not [p for p in cache_dir().iterdir() if p.name.startswith(".staging")]
    logs = fs.find(f"{bucket_root}/.system/logs")
    assert any("Train" in p for p in logs)


def test_remote_root_unreachable_store_fails_naming_the_uri(tmp_path, s3_endpoint):
    result = LocalRunner(display="none").run(_pipeline(tmp_path, "s3://no-such-bucket-here/root"))
    assert not result.ok
    assert "s3://no-such-bucket-here/root/Gen/examples/" in result["Gen"].error


def test_remote_root_garbage_collection_deletes_old_runs_from_the_bucket(tmp_path, bucket_root):
    import s3fs

    from conveyor.orchestration.gc import collect_garbage

    runner = LocalRunner(display="none")
    old = runner.run(_pipeline(tmp_path, bucket_root, n=3))
    new = runner.run(_pipeline(tmp_path, bucket_root, n=4))
    assert old.ok and new.ok
    old_uri = old["Gen"].outputs["examples"][0].uri
    new_uri = new["Gen"].outputs["examples"][0].uri
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    try:
        report = collect_garbage(store, keep_last=1)
    finally:
        store.close()
    assert old_uri in report.uris.values() and new_uri not in report.uris.values()
    assert report.bytes_freed > 0 and not report.errors and not report.skipped
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    assert not fs.exists(f"{old_uri}/sub/data.json")
    assert json.loads(fs.cat_file(f"{new_uri}/sub/data.json")) == [0, 1, 2, 3]


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
