"""The Evaluator in real pipelines on the penguin data: a first model blessed on its value
threshold alone, a crippled second model not blessed against the first, slices by species and
by bucketed body mass, and what the store keeps of the EvalConfig."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor import Importer, LatestBlessedModel, LocalRunner, Pipeline, Resolver
from conveyor.components import Evaluator, Trainer
from conveyor.evaluation import (
    ChangeThreshold,
    EvalConfig,
    MetricThreshold,
    SlicingSpec,
    load_evaluation,
)
from conveyor.metadata import MetadataStore
from conveyor.types import Examples, Model, ModelBlessing, PipelineDefinitionError, Schema

PENGUIN_SCHEMA = (
    Path(__file__).resolve().parents[2].parent / "shared/data/penguin/schema_user_provided.pbtxt"
)
TRAINER_MODULE = """
from sklearn.linear_model import LogisticRegression

from conveyor.frameworks import save_model

LABEL = "species_xf"


def run_fn(fn_args):
    features = fn_args.data_accessor.feature_names("train", label=LABEL)
    if fn_args.custom_config and fn_args.custom_config.get("cripple"):
        features = ["body_mass_g_xf"]  # one feature cannot tell Adelie from Chinstrap
    X, y = fn_args.data_accessor.to_numpy("train", features=features, label=LABEL)
    model = LogisticRegression(max_iter=500).fit(X, y)
    save_model(model, fn_args.serving_model_dir, features=features, label=LABEL,
               class_names=["Adelie", "Chinstrap", "Gentoo"])
"""

CONFIG = EvalConfig(
    label_key="species",
    metrics=["accuracy", "f1_macro", "roc_auc", "log_loss", "confusion_matrix", "calibration"],
    slicing_specs=[
        SlicingSpec(feature_keys=["species"]),
        SlicingSpec(boundaries={"body_mass_g": [0.3, 0.6]}),
    ],
    thresholds={
        "accuracy": MetricThreshold(lower=0.6, change=ChangeThreshold(absolute=-0.01)),
    },
)


def pipeline(tmp_path: Path, data_nodes: tuple, *, cripple: bool) -> Pipeline:
    example_gen, transform = data_nodes
    module = tmp_path / "penguin_trainer.py"
    module.write_text(TRAINER_MODULE)
    trainer = Trainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        module_file=str(module),
        custom_config={"cripple": cripple},
    )
    latest = Resolver(LatestBlessedModel, model=Model, model_blessing=ModelBlessing)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest.with_id("latest_blessed").outputs["model"],
        eval_config=CONFIG,
    )
    nodes = [example_gen, transform, trainer, latest, evaluator]
    return Pipeline("penguin", nodes, root=tmp_path / "root",
                    metadata_url=f"sqlite:///{tmp_path}/md.db")  # fmt: skip


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, penguin_nodes) -> dict:
    """A first run (no blessed model yet), then a run whose Trainer is crippled."""
    tmp = tmp_path_factory.mktemp("evaluator")
    runner = LocalRunner(display="none")
    data_nodes = penguin_nodes(tmp)
    first = runner.run(pipeline(tmp, data_nodes, cripple=False))
    assert first.ok, first.message
    second = runner.run(pipeline(tmp, data_nodes, cripple=True))
    assert second.ok, second.message
    return {"first": first, "second": second, "tmp": tmp}


def outputs(result) -> tuple:
    node = result["Evaluator"]
    return node.outputs["evaluation"][0], node.outputs["blessing"][0]


def test_evaluator_first_run_blesses_on_value_thresholds_and_skips_change(two_runs):
    evaluation, blessing = outputs(two_runs["first"])
    model = two_runs["first"]["Trainer"].outputs["model"][0]
    assert blessing.properties["blessed"] is True
    assert blessing.properties["model_id"] == model.id
    assert blessing.properties["baseline_model_id"] is None
    assert Path(blessing.uri, "BLESSED").exists() and not Path(blessing.uri, "NOT_BLESSED").exists()
    [skipped] = blessing.properties["skipped"]
    assert "no baseline model" in skipped and "accuracy" in skipped

    result = load_evaluation(evaluation)
    assert result.blessed and result.reasons == [] and not result.has_baseline
    overall = result.metrics()
    assert overall["accuracy"] >= 0.9 and overall["example_count"] > 0
    assert evaluation.properties["overall"]["accuracy"] == overall["accuracy"]
    assert evaluation.properties["blessed"] is True


def test_evaluator_slices_by_species_and_bucketed_body_mass(two_runs):
    result = load_evaluation(outputs(two_runs["first"])[0])
    assert result.slices() == [
        "Overall", "species=0", "species=1", "species=2",
        "body_mass_g=(-inf, 0.3)", "body_mass_g=[0.3, 0.6)", "body_mass_g=[0.6, inf)",
    ]  # fmt: skip
    species = [result.metrics(f"species={i}")["example_count"] for i in range(3)]
    buckets = [result.metrics(key)["example_count"] for key in result.slices()[4:]]
    assert sum(species) == sum(buckets) == result.metrics()["example_count"]
    assert result.metrics("species=0")["roc_auc"] is None
    assert "only one class (Adelie)" in result.undefined("species=0")["roc_auc"]
    matrix = result.plots()["confusion_matrix"]
    assert matrix["predicted"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert sum(map(sum, matrix["matrix"])) == result.metrics()["example_count"]


def test_evaluator_crippled_model_is_not_blessed_against_the_baseline(two_runs):
    evaluation, blessing = outputs(two_runs["second"])
    first_model = two_runs["first"]["Trainer"].outputs["model"][0]
    second_model = two_runs["second"]["Trainer"].outputs["model"][0]
    assert blessing.properties["blessed"] is False
    assert blessing.properties["model_id"] == second_model.id
    assert blessing.properties["baseline_model_id"] == first_model.id
    reasons = blessing.properties["reasons"]
    assert any("against the baseline's" in r and "accuracy on Overall" in r for r in reasons)
    assert Path(blessing.uri, "NOT_BLESSED").read_text().splitlines() == reasons

    result = load_evaluation(evaluation)
    assert result.has_baseline and not result.blessed
    change = result.diff()["accuracy"]
    assert change["change"] < -0.01
    assert change["baseline"] == pytest.approx(load_evaluation(
        outputs(two_runs["first"])[0]).metrics()["accuracy"])  # fmt: skip


def test_evaluator_latest_blessed_model_stays_the_first(two_runs):
    tmp = two_runs["tmp"]
    store = MetadataStore(f"sqlite:///{tmp}/md.db")
    blessings = store.artifacts(type_name="ModelBlessing")
    store.close()
    blessed = [b for b in blessings if b.properties["blessed"]]
    first_model = two_runs["first"]["Trainer"].outputs["model"][0]
    assert [b.properties["model_id"] for b in blessed] == [first_model.id]


def test_evaluator_keeps_eval_config_in_the_store_as_json(two_runs):
    tmp = two_runs["tmp"]
    execution_id = two_runs["first"]["Evaluator"].execution_id
    store = MetadataStore(f"sqlite:///{tmp}/md.db")
    execution = store.get_execution(execution_id)
    store.close()
    stored = execution.properties["params"]["eval_config"]
    json.dumps(stored)
    assert EvalConfig.from_dict(stored) == CONFIG


def test_evaluator_rejects_a_wrong_eval_config_when_the_node_is_made(tmp_path):
    examples = Importer(str(tmp_path), Examples).outputs["result"]
    model = Importer(str(tmp_path), Model).outputs["result"]
    with pytest.raises(PipelineDefinitionError, match="'eval_config' parameter of Evaluator"):
        Evaluator(examples=examples, model=model, eval_config="accuracy")


def test_conveyor_show_prints_the_verdict_and_metrics_by_slice(two_runs, capsys, monkeypatch):
    from conveyor.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")
    evaluation, blessing = outputs(two_runs["second"])
    url = f"sqlite:///{two_runs['tmp']}/md.db"
    assert main(["show", str(evaluation.id), "--metadata-url", url]) == 0
    out = capsys.readouterr().out
    assert "Not blessed" in out and "accuracy on Overall is" in out
    assert "species=2" in out and "body_mass_g=[0.6, inf)" in out
    assert main(["show", str(blessing.id), "--metadata-url", url]) == 0
    assert "Not blessed" in capsys.readouterr().out


# ---------------------------------------------------------------------- predict_fn and schema
PREDICT_MODULE = """
def predict_fn(model, batch):
    return {"probabilities": model.predict_proba(batch)[:, ::-1]}  # classes reversed
"""


def reversed_proba(model, batch):
    return model.predict_proba(batch)[:, ::-1]


def imported(tmp_path: Path, penguin_frame, bundle: Path) -> list:
    """Importers for the penguin rows (split eval, raw features, label species ids) and a
    bundle."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    split = tmp_path / "examples" / "Split-eval"
    split.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(penguin_frame), split / "part-00000.parquet")
    return [Importer(str(split.parent), Examples).with_id("examples"),
            Importer(str(bundle), Model).with_id("model")]  # fmt: skip


def evaluate_in_pipeline(tmp_path: Path, nodes: list, **params):
    examples, model = nodes[:2]
    evaluator = Evaluator(examples=examples.outputs["result"], model=model.outputs["result"],
                          **params)  # fmt: skip
    pipeline = Pipeline("penguin", [*nodes, evaluator], root=tmp_path / "root",
                        metadata_url=f"sqlite:///{tmp_path}/md.db")  # fmt: skip
    return LocalRunner(display="none").run(pipeline)


@pytest.mark.parametrize("how", ["module_file", "callable"])
def test_evaluator_predict_fn_replaces_the_bundles_predictions(
    how, tmp_path, penguin_frame, sklearn_bundles
):
    nodes = imported(tmp_path, penguin_frame, sklearn_bundles["a"])
    config = EvalConfig(metrics=["accuracy"])
    plain = evaluate_in_pipeline(tmp_path / "plain", nodes, eval_config=config)
    if how == "module_file":
        module = tmp_path / "predict.py"
        module.write_text(PREDICT_MODULE)
        params = {"module_file": str(module)}
    else:
        params = {"predict_fn": reversed_proba}
    swapped = evaluate_in_pipeline(tmp_path / how, nodes, eval_config=config, **params)
    assert plain.ok and swapped.ok, (plain.message, swapped.message)
    accuracy = [load_evaluation(r["Evaluator"].outputs["evaluation"][0]).metrics()["accuracy"]
                for r in (plain, swapped)]  # fmt: skip
    assert accuracy[0] > 0.9 and accuracy[1] < 0.5


def test_evaluator_checks_config_features_against_the_schema(tmp_path, penguin_frame,
                                                             sklearn_bundles):  # fmt: skip
    schema = PENGUIN_SCHEMA
    nodes = imported(tmp_path, penguin_frame, sklearn_bundles["a"])
    nodes.append(Importer(str(schema), Schema).with_id("schema"))
    examples, model, schema_node = nodes
    evaluator = Evaluator(
        examples=examples.outputs["result"], model=model.outputs["result"],
        schema=schema_node.outputs["result"],
        eval_config=EvalConfig(slicing_specs=[SlicingSpec(feature_keys=["island"])]),
    )  # fmt: skip
    pipeline = Pipeline("penguin", [*nodes, evaluator], root=tmp_path / "root",
                        metadata_url=f"sqlite:///{tmp_path}/md.db")  # fmt: skip
    result = LocalRunner(display="none").run(pipeline)
    assert result["Evaluator"].state == "FAILED"
    error = result["Evaluator"].error
    assert "slicing_specs[0] names feature 'island', which is not in the schema at" in error
    assert "culmen_length_mm" in error
