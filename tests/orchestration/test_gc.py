"""Garbage collection: old runs' files go, recent runs' and users' files stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Importer, Input, LocalRunner, Output, Param, Pipeline, component
from conveyor.metadata import MetadataStore, lineage
from conveyor.orchestration.gc import collect_garbage, pipeline_root
from conveyor.types import ConveyorError, Examples, Model


@component
def Ingest(raw: Input[Examples], examples: Output[Examples], rows: Param[int] = 3):
    Path(examples.uri, "data.csv").write_text("\n".join(str(i) for i in range(rows)))


@component
def Train(examples: Input[Examples], model: Output[Model]):
    Path(examples.uri, "data.csv").read_text()
    Path(model.uri, "model.bin").write_bytes(b"w" * 100)


def _pipeline(tmp_path: Path, name: str = "demo") -> Pipeline:
    raw = tmp_path / "user-data" / "raw.csv"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text("a,b\n1,2\n")
    # reimport: every run registers the user's file anew, so old runs own an imported
    # artifact that no recent run reaches.
    importer = Importer(str(raw), Examples, reimport=True)
    ingest = Ingest(raw=importer.outputs["result"])
    train = Train(examples=ingest.outputs["examples"])
    return Pipeline(
        name,
        [importer, ingest, train],
        root=tmp_path / "root" / name,
        metadata_url=f"sqlite:///{tmp_path / 'metadata.db'}",
    )


def _run(pipeline: Pipeline, times: int = 1) -> list[str]:
    runner = LocalRunner(max_workers=2, display="none")
    return [runner.run(pipeline).raise_for_status().run_id for _ in range(times)]


def _artifact_ids(store: MetadataStore, run_id: str) -> set[int]:
    return {
        i
        for e in store.executions(run_id=run_id)
        for ids in (*e.inputs.values(), *e.outputs.values())
        for i in ids
    }


def test_collect_garbage_deletes_old_runs_and_keeps_the_last(tmp_path):
    pipeline = _pipeline(tmp_path)
    old, middle, last = _run(pipeline, times=3)
    store = MetadataStore(pipeline.metadata_url)
    old_outputs = [a for a in store.artifacts(run_id=old) if a.name != "Importer:result"]
    assert all(Path(a.uri).is_dir() for a in old_outputs)

    report = collect_garbage(store, keep_last=2)

    assert sorted(report.deleted) == sorted(a.id for a in old_outputs)
    assert report.bytes_freed == 100 + len("0\n1\n2")
    assert not any(Path(a.uri).exists() for a in old_outputs)
    assert {a.state for a in store.artifacts(artifact_ids=report.deleted)} == {"DELETED"}
    for run_id in (middle, last):
        for artifact in store.artifacts(artifact_ids=sorted(_artifact_ids(store, run_id))):
            assert artifact.state == "LIVE"
            assert Path(artifact.uri).exists()


def test_collect_garbage_leaves_imported_files_outside_the_root(tmp_path):
    pipeline = _pipeline(tmp_path)
    old, _ = _run(pipeline, times=2)
    store = MetadataStore(pipeline.metadata_url)
    (imported,) = store.artifacts(run_id=old, type_name="Examples", node_id="Importer")

    report = collect_garbage(store, keep_last=1)

    assert imported.id not in report.deleted
    assert imported.id in report.skipped
    assert Path(imported.uri).read_text() == "a,b\n1,2\n"
    assert store.get_artifact(imported.id).state == "LIVE"


def test_collect_garbage_keeps_lineage_readable(tmp_path):
    pipeline = _pipeline(tmp_path)
    old, _ = _run(pipeline, times=2)
    store = MetadataStore(pipeline.metadata_url)
    (model,) = store.artifacts(run_id=old, type_name="Model")

    collect_garbage(store, keep_last=1)

    graph = lineage(store, model.id)
    assert graph.artifacts[model.id].state == "DELETED"
    assert [a.type_name for a in map(graph.artifacts.get, sorted(graph.upstream))] == [
        "Examples",
        "Examples",
    ]
    assert graph.producer(model.id).node_id == "Train"


def test_collect_garbage_dry_run_deletes_nothing(tmp_path):
    pipeline = _pipeline(tmp_path)
    _run(pipeline, times=2)
    store = MetadataStore(pipeline.metadata_url)
    before = {a.id: a.state for a in store.artifacts()}

    report = collect_garbage(store, keep_last=1, dry_run=True)

    assert report.dry_run and report.deleted and report.bytes_freed > 0
    assert {a.id: a.state for a in store.artifacts()} == before
    assert all(Path(report.uris[i]).exists() for i in report.deleted)
    assert collect_garbage(store, keep_last=1).deleted == report.deleted


def test_collect_garbage_only_touches_the_named_pipeline(tmp_path):
    first, second = _pipeline(tmp_path, "first"), _pipeline(tmp_path, "second")
    _run(first, times=2)
    _run(second, times=2)
    store = MetadataStore(first.metadata_url)

    report = collect_garbage(store, keep_last=1, pipeline="second")

    assert report.deleted
    assert all(report.uris[i].startswith(second.root) for i in report.deleted)
    assert {a.state for a in store.artifacts(pipeline="first", type_name="Model")} == {"LIVE"}


def test_collect_garbage_spares_pending_outputs_of_running_executions(tmp_path):
    pipeline = _pipeline(tmp_path)
    store = MetadataStore(pipeline.metadata_url)
    store.create_run("demo", "stuck", {})
    execution_id, outputs = store.start_execution(
        pipeline="demo", run_id="stuck", node_id="Train", type_name="Train", properties={},
        cache_key=None, inputs={}, outputs={"model": Model},
        output_uri=lambda key, eid: str(Path(pipeline.root, "Train", key, str(eid))),
        log_uri=lambda eid: str(tmp_path / f"{eid}.log"),
    )  # fmt: skip
    Path(outputs["model"].uri).mkdir(parents=True)
    store.update_run("stuck", status="FAILED")  # only the execution is still RUNNING
    _run(pipeline, times=2)

    report = collect_garbage(store, keep_last=1)

    assert report.deleted
    assert outputs["model"].id not in report.deleted
    assert Path(outputs["model"].uri).is_dir()
    assert store.get_execution(execution_id).state == "RUNNING"


def test_collect_garbage_rejects_bad_arguments(tmp_path):
    pipeline = _pipeline(tmp_path)
    _run(pipeline)
    store = MetadataStore(pipeline.metadata_url)
    with pytest.raises(ConveyorError, match=r"'keep_last' parameter .* >= 1\. Got 0"):
        collect_garbage(store, keep_last=0)
    with pytest.raises(ConveyorError, match=r"No pipeline 'nope'.*demo"):
        collect_garbage(store, keep_last=1, pipeline="nope")


@pytest.mark.parametrize(
    ("uri", "root"),
    [
        ("/data/root/Trainer/model/42", "/data/root"),
        ("gs://bucket/root/Trainer/model/42", "gs://bucket/root"),
        ("s3://bucket/Trainer/model/42", "s3://bucket"),
    ],
)
def test_pipeline_root_reads_the_launcher_layout(uri, root):
    assert pipeline_root(uri, node_id="Trainer", output_key="model", execution_id=42) == root


@pytest.mark.parametrize(
    "uri",
    [
        "/data/user/file.csv",  # an imported file
        "/data/root/Trainer/model/41",  # another execution's folder
        "/data/root/Other/model/42",
        "gs://bucket/root/Trainer/model/41",
        "s3://bucket/root/../Trainer/model/42",
        "s3://Trainer/model/42",
        "relative/Trainer/model/42",
        "/Trainer/model/42",  # the root would be /
        "/data/../Trainer/model/42",
    ],
)
def test_pipeline_root_refuses_other_layouts(uri):
    assert pipeline_root(uri, node_id="Trainer", output_key="model", execution_id=42) is None
