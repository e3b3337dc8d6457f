"""Small real data for the evaluation tests: a synthetic table with numeric features, a
string and an integer slicing feature, weights, a binary, a three-class and a numeric label;
scikit-learn bundles trained on it; and Examples folders written from any table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

FEATURES = ["x1", "x2", "x3"]
ROWS = 1500


def _table(rows: int = ROWS, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3)).astype(np.float32)
    logit = 1.5 * X[:, 0] - X[:, 1] + rng.normal(scale=1.0, size=rows)
    scores = X @ np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0]])
    scores += rng.normal(scale=0.8, size=scores.shape)
    return pa.table({
        "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2],
        "color": rng.choice(["red", "green", "blue"], size=rows),
        "hour": rng.integers(0, 4, size=rows),
        "w": rng.uniform(0.1, 3.0, size=rows),
        "answer": np.where(logit > 0, "yes", "no"),
        "kind": scores.argmax(axis=1),
        "target": 3.0 * X[:, 0] - 2.0 * X[:, 2] + 10.0 + rng.normal(size=rows),
    })  # fmt: skip


@pytest.fixture(scope="session")
def table() -> pa.Table:
    return _table()


def _write_examples(folder: Path, splits: dict[str, pa.Table]) -> str:
    for split, data in splits.items():
        (folder / f"Split-{split}").mkdir(parents=True)
        pq.write_table(data, folder / f"Split-{split}" / "part-00000.parquet")
    return str(folder)


@pytest.fixture(scope="session")
def write_examples(tmp_path_factory) -> Callable[..., str]:
    """``write_examples(table, split="eval")``: an Examples folder with that one split (or
    ``splits={name: table}``)."""

    def write(data: pa.Table | None = None, split: str = "eval", splits: dict | None = None):
        folder = tmp_path_factory.mktemp("examples")
        return _write_examples(folder, splits or {split: data})

    return write


@pytest.fixture(scope="session")
def examples(table, write_examples) -> str:
    return write_examples(table)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, table) -> dict[str, str]:
    """scikit-learn bundles reading x1..x3: ``binary`` (label answer, classes no/yes),
    ``multiclass`` (label kind: ids 0..2, classes a/b/c), ``weak`` (a worse three-class
    model), ``regressor`` (label target)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from conveyor.frameworks import save_model

    X = np.stack([table[f].to_numpy() for f in FEATURES], axis=1)
    answer = (table["answer"].to_numpy(zero_copy_only=False) == "yes").astype(int)
    kind, target = table["kind"].to_numpy(), table["target"].to_numpy()
    root = tmp_path_factory.mktemp("bundles")
    specs = {
        "binary": (LogisticRegression().fit(X, answer), "answer", ["no", "yes"]),
        "multiclass": (LogisticRegression(max_iter=500).fit(X, kind), "kind", ["a", "b", "c"]),
        "weak": (LogisticRegression(C=1e-4).fit(X[:, 2:], kind), "kind", ["a", "b", "c"]),
        "regressor": (LinearRegression().fit(X, target), "target", None),
    }
    saved = {}
    for name, (model, label, classes) in specs.items():
        features = ["x3"] if name == "weak" else FEATURES
        saved[name] = save_model(model, str(root / name), features=features, label=label,
                                 class_names=classes)  # fmt: skip
    return saved
