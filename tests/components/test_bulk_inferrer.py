"""BulkInferrer on unlabelled penguins: predictions beside an id column as Parquet, batch by
batch; nothing predicted for a model that is not blessed; clear errors for a column or a
feature that is not there; and the whole path from CSV to pushed model in one run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conveyor import Importer, Input, LocalRunner, Output, Param, Pipeline, component
from conveyor.components import BulkInferrer, CsvExampleGen, DataSpec, Pusher
from conveyor.components import bulk_inferrer as bulk_module
from conveyor.components.bulk_inferrer import infer_examples
from conveyor.frameworks import load_model
from conveyor.io import read_table
from conveyor.types import (
    ConveyorError,
    Examples,
    InferenceResult,
    Model,
    ModelBlessing,
    PipelineDefinitionError,
)

UNLABELLED = Path(__file__).resolve().parents[3] / "shared/data/penguin/penguins_unlabelled.csv"
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
OUTPUTS = ["prediction", "class_id", *(f"probability_{s}" for s in SPECIES)]


@component
def Bless(model: Input[Model], blessing: Output[ModelBlessing], blessed: Param[bool] = True):
    """Stands in for the Evaluator: a verdict on ``model``."""
    blessing.properties.update(blessed=blessed, model_id=model.id, reasons=[])


def unlabelled_table() -> pa.Table:
    """The unlabelled penguins with an id column first."""
    table = pcsv.read_csv(UNLABELLED)
    ids = pa.array([f"penguin-{i}" for i in range(table.num_rows)])
    return table.add_column(0, "penguin_id", ids)


@pytest.fixture
def unlabelled(tmp_path) -> Examples:
    folder = tmp_path / "unlabelled" / "Split-unlabelled"
    folder.mkdir(parents=True)
    pq.write_table(unlabelled_table(), folder / "part-00000.parquet")
    return Examples(str(folder.parent))


def result_at(tmp_path: Path) -> InferenceResult:
    folder = tmp_path / "result"
    folder.mkdir(parents=True)
    return InferenceResult(str(folder))


def test_bulk_inferrer_writes_predictions_beside_the_id(tmp_path, sklearn_bundles, unlabelled):
    result = result_at(tmp_path)
    infer_examples(
        unlabelled, Model(str(sklearn_bundles["a"]), id=1), result, output_columns=["penguin_id"]
    )
    table = read_table(result, "unlabelled")
    assert table.column_names == ["penguin_id", *OUTPUTS]
    raw = unlabelled_table()
    bundle = load_model(str(sklearn_bundles["a"]))
    assert table["penguin_id"].to_pylist() == raw["penguin_id"].to_pylist()
    assert table["prediction"].to_pylist() == list(bundle.predict(raw))
    assert [SPECIES[i] for i in table["class_id"].to_pylist()] == table["prediction"].to_pylist()
    probabilities = np.column_stack([table[f"probability_{s}"] for s in SPECIES])
    np.testing.assert_allclose(probabilities, bundle.predict_proba(raw), rtol=1e-6)
    assert result.properties["inferred"] is True
    assert result.properties["num_examples"] == {"unlabelled": 10}
    assert result.properties["output_columns"] == ["penguin_id", *OUTPUTS]
    assert list(Path(result.uri).glob("Split-unlabelled/part-*.parquet"))


def test_bulk_inferrer_streams_batches_of_batch_size(
    tmp_path, sklearn_bundles, unlabelled, monkeypatch
):
    seen: list[int] = []
    columns = bulk_module.Predictor.columns

    def spy(self, raw):
        seen.append(raw.num_rows)
        return columns(self, raw)

    monkeypatch.setattr(bulk_module.Predictor, "columns", spy)
    small, whole = result_at(tmp_path / "small"), result_at(tmp_path / "whole")
    model = Model(str(sklearn_bundles["b"]), id=1)
    infer_examples(unlabelled, model, small, data_spec=DataSpec(batch_size=3))
    assert seen == [3, 3, 3, 1]
    infer_examples(unlabelled, model, whole)
    assert read_table(small, "unlabelled").equals(read_table(whole, "unlabelled"))


def test_bulk_inferrer_not_blessed_predicts_nothing(tmp_path, sklearn_bundles, unlabelled):
    blessing = ModelBlessing(
        "/b", id=3, properties={"blessed": False, "model_id": 1, "reasons": ["too weak"]}
    )
    result = result_at(tmp_path)
    infer_examples(unlabelled, Model(str(sklearn_bundles["a"]), id=1), result, blessing)
    assert result.properties["inferred"] is False
    assert result.properties["reasons"] == [
        "The model blessing (artifact 3) is not blessed: too weak."
    ]
    assert list(Path(result.uri).iterdir()) == []


def test_bulk_inferrer_unknown_output_column_names_the_available_ones(
    tmp_path, sklearn_bundles, unlabelled
):
    with pytest.raises(ConveyorError, match=r"Unknown output_columns 'id': split 'unlabelled'"):
        infer_examples(
            unlabelled, Model(str(sklearn_bundles["a"]), id=1), result_at(tmp_path),
            output_columns=["id"],
        )  # fmt: skip
    with pytest.raises(ConveyorError, match="has columns penguin_id, culmen_length_mm"):
        infer_examples(
            unlabelled, Model(str(sklearn_bundles["a"]), id=1), result_at(tmp_path / "2"),
            output_columns=["id"],
        )  # fmt: skip


def test_bulk_inferrer_split_lacking_a_feature_names_feature_and_split(tmp_path, sklearn_bundles):
    folder = tmp_path / "examples" / "Split-scored"
    folder.mkdir(parents=True)
    pq.write_table(unlabelled_table().drop_columns(["flipper_length_mm"]), folder / "p.parquet")
    with pytest.raises(
        ConveyorError, match=r"Split 'scored' .* lacks feature 'flipper_length_mm', which the model"
    ):
        infer_examples(
            Examples(str(folder.parent)), Model(str(sklearn_bundles["a"]), id=1),
            result_at(tmp_path),
        )  # fmt: skip


def test_bulk_inferrer_regressor_gives_the_prediction_only(tmp_path, unlabelled, penguin_frame):
    from sklearn.linear_model import LinearRegression

    from conveyor.frameworks import save_model

    features = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm"]
    X = penguin_frame[features].to_numpy(np.float32)
    regressor = LinearRegression().fit(X, penguin_frame["body_mass_g"])
    bundle = save_model(regressor, str(tmp_path / "regressor"), features=features)
    result = result_at(tmp_path)
    infer_examples(unlabelled, Model(bundle, id=1), result, output_columns=["penguin_id"])
    table = read_table(result, "unlabelled")
    assert table.column_names == ["penguin_id", "prediction"]
    expected = regressor.predict(unlabelled_table().select(features).to_pandas().to_numpy())
    np.testing.assert_allclose(table["prediction"].to_numpy(), expected, rtol=1e-5)


def test_bulk_inferrer_data_spec_is_checked_when_the_node_is_made():
    examples = Importer("/data", Examples).outputs["result"]
    model = Importer("/models/m", Model).outputs["result"]
    with pytest.raises(PipelineDefinitionError, match=r"'example_split' in BulkInferrer's"):
        BulkInferrer(examples=examples, model=model, data_spec={"example_split": ["a"]})
    with pytest.raises(PipelineDefinitionError, match="'batch_size' parameter of DataSpec"):
        BulkInferrer(examples=examples, model=model, data_spec={"batch_size": 0})
    with pytest.raises(PipelineDefinitionError, match="'example_splits' parameter of DataSpec"):
        DataSpec(example_splits="eval")
    node = BulkInferrer(examples=examples, model=model, data_spec={"example_splits": ["eval"]})
    assert node.params["data_spec"] == DataSpec(example_splits=("eval",))


def test_bulk_inferrer_and_pusher_in_one_pipeline_run(tmp_path, sklearn_bundles):
    data = tmp_path / "data"
    data.mkdir()
    pcsv.write_csv(unlabelled_table(), data / "unlabelled.csv")
    example_gen = CsvExampleGen(input_base=str(data), input_config={"unlabelled": "*.csv"})
    model = Importer(str(sklearn_bundles["a"]), Model).with_id("model")
    bless = Bless(model=model.outputs["result"])
    inferrer = BulkInferrer(
        examples=example_gen.outputs["examples"],
        model=model.outputs["result"],
        model_blessing=bless.outputs["blessing"],
        data_spec={"example_splits": ["unlabelled"]},
        output_columns=["penguin_id"],
    )
    pusher = Pusher(
        model=model.outputs["result"],
        model_blessing=bless.outputs["blessing"],
        push_destination=str(tmp_path / "serving"),
    )
    pipeline = Pipeline(
        "penguin-infer", [example_gen, model, bless, inferrer, pusher], root=tmp_path / "root",
        metadata_url=f"sqlite:///{tmp_path}/md.db",
    )  # fmt: skip
    result = LocalRunner(display="none").run(pipeline)
    assert result.ok, result.message
    inference = result["BulkInferrer"].outputs["inference_result"][0]
    table = read_table(inference, "unlabelled")
    assert sorted(table["penguin_id"].to_pylist()) == sorted(
        unlabelled_table()["penguin_id"].to_pylist()
    )
    assert set(table["prediction"].to_pylist()) <= set(SPECIES)
    pushed = result["Pusher"].outputs["pushed_model"][0]
    assert pushed.properties["pushed_version"] == 1
    assert (tmp_path / "serving" / "1" / "manifest.json").exists()
