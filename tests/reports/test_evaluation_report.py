"""The ModelEvaluation and ModelBlessing reports: self-contained pages with the verdict, every
threshold check, metrics by slice beside the baseline's, confusion matrices and curves; and
the terminal summaries `conveyor show` prints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_reports import EVIL, assert_self_contained, text_of

from conveyor import reports
from conveyor.components.evaluator import write_blessing
from conveyor.evaluation import (
    ChangeThreshold,
    EvalConfig,
    MetricThreshold,
    SlicingSpec,
    bless,
    evaluate,
    write_evaluation,
)
from conveyor.types import ModelBlessing, ModelEvaluation

CONFIG = EvalConfig(
    label_key="label",
    slicing_specs=[SlicingSpec(feature_keys=["group"]), SlicingSpec(boundaries={"x": [0.0]})],
    thresholds={
        "accuracy": MetricThreshold(lower=0.6, change=ChangeThreshold(absolute=0)),
        "roc_auc": MetricThreshold(lower=0.5, slices=["*"]),
    },
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """Examples (a group named like a script tag, a one-class group) and two bundles."""
    from sklearn.linear_model import LogisticRegression

    from conveyor.frameworks import save_model

    rng = np.random.default_rng(3)
    x = rng.normal(size=400).astype(np.float32)
    label = np.where(x + rng.normal(scale=0.7, size=400) > 0, "spam", "ham")
    group = np.where(x > 1.2, "tail", np.where(x > 0, EVIL, "low"))
    label[group == "tail"] = "spam"
    root = tmp_path_factory.mktemp("evaluation-report")
    (root / "examples" / "Split-eval").mkdir(parents=True)
    table = pa.table({"x": x, "label": label, "group": group})
    pq.write_table(table, root / "examples" / "Split-eval" / "part-0.parquet")
    y = (label == "spam").astype(int)
    paths = {"examples": str(root / "examples")}
    for name, target in (("good", y), ("bad", 1 - y)):  # "bad" learnt the labels flipped
        model = LogisticRegression().fit(x[:, None], target)
        paths[name] = save_model(model, str(root / name), features=["x"], label="label",
                                 class_names=["ham", "spam"])  # fmt: skip
    return paths


def written(tmp_path: Path, data: dict[str, str], baseline: str | None) -> ModelEvaluation:
    evaluation = evaluate(data["examples"], data["bad"], CONFIG, baseline_model=baseline)
    verdict = bless(evaluation)
    write_evaluation(str(tmp_path), evaluation, verdict)
    write_blessing(str(tmp_path), verdict)
    return ModelEvaluation(str(tmp_path), id=12)


def test_evaluation_report_is_self_contained_with_verdict_slices_and_charts(tmp_path, data):
    page = reports.render_html(written(tmp_path, data, data["good"]))
    assert_self_contained(page)
    assert "<title>Evaluation #12</title>" in page and "Not blessed" in page
    assert "against the baseline&#39;s" in page  # the failed change threshold, explained
    assert "only one class (spam) among this slice&#39;s labels: ROC AUC needs two" in page
    for key in ("Overall", "group=low", "group=tail", "x=(-inf, 0)", "x=[0, inf)"):
        assert f">{key}</a>" in page
    assert EVIL not in page and "group=&lt;script&gt;" in page
    assert page.count('<svg class="curve"') >= 3  # ROC, PR and calibration on Overall
    assert "Confusion matrix" in page and ">ham</th>" in page
    assert 'class="change worse"' in page  # the candidate is worse than the baseline


def test_evaluation_report_without_baseline_says_change_thresholds_are_skipped(tmp_path, data):
    page = reports.render_html(written(tmp_path, data, None))
    assert "no baseline model (a first run): change thresholds are skipped" in page
    assert "skipped: there is no baseline model" in page
    assert 'class="change' not in page


def test_evaluation_summary_shows_verdict_reasons_and_metrics_by_slice(tmp_path, data):
    text = text_of(reports.summary(written(tmp_path, data, data["good"])))
    assert text.startswith("Not blessed")
    assert "✗ accuracy on Overall is" in text
    assert "✗ roc_auc on group=tail is undefined" in text
    for key in ("Overall", "group=low", "x=[0, inf)"):
        assert key in text
    assert "accuracy" in text and "example_count" in text


def test_blessing_report_and_summary_list_every_check(tmp_path, data):
    blessing = ModelBlessing(str(written(tmp_path, data, data["good"]).uri), id=13)
    page = reports.render_html(blessing)
    assert_self_contained(page)
    assert "<title>Blessing #13</title>" in page and "Not blessed" in page
    assert page.count("<tr") > 5  # a row per check, header included
    text = text_of(reports.summary(blessing))
    assert text.startswith("Not blessed") and "against the baseline's" in text
