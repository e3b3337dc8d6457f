"""What the local runner imports before forking an execution: the framework modules a
Trainer's module file or a scikit-learn bundle among its inputs will need, and nothing for a
run whose nodes all come from the cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conveyor.frameworks.preload import modules_for_execution
from conveyor.types import Model

TRAINER_MODULE = """
import os
import pandas as pd
import sklearn.linear_model
import torch
from sklearn.pipeline import Pipeline
from . import helpers

def run_fn(fn_args):
    import scipy.stats  # imported only when called: left to the execution
"""


def test_module_file_top_level_imports_of_fork_safe_libraries(tmp_path: Path):
    path = tmp_path / "trainer.py"
    path.write_text(TRAINER_MODULE)
    assert modules_for_execution({"module_file": str(path), "train_args": None}) == [
        "pandas",
        "sklearn.linear_model",
        "sklearn.pipeline",
    ]


def test_module_file_that_does_not_parse_or_exist_names_nothing(tmp_path: Path):
    path = tmp_path / "broken.py"
    path.write_text("import sklearn\ndef run_fn(:\n")
    assert modules_for_execution({"module_file": str(path)}) == []
    assert modules_for_execution({"module_file": str(tmp_path / "missing.py")}) == []


def test_scikit_learn_bundle_names_the_modules_its_model_loads(penguins, tmp_path: Path):
    from sklearn.linear_model import LogisticRegression

    from conveyor.frameworks import save_model

    X, y = penguins
    features = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
    save_model(
        LogisticRegression(max_iter=300).fit(X, y), str(tmp_path / "bundle"), features=features
    )
    model = Model(uri=str(tmp_path / "bundle"), properties={"framework": "sklearn"})
    modules = modules_for_execution({"model": model, "baseline": [model]})
    assert "sklearn.linear_model._logistic" in modules
    assert all(name.split(".")[0] in ("sklearn", "numpy", "scipy") for name in modules)
    other = Model(uri=str(tmp_path / "bundle"), properties={"framework": "torch"})
    assert modules_for_execution({"model": other}) == []
    remote = Model(uri="s3://bucket/model", properties={"framework": "sklearn"})
    assert modules_for_execution({"model": remote}) == []


PIPELINE = """
import json, sys
from pathlib import Path
from conveyor import Input, LocalRunner, Output, Pipeline, component
from conveyor.types import Model, ModelEvaluation

@component
def Fit(model: Output[Model]):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from conveyor.frameworks import save_model

    X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    save_model(LogisticRegression().fit(X, [0, 0, 1, 1]), model.uri, features=["x"])
    model.properties["framework"] = "sklearn"

@component
def Use(model: Input[Model], evaluation: Output[ModelEvaluation]):
    evaluation.properties["preloaded"] = "sklearn.linear_model._logistic" in sys.modules

root = sys.argv[1]
fit = Fit()
use = Use(model=fit.outputs["model"])
pipeline = Pipeline("preload", [fit, use], root=root + "/root",
                    metadata_url=f"sqlite:///{root}/md.db")
result = LocalRunner(display="none").run(pipeline)
assert result.ok, result.message
heavy = sorted(m for m in ("sklearn", "pyarrow.parquet") if m in sys.modules)
print(json.dumps({"states": [n.state for n in result.nodes.values()], "heavy": heavy,
                  "preloaded": result["Use"].outputs["evaluation"][0].properties["preloaded"]}))
"""


def test_runner_preloads_a_bundles_modules_and_a_cached_run_imports_none(tmp_path: Path):
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(PIPELINE))

    def run() -> dict:
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    cold = run()
    assert cold["states"] == ["COMPLETE", "COMPLETE"] and cold["preloaded"] is True
    cached = run()
    assert cached["states"] == ["CACHED", "CACHED"] and cached["heavy"] == []
