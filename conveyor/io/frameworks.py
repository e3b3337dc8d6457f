"""Examples as batches for PyTorch, JAX and TensorFlow, streamed by :mod:`conveyor.io.examples`.

Each framework is imported only when its function is called; a missing one is a
:class:`~conveyor.types.ConveyorError` that says what to install. Batches are ``(X, y)``
(``X`` alone without a label), or with ``as_dict=True`` one array per feature and the label,
keyed by column name. Every function takes the same keyword arguments, :class:`BatchOptions`.

Example::

    loader = torch_dataloader(examples, "train", features=FEATURES, label="species",
                              batch_size=64, shuffle=True, seed=0, num_workers=2)
    for X, y in loader:
        loss = loss_fn(model(X), y)
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import numpy as np
import pyarrow as pa

from conveyor.io.arrays import batch_to_numpy, check_features
from conveyor.io.examples import ExamplesLike, ExamplesSource, record_batches
from conveyor.types import ConveyorError

__all__ = ["jax_batches", "tf_dataset", "torch_dataloader", "torch_dataset"]


def _require(module: str, package: str, caller: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConveyorError(
            f"{caller}() needs {package}, which is not installed here: pip install {package}"
        ) from exc


@dataclass(frozen=True)
class _BatchPlan:
    """What to read and how to shape it; checked when built, small enough to pickle."""

    source: ExamplesSource
    split: str
    features: list[str]
    label: str | None
    dtype: np.dtype
    as_dict: bool
    stream: dict[str, Any]  # record_batches' batch_size, shuffle, seed, ... keyword arguments

    def numpy_batches(
        self, *, epoch: int = 0, workers: tuple[int, int] | None = None
    ) -> Iterator[Any]:
        """NumPy batches in the shape every framework function hands out; ``workers``
        splits this plan's shard further, ``epoch`` offsets a seeded shuffle."""
        stream = dict(self.stream)
        if workers is not None:
            index, count = stream["shard"] or (0, 1)
            stream["shard"] = (index * workers[1] + workers[0], count * workers[1])
        if stream["seed"] is not None:
            stream["seed"] += epoch
        label = [self.label] if self.label is not None else []
        columns = list(dict.fromkeys([*self.features, *label]))
        for batch in record_batches(self.source, self.split, columns=columns, **stream):
            X, y = batch_to_numpy(batch, features=self.features, label=self.label, dtype=self.dtype)
            if not self.as_dict:
                yield X if self.label is None else (X, y)
                continue
            out = {name: np.ascontiguousarray(X[:, j]) for j, name in enumerate(self.features)}
            yield out if self.label is None else {**out, self.label: y}


class BatchOptions(TypedDict, total=False):
    """The keyword arguments every function here takes, besides ``features``.

    ``label`` (default none: batches are ``X`` alone); ``batch_size`` (256), ``shuffle``
    (False), ``seed``, ``shuffle_buffer``, ``repeat`` (False) and ``shard`` as in
    :func:`~conveyor.io.examples.record_batches`; ``as_dict`` (False) for one array per
    column, keyed by name; ``dtype`` of the features (``numpy.float32``).
    """

    label: str | None
    batch_size: int
    shuffle: bool
    seed: int | None
    shuffle_buffer: int | None
    repeat: bool | int
    shard: tuple[int, int] | None
    as_dict: bool
    dtype: Any


_DEFAULTS: BatchOptions = {
    "label": None,
    "batch_size": 256,
    "shuffle": False,
    "seed": None,
    "shuffle_buffer": None,
    "repeat": False,
    "shard": None,
    "as_dict": False,
    "dtype": np.float32,
}


def _with_defaults(caller: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` completed with the defaults; an unknown one is the TypeError Python gives."""
    for name in options:
        if name not in _DEFAULTS:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    return {**_DEFAULTS, **options}


def _plan(
    caller: str,
    examples: ExamplesLike,
    split: str,
    features: Sequence[str],
    options: dict[str, Any],
) -> _BatchPlan:
    """Check every argument before anything is read; ``options`` as from ``_with_defaults``."""
    stream = dict(options)
    label, as_dict, dtype = stream.pop("label"), stream.pop("as_dict"), stream.pop("dtype")
    source = check_features(examples, split, features=features, label=label)
    if label is not None:
        arrow_type = _label_type(source, split, label)
        if not (
            pa.types.is_integer(arrow_type)
            or pa.types.is_floating(arrow_type)
            or pa.types.is_boolean(arrow_type)
        ):
            raise ConveyorError(
                f"Label {label!r} is {arrow_type}, but {caller}() needs a numeric label. "
                "Encode it as integers first (e.g. a vocabulary in Transform)."
            )
    record_batches(source, split, columns=list(features), **stream)  # checks the options now
    return _BatchPlan(source, split, list(features), label, np.dtype(dtype), as_dict, stream)


def _label_type(source: ExamplesSource, split: str, label: str) -> pa.DataType:
    """The label's Arrow type; a list (tf.Example's way to hold one value) gives its values'."""
    arrow_type = source.schema(split).field(label).type
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return arrow_type.value_type
    return arrow_type


def _convert(batch: Any, to_array: Any) -> Any:
    if isinstance(batch, dict):
        return {name: to_array(value) for name, value in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_array(value) for value in batch)
    return to_array(batch)


# --- PyTorch -------------------------------------------------------------------------------


@functools.cache
def _torch_dataset_class() -> type:
    import torch

    class TorchExamplesDataset(torch.utils.data.IterableDataset):
        """Batches of one split; each DataLoader worker reads its own disjoint shard."""

        def __init__(self, plan: _BatchPlan) -> None:
            super().__init__()
            self.plan = plan
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            """Reshuffle differently for each epoch of a seeded shuffle (``seed + epoch``)."""
            self.epoch = epoch

        def __iter__(self) -> Iterator[Any]:
            info = torch.utils.data.get_worker_info()
            workers = (info.id, info.num_workers) if info is not None else None
            for batch in self.plan.numpy_batches(epoch=self.epoch, workers=workers):
                yield _convert(batch, torch.from_numpy)

    # Let pickle find the class (DataLoader workers started with spawn or forkserver).
    TorchExamplesDataset.__module__ = __name__
    TorchExamplesDataset.__qualname__ = "TorchExamplesDataset"
    return TorchExamplesDataset


def __getattr__(name: str) -> Any:
    if name == "TorchExamplesDataset":
        return _torch_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def torch_dataset(
    examples: ExamplesLike,
    split: str = "train",
    *,
    features: Sequence[str],
    **options: Unpack[BatchOptions],
) -> Any:
    """A ``torch.utils.data.IterableDataset`` of ready-made batches of tensors; ``options``
    are the :class:`BatchOptions`, and ``dtype`` may also be a ``torch.dtype``.

    Inside a DataLoader with workers, each worker reads a disjoint shard (by
    ``get_worker_info()``), so an epoch sees every row exactly once; ``shard=(rank, world)``
    splits the data between processes first, e.g. for DistributedDataParallel. Call
    ``set_epoch(e)`` before each epoch to reshuffle a seeded shuffle.
    """
    settings = _with_defaults("torch_dataset", options)
    torch = _require("torch", "torch", "torch_dataset")
    if isinstance(settings["dtype"], torch.dtype):
        settings["dtype"] = torch.empty(0, dtype=settings["dtype"]).numpy().dtype
    return _torch_dataset_class()(_plan("torch_dataset", examples, split, features, settings))


def torch_dataloader(
    examples: ExamplesLike,
    split: str = "train",
    *,
    features: Sequence[str],
    num_workers: int = 0,
    **options: Any,
) -> Any:
    """A ``torch.utils.data.DataLoader`` over :func:`torch_dataset` (batches come ready-made,
    so the loader's own ``batch_size`` is ``None``); ``options`` that are not
    :class:`BatchOptions` go to the DataLoader."""
    batch_options = {name: options.pop(name) for name in list(options) if name in _DEFAULTS}
    data = torch_dataset(examples, split, features=features, **batch_options)
    from torch.utils.data import DataLoader

    return DataLoader(data, batch_size=None, num_workers=num_workers, **options)


# --- JAX -----------------------------------------------------------------------------------


def jax_batches(
    examples: ExamplesLike,
    split: str = "train",
    *,
    features: Sequence[str],
    drop_remainder: bool = False,
    **options: Unpack[BatchOptions],
) -> Iterator[Any]:
    """Batches of ``jax.numpy`` arrays; ``options`` are the :class:`BatchOptions`.

    ``drop_remainder=True`` drops each epoch's short last batch, so every batch has the same
    shape (one compilation of a jitted step). For multi-host training pass
    ``shard=(jax.process_index(), jax.process_count())``."""
    settings = _with_defaults("jax_batches", options)
    jnp = _require("jax.numpy", "jax", "jax_batches")
    plan = _plan("jax_batches", examples, split, features, settings)
    full_size = settings["batch_size"] if drop_remainder else 0
    return _jax_batches(plan.numpy_batches(), jnp, full_size)


def _jax_batches(batches: Iterator[Any], jnp: Any, full_size: int) -> Iterator[Any]:
    for batch in batches:
        arrays = list(batch.values()) if isinstance(batch, dict) else batch
        first = arrays[0] if isinstance(arrays, list | tuple) else arrays
        if len(first) >= full_size:
            yield _convert(batch, jnp.asarray)


# --- TensorFlow ----------------------------------------------------------------------------


def tf_dataset(
    examples: ExamplesLike,
    split: str = "train",
    *,
    features: Sequence[str],
    **options: Unpack[BatchOptions],
) -> Any:
    """A ``tf.data.Dataset`` of batches (``from_generator``), for Keras ``model.fit``;
    ``options`` are the :class:`BatchOptions`.

    Only when TensorFlow is installed; Conveyor itself never needs it.
    """
    settings = _with_defaults("tf_dataset", options)
    tf = _require("tensorflow", "tensorflow", "tf_dataset")
    plan = _plan("tf_dataset", examples, split, features, settings)
    x_type = tf.as_dtype(plan.dtype)
    y_spec = None
    if plan.label is not None:
        y_type = np.dtype(_label_type(plan.source, split, plan.label).to_pandas_dtype())
        y_spec = tf.TensorSpec((None,), tf.as_dtype(y_type))
    if plan.as_dict:
        spec: Any = {name: tf.TensorSpec((None,), x_type) for name in plan.features}
        if plan.label is not None:
            spec[plan.label] = y_spec
    else:
        x_spec = tf.TensorSpec((None, len(plan.features)), x_type)
        spec = x_spec if plan.label is None else (x_spec, y_spec)

    return tf.data.Dataset.from_generator(plan.numpy_batches, output_signature=spec)
