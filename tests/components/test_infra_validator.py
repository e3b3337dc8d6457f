"""InfraValidator against the real model server: a penguin bundle that loads and answers is
blessed with its latency figures; one the server refuses is not blessed, and the run goes on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conveyor import Importer, LocalRunner, Pipeline
from conveyor.components import InfraValidator, RequestSpec, ServingSpec
from conveyor.components.infra_validator import validate_infra
from conveyor.types import (
    ConveyorError,
    Examples,
    InfraBlessing,
    Model,
    PipelineDefinitionError,
)

UNLABELLED = Path(__file__).resolve().parents[3] / "shared/data/penguin/penguins_unlabelled.csv"


def blessing_at(tmp_path: Path) -> InfraBlessing:
    folder = tmp_path / "blessing"
    folder.mkdir()
    return InfraBlessing(str(folder), id=2)


def corrupted_copy(bundle: Path, tmp_path: Path) -> Path:
    """The bundle with one byte of its model file flipped."""
    copy = tmp_path / "corrupted"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    name = next(n for n in manifest["files"] if n.startswith("model/"))
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    return copy


def test_infra_validator_blesses_a_bundle_the_server_loads_and_answers(
    tmp_path, sklearn_bundles, penguin_transformed
):
    blessing = blessing_at(tmp_path)
    validate_infra(
        Model(str(sklearn_bundles["a"]), id=1),
        blessing,
        Examples(penguin_transformed["raw"]),
        request_spec=RequestSpec(
            num_examples=6, batch_size=2, protocols=("tf_serving", "open_inference")
        ),
    )
    properties = blessing.properties
    assert properties["blessed"] is True, properties["reasons"]
    assert properties["reasons"] == []
    assert properties["model_id"] == 1
    assert properties["num_examples"] == 6
    assert properties["num_requests"] == 6  # 3 requests of 2 rows through each protocol
    assert 0 < properties["latency_p50_ms"] <= properties["latency_p99_ms"]
    assert properties["load_time_s"] > 0
    folder = Path(blessing.uri)
    assert (folder / "INFRA_BLESSED").exists()
    assert not (folder / "INFRA_NOT_BLESSED").exists()
    written = json.loads((folder / "infra_validation.json").read_text())
    assert written["latency_p99_ms"] == properties["latency_p99_ms"]
    assert written["request_spec"]["protocols"] == ["tf_serving", "open_inference"]


def test_infra_validator_without_examples_checks_loading_only(tmp_path, sklearn_bundles):
    blessing = blessing_at(tmp_path)
    validate_infra(Model(str(sklearn_bundles["b"]), id=1), blessing)
    assert blessing.properties["blessed"] is True
    assert blessing.properties["num_requests"] == 0
    assert blessing.properties["latency_p50_ms"] is None


def test_infra_validator_corrupted_bundle_is_not_blessed_and_the_run_succeeds(
    tmp_path, sklearn_bundles, penguin_transformed
):
    corrupted = corrupted_copy(sklearn_bundles["a"], tmp_path)
    model = Importer(str(corrupted), Model).with_id("model")
    examples = Importer(penguin_transformed["raw"], Examples).with_id("examples")
    validator = InfraValidator(
        model=model.outputs["result"],
        examples=examples.outputs["result"],
        serving_spec={"load_timeout_s": 60},
        request_spec={"num_examples": 3},
    )
    pipeline = Pipeline(
        "infra", [model, examples, validator], root=tmp_path / "root",
        metadata_url=f"sqlite:///{tmp_path}/md.db",
    )  # fmt: skip
    result = LocalRunner(display="none").run(pipeline)
    assert result.ok, result.message
    blessing = result["InfraValidator"].outputs["blessing"][0]
    assert blessing.properties["blessed"] is False
    [reason] = blessing.properties["reasons"]
    assert reason.startswith("The model server could not load")
    [flipped] = [n for n in json.loads((corrupted / "manifest.json").read_text())["files"]
                 if n.startswith("model/")]  # fmt: skip
    assert f"{flipped} in the model bundle at {corrupted} does not match" in reason
    assert (Path(blessing.uri) / "INFRA_NOT_BLESSED").exists()


def test_infra_validator_unreadable_manifest_is_not_blessed(tmp_path, sklearn_bundles):
    copy = tmp_path / "no-manifest"
    shutil.copytree(sklearn_bundles["a"], copy)
    (copy / "manifest.json").write_text("{not json")
    blessing = blessing_at(tmp_path)
    validate_infra(Model(str(copy), id=1), blessing)
    assert blessing.properties["blessed"] is False
    assert "manifest.json is not valid JSON" in blessing.properties["reasons"][0]


def test_infra_validator_split_lacking_a_feature_names_it(tmp_path, sklearn_bundles):
    data = tmp_path / "examples" / "Split-eval"
    data.mkdir(parents=True)
    table = pcsv.read_csv(UNLABELLED).drop_columns(["body_mass_g"])
    pq.write_table(table, data / "part-00000.parquet")
    with pytest.raises(ConveyorError, match=r"Split 'eval' .* lacks 'body_mass_g'"):
        validate_infra(
            Model(str(sklearn_bundles["a"]), id=1),
            blessing_at(tmp_path),
            Examples(str(tmp_path / "examples")),
        )


def test_infra_validator_specs_are_checked_when_the_node_is_made():
    model = Importer("/models/m", Model).outputs["result"]
    with pytest.raises(PipelineDefinitionError, match=r"'num_exmples' in InfraValidator's"):
        InfraValidator(model=model, request_spec={"num_exmples": 3})
    with pytest.raises(PipelineDefinitionError, match="'num_examples' parameter of RequestSpec"):
        InfraValidator(model=model, request_spec={"num_examples": 0})
    with pytest.raises(PipelineDefinitionError, match="'protocols' parameter of RequestSpec"):
        RequestSpec(protocols=["grpc"])
    with pytest.raises(PipelineDefinitionError, match="load_timeout_s"):
        InfraValidator(model=model, serving_spec={"load_timeout_s": -1})
    node = InfraValidator(model=model, serving_spec={"workers": 2}, request_spec={"split": "x"})
    assert node.params["serving_spec"] == ServingSpec(workers=2)
    assert node.params["request_spec"] == RequestSpec(split="x")
