"""The local runner: parallelism, caching, publishing, failure and partial runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conveyor import Importer, Input, LocalRunner, Output, Param, Pipeline, Resolver, component
from conveyor.dsl import LatestArtifact, LatestBlessedModel
from conveyor.metadata import MetadataStore
from conveyor.types import Artifact, ConveyorError, Examples, Model, ModelBlessing, Schema


@component
def Gen(examples: Output[Examples], n: Param[int] = 3):
    Path(examples.uri, "data.json").write_text(json.dumps(list(range(n))))
    examples.properties["rows"] = n
    print("generated rows", n)
    logging.getLogger("user.gen").info("logged from Gen")


@component
def Train(examples: Input[Examples], model: Output[Model], scale: Param[float] = 1.0):
    data = json.loads(Path(examples.uri, "data.json").read_text())
    model.properties["weight"] = sum(data) * scale


@component
def Slow(examples: Input[Examples], model: Output[Model], seconds: Param[float] = 0.5):
    time.sleep(seconds)


@component
def Fails(examples: Input[Examples], model: Output[Model], how: Param[str] = "raise"):
    Path(model.uri, "partial.bin").write_text("half")
    if how == "raise":
        raise ValueError("the data is bad")
    if how == "exit":
        sys.exit(3)
    if how == "os_exit":
        os._exit(4)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "unjsonable":
        model.properties["weights"] = object()


@component
def FlagGate(examples: Input[Examples], model: Output[Model], flag: Param[str] = ""):
    if not Path(flag).exists():
        raise RuntimeError(f"flag file {flag} missing")


@component
def Merge(
    parts: Input[list[Examples]], merged: Output[Examples], schema: Input[Schema] | None = None
):
    merged.properties["parts"] = len(parts)
    merged.properties["schema"] = schema.uri if schema else None


@component
def Bless(model: Input[Model], blessing: Output[ModelBlessing], threshold: Param[float] = 0.0):
    blessing.properties["blessed"] = model.properties["weight"] > threshold
    blessing.properties["model_id"] = model.id


@component
def UsesBaseline(model: Input[Model], baseline: Input[Model] | None, report: Output[Artifact]):
    report.properties["baseline"] = baseline.id if baseline else None


def make(tmp_path, name, nodes, **kwargs):
    return Pipeline(
        name,
        nodes,
        root=tmp_path / "root",
        metadata_url=f"sqlite:///{tmp_path / 'md.db'}",
        **kwargs,
    )


def run(pipeline, **kwargs):
    return LocalRunner(display="none").run(pipeline, **kwargs)


def states(result):
    return {node_id: r.state for node_id, r in result.nodes.items()}


def test_runner_runs_and_publishes(tmp_path):
    gen = Gen(n=4)
    train = Train(examples=gen.outputs["examples"])
    result = run(make(tmp_path, "p", [gen, train]))
    assert result.status == "COMPLETE" and states(result) == {
        "Gen": "COMPLETE",
        "Train": "COMPLETE",
    }
    model = result["Train"].outputs["model"][0]
    assert model.properties == {"weight": 6.0} and model.state == "LIVE"
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    assert store.get_artifact(model.id).properties == {"weight": 6.0}
    assert store.get_run(result.run_id).status == "COMPLETE"
    examples = result["Gen"].outputs["examples"][0]
    assert examples.uri == str(
        tmp_path / "root" / "Gen" / "examples" / str(result["Gen"].execution_id)
    )
    log = Path(store.get_execution(result["Gen"].execution_id).log_uri).read_text()
    assert "generated rows 4" in log and "logged from Gen" in log


def test_runner_runs_independent_nodes_in_parallel(tmp_path):
    gen = Gen()
    slow = [Slow(examples=gen.outputs["examples"], seconds=0.6).with_id(f"s{i}") for i in range(2)]
    result = LocalRunner(max_workers=2, display="none").run(make(tmp_path, "p", [gen, *slow]))
    assert result.ok
    # The two executions overlap in time (each sleeps 0.6 s, so sequential runs could not).
    assert (
        result["s0"].started_at < result["s1"].ended_at
        and result["s1"].started_at < result["s0"].ended_at
    )


def test_runner_max_workers_one_runs_sequentially(tmp_path):
    gen = Gen()
    slow = [Slow(examples=gen.outputs["examples"], seconds=0.2).with_id(f"s{i}") for i in range(2)]
    result = LocalRunner(max_workers=1, display="none").run(make(tmp_path, "p", [gen, *slow]))
    first, second = sorted((result["s0"], result["s1"]), key=lambda r: r.started_at)
    assert first.ended_at <= second.started_at + 0.05


def test_runner_cache_reuses_and_invalidates(tmp_path):
    gen = Gen()
    train = Train(examples=gen.outputs["examples"])
    first = run(make(tmp_path, "p", [gen, train]))
    second = run(make(tmp_path, "p", [gen, train]))
    assert states(second) == {"Gen": "CACHED", "Train": "CACHED"}
    assert second["Train"].outputs["model"][0].id == first["Train"].outputs["model"][0].id

    gen2 = Gen()
    train2 = Train(examples=gen2.outputs["examples"], scale=2.0)
    third = run(make(tmp_path, "p", [gen2, train2]))
    assert states(third) == {"Gen": "CACHED", "Train": "COMPLETE"}

    gen3 = Gen(n=5)
    train3 = Train(examples=gen3.outputs["examples"], scale=2.0)
    assert states(run(make(tmp_path, "p", [gen3, train3]))) == {
        "Gen": "COMPLETE",
        "Train": "COMPLETE",
    }


def test_runner_no_cache_reruns_and_supersedes(tmp_path):
    gen = Gen()
    pipeline = make(tmp_path, "p", [gen])
    first = run(pipeline)
    forced = run(pipeline, enable_cache=False)
    assert states(forced) == {"Gen": "COMPLETE"}
    newer = forced["Gen"].outputs["examples"][0].id
    assert newer != first["Gen"].outputs["examples"][0].id
    assert run(pipeline)["Gen"].outputs["examples"][0].id == newer


def test_runner_node_option_disables_cache(tmp_path):
    gen = Gen().with_options(enable_cache=False)
    pipeline = make(tmp_path, "p", [gen])
    run(pipeline)
    assert states(run(pipeline)) == {"Gen": "COMPLETE"}


def test_runner_cache_follows_module_file_content(tmp_path):
    @component
    def UsesModule(examples: Output[Examples], module_file: Param[str] = ""):
        examples.properties["source"] = Path(module_file).read_text()

    module = tmp_path / "user_module.py"
    module.write_text("A = 1\n")
    pipeline = make(tmp_path, "p", [UsesModule(module_file=str(module))])
    run(pipeline)
    assert states(run(pipeline)) == {"UsesModule": "CACHED"}
    module.write_text("A = 2\n")
    result = run(pipeline)
    assert states(result) == {"UsesModule": "COMPLETE"}
    assert result["UsesModule"].outputs["examples"][0].properties["source"] == "A = 2\n"


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("raise", "ValueError: the data is bad"),
        ("exit", "called sys.exit(3)"),
        ("os_exit", "exited with status 4"),
        ("kill", "killed by SIGKILL"),
        ("unjsonable", "property 'weights' is not JSON-serialisable"),
    ],
)
def test_runner_failure_is_recorded_and_nothing_published(tmp_path, capsys, how, reason):
    gen = Gen()
    bad = Fails(examples=gen.outputs["examples"], how=how)
    after = Train(examples=gen.outputs["examples"]).add_upstream(bad)
    independent = Train(examples=gen.outputs["examples"]).with_id("independent")
    result = run(make(tmp_path, "p", [gen, bad, after, independent]))
    assert result.status == "FAILED"
    assert states(result) == {"Gen": "COMPLETE", "Fails": "FAILED", "Train": "SKIPPED",
                              "independent": "COMPLETE"}  # fmt: skip
    assert reason in result["Fails"].error
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    record = store.get_execution(result["Fails"].execution_id)
    assert record.state == "FAILED" and reason.split(":")[0] in record.error
    assert [a.state for a in store.artifacts(node_id="Fails")] == ["ABANDONED"]
    err = capsys.readouterr().err
    assert "Fails failed" in err and result["Fails"].log_path in err
    assert f"--resume {result.run_id}" in err and result.resume_command in err
    if how == "raise":
        assert "ValueError: the data is bad" in Path(result["Fails"].log_path).read_text()
    assert store.get_run(result.run_id).status == "FAILED"


def test_runner_failed_node_is_not_cached(tmp_path):
    gen = Gen()
    pipeline = make(tmp_path, "p", [gen, Fails(examples=gen.outputs["examples"])])
    run(pipeline)
    again = run(pipeline)
    assert states(again) == {"Gen": "CACHED", "Fails": "FAILED"}


def test_runner_retries_with_backoff(tmp_path):
    counter = tmp_path / "attempts"

    @component
    def Flaky(examples: Output[Examples], path: Param[str] = ""):
        count = int(Path(path).read_text()) if Path(path).exists() else 0
        Path(path).write_text(str(count + 1))
        if count == 0:
            raise RuntimeError("transient")

    node = Flaky(path=str(counter)).with_options(retries=2, retry_backoff=0.05)
    result = run(make(tmp_path, "p", [node]))
    assert result.ok and result["Flaky"].attempts == 2
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    assert [e.state for e in store.executions(node_id="Flaky")] == ["FAILED", "COMPLETE"]


def test_runner_resume_skips_completed_nodes(tmp_path):
    flag = tmp_path / "flag"
    gen = Gen()
    gate = FlagGate(examples=gen.outputs["examples"], flag=str(flag))
    pipeline = make(tmp_path, "p", [gen, gate], enable_cache=False)
    failed = run(pipeline)
    assert states(failed) == {"Gen": "COMPLETE", "FlagGate": "FAILED"}
    flag.write_text("ok")
    resumed = run(pipeline, resume=failed.run_id)
    assert resumed.run_id == failed.run_id and resumed.ok
    assert resumed["Gen"].resumed and resumed["Gen"].execution_id == failed["Gen"].execution_id
    assert resumed["FlagGate"].state == "COMPLETE"
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    assert store.get_run(failed.run_id).status == "COMPLETE"
    assert len(store.executions(node_id="Gen")) == 1
    with pytest.raises(ConveyorError, match="No run 'nope'"):
        run(pipeline, resume="nope")


def test_runner_partial_runs(tmp_path):
    gen = Gen()
    train = Train(examples=gen.outputs["examples"])
    bless = Bless(model=train.outputs["model"])
    pipeline = make(tmp_path, "p", [gen, train, bless])
    with pytest.raises(ConveyorError, match="needs the outputs of Gen, which has never completed"):
        run(pipeline, only="Train")
    assert set(run(pipeline, to_node="Train").nodes) == {"Gen", "Train"}
    only = run(pipeline, only="Bless")
    assert set(only.nodes) == {"Bless"} and only.ok
    assert set(run(pipeline, from_node="Train", enable_cache=False).nodes) == {"Train", "Bless"}


def test_runner_list_and_optional_inputs(tmp_path):
    a, b = Gen().with_id("a"), Gen(n=2).with_id("b")
    merge = Merge(parts=[a.outputs["examples"], b.outputs["examples"]])
    result = run(make(tmp_path, "p", [a, b, merge]))
    assert result["Merge"].outputs["merged"][0].properties == {"parts": 2, "schema": None}


def test_runner_importer_registers_once(tmp_path):
    schema_file = tmp_path / "schema.pbtxt"
    schema_file.write_text("feature {}")
    importer = Importer(str(schema_file), Schema, properties={"curated": True})
    gen = Gen()
    merge = Merge(parts=[gen.outputs["examples"]], schema=importer.outputs["result"])
    first = run(make(tmp_path, "p", [importer, gen, merge]))
    imported = first["Importer"].outputs["result"][0]
    assert imported.uri == str(schema_file) and imported.properties == {"curated": True}
    assert first["Merge"].outputs["merged"][0].properties["schema"] == str(schema_file)
    second = run(make(tmp_path, "p", [importer, gen, merge]))
    assert second["Importer"].outputs["result"][0].id == imported.id
    assert states(second)["Merge"] == "CACHED"

    missing = Importer(str(tmp_path / "nope.pbtxt"), Schema).with_id("missing")
    result = run(make(tmp_path, "q", [missing]))
    assert result["missing"].state == "FAILED" and "does not exist" in result["missing"].error


def test_runner_resolver_latest_blessed_model(tmp_path):
    def pipeline(n, threshold):
        gen = Gen(n=n)
        train = Train(examples=gen.outputs["examples"])
        latest = Resolver(LatestBlessedModel, model=Model, model_blessing=ModelBlessing)
        use = UsesBaseline(model=train.outputs["model"], baseline=latest.outputs["model"])
        bless = Bless(model=train.outputs["model"], threshold=threshold)
        return make(tmp_path, "p", [gen, train, latest, use, bless])

    first = run(pipeline(3, 0.0))  # weight 3 > 0: blessed; no baseline yet
    assert first["UsesBaseline"].outputs["report"][0].properties == {"baseline": None}
    blessed_model = first["Train"].outputs["model"][0].id
    second = run(pipeline(4, 100.0))  # weight 6, not blessed
    assert second["Resolver"].outputs["model"][0].id == blessed_model
    third = run(pipeline(5, 0.0))
    assert third["Resolver"].outputs["model"][0].id == blessed_model  # 2nd was not blessed


def test_runner_resolver_latest_artifact_bound_channel(tmp_path):
    gen = Gen()
    latest = Resolver(LatestArtifact(n=2), examples=gen.outputs["examples"]).with_id("latest")
    run(make(tmp_path, "p", [gen, latest]), enable_cache=False)
    result = run(make(tmp_path, "p", [gen, latest]), enable_cache=False)
    ids = [a.id for a in result["latest"].outputs["examples"]]
    assert len(ids) == 2 and ids[0] == result["Gen"].outputs["examples"][0].id


def test_runner_rich_display_shows_node_states(tmp_path, capsys):
    gen = Gen()
    LocalRunner(display="rich").run(
        make(tmp_path, "p", [gen, Train(examples=gen.outputs["examples"])])
    )
    out = capsys.readouterr().out
    assert "Gen" in out and "Train" in out and "COMPLETE" in out


def test_runner_plain_display_prints_lines(tmp_path, capsys):
    result = LocalRunner(display="plain").run(make(tmp_path, "p", [Gen()]))
    out = capsys.readouterr().out
    assert f"run {result.run_id} of pipeline p" in out and "Gen: COMPLETE" in out
