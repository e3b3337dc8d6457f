"""The component decorator: the signature is the spec, and mistakes fail at definition time."""

from __future__ import annotations

import pytest

from conveyor import Input, Output, Param, component
from conveyor.types import Artifact, Examples, Model, PipelineDefinitionError, Schema


@component
def Trainer(
    examples: Input[Examples],
    model: Output[Model],
    schema: Input[Schema] | None = None,
    epochs: Param[int] = 10,
    rate: Param[float] = 0.1,
):
    model.properties["epochs"] = epochs


@component
def Gen(examples: Output[Examples], n: Param[int] = 3):
    examples.properties["n"] = n


@component
def Merge(parts: Input[list[Examples]], merged: Output[Examples]):
    merged.properties["parts"] = len(parts)


def test_component_spec_reads_inputs_outputs_params():
    spec = Trainer.spec
    assert list(spec.inputs) == ["examples", "schema"]
    assert spec.inputs["schema"].optional and not spec.inputs["examples"].optional
    assert list(spec.outputs) == ["model"] and spec.outputs["model"].artifact_type is Model
    assert spec.params["epochs"].default == 10


def test_component_call_makes_node_with_channels():
    gen = Gen()
    node = Trainer(examples=gen.outputs["examples"], epochs=3)
    assert node.id == "Trainer" and node.params["epochs"] == 3
    assert node.outputs["model"].artifact_type is Model
    assert node.upstream_nodes == [gen]
    assert node.with_id("t2").id == "t2"


def test_component_list_input_accepts_several_channels():
    a, b = Gen().with_id("a"), Gen().with_id("b")
    node = Merge(parts=[a.outputs["examples"], b.outputs["examples"]])
    assert {n.id for n in node.upstream_nodes} == {"a", "b"}


def test_component_missing_type_hint_names_parameter():
    with pytest.raises(PipelineDefinitionError, match="'x' of component Bad .* no type hint"):

        @component
        def Bad(x, out: Output[Model]):
            pass


def test_component_non_artifact_input_type_is_rejected():
    with pytest.raises(PipelineDefinitionError, match="needs an Artifact type"):

        @component
        def Bad(x: Input[int]):
            pass


def test_component_wrong_artifact_type_names_both_nodes_and_fix():
    gen = Gen().with_id("MyGen")
    wrong = Trainer(examples=gen.outputs["examples"]).outputs["model"]
    with pytest.raises(PipelineDefinitionError) as err:
        Trainer(examples=wrong).with_id("second")
    message = str(err.value)
    assert "Trainer's input 'examples' expects Examples" in message
    assert "Trainer.outputs['model'] gives Model" in message
    assert "Wire an output of type Examples" in message


def test_component_missing_required_input_is_rejected():
    with pytest.raises(PipelineDefinitionError, match="'examples' .* is required"):
        Trainer()


def test_component_unknown_argument_lists_signature():
    with pytest.raises(PipelineDefinitionError, match="unknown argument.*epoch.*signature"):
        Trainer(examples=Gen().outputs["examples"], epoch=3)


def test_component_output_passed_as_argument_gets_hint():
    with pytest.raises(PipelineDefinitionError, match="outputs are created by the component"):
        Trainer(examples=Gen().outputs["examples"], model=Gen().outputs["examples"])


def test_component_param_type_is_checked():
    with pytest.raises(PipelineDefinitionError, match="'epochs' parameter of Trainer must be int"):
        Trainer(examples=Gen().outputs["examples"], epochs="ten")
    Trainer(examples=Gen().outputs["examples"], rate=1)  # an int is a fine float


def test_component_unknown_output_key_lists_outputs():
    with pytest.raises(PipelineDefinitionError, match="Gen has no output 'exmples'.*examples"):
        Gen().outputs["exmples"]


def test_component_input_must_be_channel():
    with pytest.raises(PipelineDefinitionError, match="must be wired to a channel"):
        Trainer(examples="/data/examples")


def test_component_user_artifact_type():
    class Report(Artifact):
        """A user type."""

    @component
    def Make(report: Output[Report]):
        pass

    assert Make().outputs["report"].artifact_type.type_name_of() == "Report"


def test_component_bad_node_id_is_rejected():
    with pytest.raises(PipelineDefinitionError, match="not a valid name"):
        Gen().with_id("has space/slash")
