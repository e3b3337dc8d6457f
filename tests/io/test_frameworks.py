"""Examples as PyTorch, JAX and TensorFlow batches."""

from __future__ import annotations

import importlib
import os
import pickle
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.io.frameworks import jax_batches, tf_dataset, torch_dataloader, torch_dataset
from conveyor.types import ConveyorError

ROWS = 240


def _framework(name: str) -> ModuleType:
    """Import an installed framework; skip without it, except in CI where it must be there."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{name} is a dev dependency but cannot be imported: {exc}")
        pytest.skip(f"{name} is not installed")


@pytest.fixture
def examples_uri(tmp_path: Path) -> str:
    """A linear regression problem, target = 2*x0 - 3*x1 + 1, in 3 part files of train."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(ROWS, 2))
    table = pa.table(
        {
            "id": np.arange(ROWS),
            "x0": x[:, 0],
            "x1": x[:, 1],
            "target": 2 * x[:, 0] - 3 * x[:, 1] + 1,
            "klass": (x[:, 0] > 0).astype(np.int64),
            "name": [f"row-{i}" for i in range(ROWS)],
        }
    )
    folder = tmp_path / "examples" / "Split-train"
    folder.mkdir(parents=True)
    for i, start in enumerate(range(0, ROWS, 80)):
        pq.write_table(table.slice(start, 80), folder / f"part-{i:05d}.parquet")
    return str(tmp_path / "examples")


# PyTorch runs first: DataLoader workers fork, which JAX's threads make unsafe once it is loaded.


def test_torch_dataset_yields_float_features_and_int_labels(examples_uri: str) -> None:
    torch = _framework("torch")

    batches = list(torch_dataset(examples_uri, features=["x0", "x1"], label="klass", batch_size=50))

    X, y = batches[0]
    assert X.shape == (50, 2) and X.dtype == torch.float32
    assert y.shape == (50,) and y.dtype == torch.int64
    assert [len(b[1]) for b in batches] == [50, 50, 50, 50, 40]


def test_torch_dataset_as_dict_keys_columns(examples_uri: str) -> None:
    torch = _framework("torch")

    batch = next(iter(torch_dataset(examples_uri, features=["x0"], label="id", as_dict=True)))

    assert set(batch) == {"x0", "id"}
    assert batch["id"].dtype == torch.int64 and batch["x0"].dtype == torch.float32


def test_torch_dataset_survives_pickling_for_spawned_workers(examples_uri: str) -> None:
    _framework("torch")
    data = torch_dataset(examples_uri, features=["x0"], label="id", batch_size=100)

    copy = pickle.loads(pickle.dumps(data))

    assert sum(len(y) for _, y in copy) == ROWS


def test_torch_dataloader_trains_and_sees_every_row_once_per_epoch(examples_uri: str) -> None:
    torch = _framework("torch")
    torch.manual_seed(0)
    loader = torch_dataloader(
        examples_uri,
        features=["id", "x0", "x1"],
        label="target",
        batch_size=16,
        shuffle=True,
        seed=0,
        num_workers=2,
    )
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    epoch_losses = []
    for epoch in range(3):
        loader.dataset.set_epoch(epoch)
        seen: Counter[int] = Counter()
        losses = []
        for X, y in loader:
            seen.update(int(i) for i in X[:, 0])
            loss = torch.nn.functional.mse_loss(model(X[:, 1:]).squeeze(1), y.float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert sorted(seen) == list(range(ROWS)) and set(seen.values()) == {1}
        epoch_losses.append(np.mean(losses))

    assert epoch_losses[-1] < epoch_losses[0] / 4


def test_torch_dataset_string_feature_fails_before_reading(examples_uri: str) -> None:
    _framework("torch")

    with pytest.raises(ConveyorError, match="Feature 'name' is string"):
        torch_dataset(examples_uri, features=["x0", "name"], label="target")


def test_torch_dataset_string_label_is_an_error(examples_uri: str) -> None:
    _framework("torch")

    with pytest.raises(ConveyorError, match="Label 'name' is string.*numeric label"):
        torch_dataset(examples_uri, features=["x0"], label="name")


def test_torch_dataset_without_torch_says_what_to_install(
    examples_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)

    with pytest.raises(ConveyorError, match="pip install torch"):
        torch_dataset(examples_uri, features=["x0"])


def test_jax_batches_shapes_and_drop_remainder(examples_uri: str) -> None:
    jax = _framework("jax")

    kept = list(jax_batches(examples_uri, features=["x0", "x1"], label="klass", batch_size=100))
    dropped = list(
        jax_batches(
            examples_uri, features=["x0", "x1"], batch_size=100, repeat=2, drop_remainder=True
        )
    )

    assert [X.shape for X, _ in kept] == [(100, 2), (100, 2), (40, 2)]
    assert isinstance(kept[0][0], jax.Array) and kept[0][0].dtype == np.float32
    assert np.issubdtype(kept[0][1].dtype, np.integer)
    assert [X.shape for X in dropped] == [(100, 2)] * 4


def test_jax_batches_train_a_linear_model_with_grad(examples_uri: str) -> None:
    jax = _framework("jax")
    jnp = jax.numpy

    def loss(params, X, y):
        return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)

    step = jax.jit(jax.value_and_grad(loss))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    losses = []
    batches = jax_batches(
        examples_uri,
        features=["x0", "x1"],
        label="target",
        batch_size=32,
        shuffle=True,
        seed=0,
        repeat=5,
        drop_remainder=True,
    )
    for X, y in batches:
        value, grads = step(params, X, y)
        params = jax.tree_util.tree_map(lambda p, g: p - 0.2 * g, params, grads)
        losses.append(float(value))

    assert len(losses) == 5 * (ROWS // 32)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) / 4


def test_tf_dataset_without_tensorflow_says_what_to_install(
    examples_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)

    with pytest.raises(ConveyorError, match="tf_dataset\\(\\) needs tensorflow.*pip install"):
        tf_dataset(examples_uri, features=["x0"], label="target")
