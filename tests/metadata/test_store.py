"""The metadata store, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time

import pytest
import sqlalchemy as sa

from conveyor.metadata import MetadataStore, lineage
from conveyor.metadata import schema as metadata_schema
from conveyor.types import Examples, MetadataError, Model


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def store(store_url):
    opened = MetadataStore(store_url)
    yield opened
    opened.close()


def start(store, node_id, run_id="run-1", inputs=None, outputs=None, key=None):
    return store.start_execution(
        pipeline="p",
        run_id=run_id,
        node_id=node_id,
        type_name=node_id,
        properties={"params": {}},
        cache_key=key,
        inputs=inputs or {},
        outputs=outputs or {"out": Examples},
        output_uri=lambda out_key, eid: f"/root/{node_id}/{out_key}/{eid}",
        log_uri=lambda eid: f"/root/.system/logs/{node_id}.{eid}.log",
    )


def test_store_publish_makes_outputs_live_with_execution_complete(store):
    store.create_run("p", "run-1", {})
    eid, outs = start(store, "Gen", key="k1")
    assert store.get_artifact(outs["out"].id).state == "PENDING"
    assert store.find_cached("k1") is None  # nothing visible before publish
    outs["out"].properties["rows"] = 3
    store.complete_execution(eid, outs.values(), {"returned": {"ok": 1}})
    artifact = store.get_artifact(outs["out"].id)
    assert (artifact.state, artifact.properties, artifact.uri) == (
        "LIVE",
        {"rows": 3},
        f"/root/Gen/out/{eid}",
    )
    record = store.get_execution(eid)
    assert record.state == "COMPLETE" and record.outputs == {"out": [artifact.id]}
    assert record.run_ids == ["run-1"] and record.log_uri.endswith(f"Gen.{eid}.log")
    assert store.find_cached("k1")[0] == eid


def test_store_failed_execution_never_publishes(store):
    store.create_run("p", "run-1", {})
    eid, outs = start(store, "Gen", key="k")
    store.fail_execution(eid, "Traceback: boom")
    assert store.get_artifact(outs["out"].id).state == "ABANDONED"
    record = store.get_execution(eid)
    assert record.state == "FAILED" and "boom" in record.error
    assert store.find_cached("k") is None


def test_store_cache_skips_executions_whose_outputs_were_deleted(store):
    store.create_run("p", "run-1", {})
    first, outs1 = start(store, "Gen", key="k")
    store.complete_execution(first, outs1.values())
    second, outs2 = start(store, "Gen", key="k")
    store.complete_execution(second, outs2.values())
    assert store.find_cached("k")[0] == second
    store.set_artifact_state([outs2["out"].id], "DELETED")
    assert store.find_cached("k")[0] == first


def test_store_runs_and_executions_by_run(store):
    store.create_run("p", "run-1", {"trigger": "test"})
    store.create_run("q", "run-2", {})
    gen, outs = start(store, "Gen")
    store.complete_execution(gen, outs.values())
    _, model = start(store, "Train", inputs={"examples": [outs["out"]]}, outputs={"m": Model})
    store.update_run("run-1", status="COMPLETE", ended_at=time.time())
    runs = store.runs("p")
    assert [r.run_id for r in runs] == ["run-1"] and runs[0].status == "COMPLETE"
    assert {r.run_id for r in store.runs()} == {"run-1", "run-2"}
    assert [r.run_id for r in store.runs(status="RUNNING")] == ["run-2"]
    assert store.pipelines() == ["p", "q"]
    executions = store.executions(run_id="run-1")
    assert [e.node_id for e in executions] == ["Gen", "Train"]
    assert executions[1].inputs == {"examples": [outs["out"].id]}
    assert store.artifacts(run_id="run-1", type_name="Model")[0].id == model["m"].id


def test_store_readers_of_artifacts_by_state(store):
    store.create_run("p", "run-1", {})
    gen, outs = start(store, "Gen")
    store.complete_execution(gen, outs.values())
    examples = {"examples": [outs["out"]]}
    done, model = start(store, "Train", inputs=examples, outputs={"m": Model})
    store.complete_execution(done, model.values())
    failed, _ = start(store, "Train", inputs=examples, outputs={"m": Model})
    store.fail_execution(failed, "boom")
    _, other = start(store, "Other")
    readers = store.readers([outs["out"].id])
    assert [r.execution_id for r in readers] == [done, failed]
    [complete] = store.readers([outs["out"].id, other["out"].id], states=["COMPLETE"])
    assert complete.execution_id == done and complete.outputs == {"m": [model["m"].id]}
    assert store.readers([model["m"].id]) == []


def test_store_records_cached_execution_pointing_at_earlier_outputs(store):
    store.create_run("p", "run-1", {})
    eid, outs = start(store, "Gen", key="k")
    store.complete_execution(eid, outs.values())
    store.create_run("p", "run-2", {})
    cached = store.record_execution(
        pipeline="p", run_id="run-2", node_id="Gen", type_name="Gen", state="CACHED",
        properties={"cached_from": eid}, cache_key="k", inputs={}, outputs={"out": [outs["out"]]},
    )  # fmt: skip
    assert store.executions(run_id="run-2")[0].execution_id == cached
    assert [a.id for a in store.artifacts(run_id="run-2")] == [outs["out"].id]
    assert store.latest_outputs("p", "Gen")["out"][0].id == outs["out"].id


def test_store_recovers_executions_of_dead_runners(store):
    store.create_run("p", "run-1", {})
    eid, outs = start(store, "Gen")
    other, _ = start(store, "Other")
    fresh, _ = start(store, "Fresh")

    dead = multiprocessing.get_context("fork").Process(target=lambda: None)
    dead.start()
    dead.join()
    engine = sa.create_engine(store.url)
    with engine.begin() as conn:
        t = metadata_schema.executions
        conn.execute(t.update().where(t.c.id == eid).values(pid=dead.pid))
        conn.execute(
            t.update()
            .where(t.c.id == other)
            .values(host="elsewhere", heartbeat_at=time.time() - 600)
        )
        conn.execute(t.update().where(t.c.id == fresh).values(host="elsewhere"))
    engine.dispose()

    assert sorted(store.recover_abandoned(lease_seconds=60)) == sorted([eid, other])
    assert store.get_execution(eid).state == "ABANDONED"
    assert store.get_execution(fresh).state == "RUNNING"
    assert store.get_artifact(outs["out"].id).state == "ABANDONED"
    assert store.get_run("run-1").status == "RUNNING"  # this process is alive


def test_store_lineage_walks_up_and_down(store):
    store.create_run("p", "run-1", {})
    gen, data = start(store, "Gen")
    store.complete_execution(gen, data.values())
    train, model = start(store, "Train", inputs={"examples": [data["out"]]}, outputs={"m": Model})
    store.complete_execution(train, model.values())
    push, pushed = start(store, "Push", inputs={"model": [model["m"]]})
    store.complete_execution(push, pushed.values())
    graph = lineage(store, model["m"].id)
    assert graph.upstream == {data["out"].id}
    assert graph.downstream == {pushed["out"].id}
    assert graph.producer(model["m"].id).node_id == "Train"
    assert set(graph.executions) == {gen, train, push}
    with pytest.raises(MetadataError, match="No artifact 999"):
        lineage(store, 999)


def test_store_refuses_newer_schema(store_url):
    MetadataStore(store_url).close()
    engine = sa.create_engine(MetadataStore(store_url).url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE conveyor_schema SET value = '99' WHERE key = 'schema_version'")
        )
    engine.dispose()
    with pytest.raises(MetadataError, match="schema version 99, newer than this Conveyor"):
        MetadataStore(store_url)


def test_store_upgrades_older_schema(store_url, monkeypatch):
    MetadataStore(store_url).close()
    current = metadata_schema.SCHEMA_VERSION

    def add_note_table(conn):
        conn.execute(sa.text("CREATE TABLE upgrade_note (id INTEGER PRIMARY KEY)"))

    monkeypatch.setattr(metadata_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(metadata_schema.MIGRATIONS, current, add_note_table)
    upgraded = MetadataStore(store_url)
    engine = sa.create_engine(upgraded.url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT value FROM conveyor_schema")).scalar()
        assert version == str(current + 1)
        assert sa.inspect(conn).has_table("upgrade_note")
    engine.dispose()


def test_store_unreadable_file_gives_clear_error(tmp_path):
    path = tmp_path / "metadata.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(MetadataError, match="Cannot open the metadata store .*metadata-url"):
        MetadataStore(f"sqlite:///{path}")


def test_store_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE artifact (x INTEGER)"))
    engine.dispose()
    with pytest.raises(MetadataError, match="not a Conveyor metadata store"):
        MetadataStore(f"sqlite:///{path}")


def test_store_bad_url_is_explained():
    with pytest.raises(MetadataError, match="Cannot use metadata URL"):
        MetadataStore("nosuchdb://x/y")


def _hammer(url, worker, count):
    store = MetadataStore(url)
    store.create_run("p", f"run-{worker}", {})
    for i in range(count):
        eid, outs = start(store, f"N{worker}-{i}", run_id=f"run-{worker}", key=f"{worker}-{i}")
        store.complete_execution(eid, outs.values())


def test_store_concurrent_writers_do_not_fail(store_url):
    MetadataStore(store_url).close()
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_hammer, args=(store_url, w, 40)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    store = MetadataStore(store_url)
    done = store.executions(states=["COMPLETE"])
    assert len(done) == 160
    assert len(store.artifacts(states=["LIVE"])) == 160
    assert {e.host for e in done} == {socket.gethostname()}
