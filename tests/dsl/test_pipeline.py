"""Pipeline definition: wiring mistakes raise at Pipeline(...), naming nodes and the fix."""

from __future__ import annotations

import pytest

from conveyor import Importer, Input, Output, Pipeline, Resolver, component
from conveyor.dsl import LatestArtifact, LatestBlessedModel
from conveyor.types import Examples, Model, ModelBlessing, PipelineDefinitionError, Schema


@component
def Gen(examples: Output[Examples]):
    pass


@component
def Train(examples: Input[Examples], model: Output[Model]):
    pass


def test_pipeline_defaults_come_from_conveyor_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    gen = Gen()
    pipeline = Pipeline("demo", [gen, Train(examples=gen.outputs["examples"])])
    assert pipeline.root == str(tmp_path / "pipelines" / "demo")
    assert pipeline.metadata_url == f"sqlite:///{tmp_path / 'metadata.db'}"
    assert [n.id for n in pipeline.order] == ["Gen", "Train"]


def test_pipeline_duplicate_id_names_both_and_fix():
    with pytest.raises(PipelineDefinitionError, match=r"two nodes with id 'Gen'.*with_id"):
        Pipeline("p", [Gen(), Gen()])


def test_pipeline_missing_upstream_node_is_named():
    gen = Gen().with_id("source")
    train = Train(examples=gen.outputs["examples"])
    with pytest.raises(PipelineDefinitionError, match="Train takes input from source.*Add source"):
        Pipeline("p", [train])


def test_pipeline_cycle_is_reported():
    a = Gen().with_id("a")
    b = Train(examples=a.outputs["examples"]).with_id("b")
    a.add_upstream(b)
    with pytest.raises(PipelineDefinitionError, match="cycle: (a -> b -> a|b -> a -> b)"):
        Pipeline("p", [a, b])


def test_pipeline_rejects_components_that_are_not_nodes():
    with pytest.raises(PipelineDefinitionError, match="call the component to make a node"):
        Pipeline("p", [Gen])


def test_pipeline_upstream_and_downstream_closure():
    gen = Gen()
    a = Train(examples=gen.outputs["examples"]).with_id("a")
    b = Train(examples=gen.outputs["examples"]).with_id("b")
    pipeline = Pipeline("p", [a, b, gen])
    assert pipeline.order[0] is gen
    assert pipeline.downstream_of("Gen") == {"a", "b"}
    assert pipeline.upstream_of("b") == {"Gen"}
    with pytest.raises(PipelineDefinitionError, match="no node 'c'"):
        pipeline.node("c")


def test_pipeline_name_must_be_path_safe():
    with pytest.raises(PipelineDefinitionError, match="Pipeline name '../x'"):
        Pipeline("../x", [])


def test_resolver_checks_strategy_channels():
    with pytest.raises(PipelineDefinitionError, match="LatestBlessedModel needs model_blessing"):
        Resolver(LatestBlessedModel, model=Model)
    resolver = Resolver(LatestBlessedModel, model=Model, model_blessing=ModelBlessing)
    assert resolver.outputs["model"].artifact_type is Model
    assert resolver.upstream_nodes == []


def test_resolver_bound_channel_creates_dependency():
    gen = Gen()
    resolver = Resolver(LatestArtifact, examples=gen.outputs["examples"]).with_id("latest")
    assert resolver.upstream_nodes == [gen]
    with pytest.raises(PipelineDefinitionError, match="'n' parameter of LatestArtifact"):
        LatestArtifact(n=0)


def test_importer_validates_type():
    with pytest.raises(PipelineDefinitionError, match="artifact_type must be an Artifact type"):
        Importer("/tmp/schema.pbtxt", str)
    assert Importer("/tmp/x", Schema).outputs["result"].artifact_type is Schema


def test_node_options_are_validated():
    with pytest.raises(PipelineDefinitionError, match="'retries' option of Gen"):
        Gen().with_options(retries=-1)
    node = Gen().with_options(retries=2, retry_backoff=0.5, enable_cache=False)
    assert (node.retries, node.retry_backoff, node.enable_cache) == (2, 0.5, False)
