"""A compiled path for small requests: numbers read straight from the parsed JSON into a
matrix, the transform's arithmetic in NumPy, the model's arithmetic without its per-call
checks. For one row it costs a few dozen microseconds where the general path (an Arrow
batch, the transform interpreter, the framework's own checks) costs several hundred.

It is built when a version loads, and only for what it can express: raw features that are
float numbers, a transform made of the ops in ``_OPS`` giving float features, and a model
with a kernel (:func:`conveyor.frameworks.sklearn_kernels.sklearn_kernel`). It is kept only
if it gives exactly the general path's answers, to the bit, on sample rows from near zero to
far out; otherwise the version is served by the general path alone.

A request it cannot answer exactly as the general path would is handed back (``None``):
a value that is not a plain number (the general path names the feature in its 400), a
missing feature, a transformed value that is not finite (the general path's 400), a row
whose highest probability is shared by two classes. Within its row limit (:data:`MAX_ROWS`)
its cost is bounded, so the server runs it on the event loop; larger requests may take it
on the batcher's worker thread.

Example::

    compiled = CompiledPath.build(servable)      # None when it does not apply
    outputs = compiled.answer(rows) if compiled else None
    if outputs is None:
        outputs = servable.predict([rows])[0]
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.serving.servable import Outputs, Payload, Servable

logger = logging.getLogger(__name__)

#: The most rows a request may have to be answered by the compiled path.
MAX_ROWS = 64
# The largest ints Arrow turns into float64 / float32 without refusing them: past these,
# the general path answers (as it does to any value that is not a plain number).
_EXACT_INT = {np.dtype(np.float64): 2**53, np.dtype(np.float32): 2**24}
_FLOATS = (pa.float64(), pa.float32())

Column = np.ndarray
Step = Callable[[list[Any]], Any]


class CompiledPath:
    """One servable's compiled path; see the module docstring."""

    def __init__(self, servable: Servable, program: _Program, kernel: Any) -> None:
        self.names = [f.name for f in servable.fields]
        self.program = program
        self._limits = [_EXACT_INT[d] for d in program.dtypes]  # a column's ints, by its type
        self._limit = min(self._limits, default=1)  # a row's: the smallest, to be safe
        self.kernel = kernel
        self.classifier = servable.classifier
        names = servable.class_names
        self._width = len(names) if names else 0
        self._labels = None if names is None else np.asarray(names)
        self._class_ids = (
            np.array([servable.class_id(n) for n in names], dtype=np.int64) if names else None
        )

    @classmethod
    def build(cls, servable: Servable) -> CompiledPath | None:
        """The compiled path of ``servable``, or None when it does not apply or does not
        agree with the general path on the sample rows."""
        kernel = _kernel(servable)
        fields = servable.fields
        if kernel is None or not fields or not all(f.type in _FLOATS for f in fields):
            return None
        program = _Program.build(servable)
        if program is None:
            return None
        compiled = cls(servable, program, kernel)
        try:
            agrees = compiled._agrees(servable)
        except Exception:  # the general path stays the way to answer
            logger.debug("The compiled path of %s failed on its sample", servable.model_name)
            return None
        return compiled if agrees else None

    # ------------------------------------------------------------------ answering
    def answer(self, payload: Payload, max_rows: int | None = MAX_ROWS) -> Outputs | None:
        """``payload``'s outputs, or None for the general path to answer it (also when it
        has more than ``max_rows`` rows; None: any number)."""
        raw = self.read(payload, max_rows or sys.maxsize)
        if raw is None:
            return None
        return self.compute(raw)

    def read(self, payload: Payload, max_rows: int = MAX_ROWS) -> np.ndarray | None:
        """The raw features of ``payload`` (rows or columns) as float64 ``[N, K]``, or None
        unless every value of every feature is a plain number and there are 1 to
        ``max_rows`` rows."""
        names = self.names
        if isinstance(payload, dict):
            lists = [payload.get(name) for name in names]
            size = len(lists[0]) if isinstance(lists[0], list) else 0
            if not 0 < size <= max_rows:
                return None
            for values, limit in zip(lists, self._limits, strict=True):
                if not isinstance(values, list) or len(values) != size:
                    return None
                if not _numbers(values, limit):
                    return None
            return np.array(lists, dtype=np.float64).T
        size = len(payload)
        if not 0 < size <= max_rows:
            return None
        try:
            values = [row[name] for row in payload for name in names]
        except (KeyError, TypeError):
            return None
        if not _numbers(values, self._limit):
            return None
        return np.array(values, dtype=np.float64).reshape(size, len(names))

    def compute(self, raw: np.ndarray) -> Outputs | None:
        X = self.program.matrix(raw)
        if not np.isfinite(X).all():
            return None
        result = self.kernel.function(X)
        if not self.classifier:
            if result.ndim == 2 and result.shape[1] == 1:
                result = result[:, 0]
            return Outputs(np.ascontiguousarray(result))
        if result.ndim != 2 or (self._width and result.shape[1] != self._width):
            return None
        ids = []
        for row in result.tolist():
            top = max(row)
            # A tie, or a value that is not finite (the sum of probabilities is not, then):
            # the general path asks the model's predict.
            if row.count(top) != 1 or not math.isfinite(sum(row)):
                return None
            ids.append(row.index(top))
        if self._labels is None:
            prediction = class_id = np.array(ids, dtype=np.int64)
        else:
            prediction, class_id = self._labels[ids], self._class_ids[ids]  # type: ignore[index]
        return Outputs(prediction, class_id, np.ascontiguousarray(result, dtype=np.float32))

    # ------------------------------------------------------------------ checking
    def _agrees(self, servable: Servable) -> bool:
        """Whether single rows and a batch of sample rows get the general path's answers."""
        rows = _sample_rows(self.names)
        checked = 0
        for payload in [rows[i : i + 1] for i in range(0, len(rows), 16)] + [rows[:MAX_ROWS]]:
            mine = self.answer(payload)
            if mine is None:
                continue
            theirs = servable.predict([payload])[0]
            if not _same(mine, theirs):
                return False
            checked += 1
        return checked > 1


def _numbers(values: list[Any], limit: int) -> bool:
    for value in values:
        kind = type(value)
        if kind is not float and (kind is not int or not -limit <= value <= limit):
            return False
    return True


def _same(mine: Outputs, theirs: Any) -> bool:
    if isinstance(theirs, Exception):
        return False
    found, expected = mine.named(), theirs.named()
    return found.keys() == expected.keys() and all(
        found[k].dtype == expected[k].dtype and np.array_equal(found[k], expected[k]) for k in found
    )


def _sample_rows(names: list[str]) -> list[dict[str, float]]:
    """Rows from zero to far out (sizes 0.01 to 1000), the same every time."""
    scales = np.repeat([0.01, 1.0, 10.0, 1000.0], 32)[:, None]
    values = np.random.default_rng(0).standard_normal((len(scales), len(names))) * scales
    rows = [dict.fromkeys(names, 0.0)]
    return rows + [dict(zip(names, map(float, row), strict=True)) for row in values]


def _kernel(servable: Servable) -> Any:
    bundle = servable.bundle
    if bundle.manifest.get("framework") != "sklearn":
        return None
    from conveyor.frameworks.sklearn_kernels import sklearn_kernel

    kernel = sklearn_kernel(bundle.model)
    if kernel is None:
        return None
    if servable.classifier != (kernel.kind == "proba"):
        return None
    if servable.classifier and not servable.has_probabilities:
        return None
    return kernel


# ---------------------------------------------------------------------- the transform
class _Program:
    """The transform (or none) as NumPy steps over raw columns, then the float32 matrix.
    Where every feature is a raw float64 feature or its z-score, one affine step does it
    all: ``(x - mean) / std`` with mean 0 and std 1 for a raw feature (exactly ``x``) and
    std 1 where the variance is 0 (exactly ``x - mean``)."""

    def __init__(
        self, dtypes: list[np.dtype], steps: list[tuple[Step, list[int]]], outputs: list[int]
    ) -> None:
        self.dtypes = dtypes
        self.steps = steps
        self.outputs = outputs
        self.affine: tuple[Any, np.ndarray, np.ndarray] | None = None
        if all(d == np.float64 for d in dtypes):
            self.affine = _affine(steps, outputs, len(dtypes))

    @classmethod
    def build(cls, servable: Servable) -> _Program | None:
        inputs = servable.bundle.inputs
        fields = servable.fields
        dtypes = [np.dtype(f.type.to_pandas_dtype()) for f in fields]
        if inputs.transform is None:
            if inputs.width != len(fields):
                return None
            return cls(dtypes, [], list(range(len(fields))))
        graph = inputs.transform.graph
        position = {f.name: i for i, f in enumerate(fields)}
        ids = [graph.outputs.get(name) for name in servable.bundle.features]
        if None in ids or inputs.width != len(ids):
            return None
        slots: dict[int, int] = {}  # node id → slot in the values list
        steps: list[tuple[Step, list[int]]] = []
        constants: dict[int, Any] = {}
        for node_id in graph.closure(ids, through_analyzers=False):  # type: ignore[arg-type]
            node = graph.node(node_id)
            if node.kind == "input":
                name = node.attrs["name"]
                if name not in position or fields[position[name]].type != node.type:
                    return None
                slots[node_id] = position[name]
            elif node.kind in ("constant", "analyzer"):
                constants[node_id] = node.attrs["value"] if node.kind == "constant" else node.value
            elif node.kind == "op" and node.op in _OPS:
                step = _OPS[node.op](node, [graph.node(i) for i in node.inputs], constants)
                if step is None or node.type not in _FLOATS:
                    return None
                slots[node_id] = len(fields) + len(steps)
                steps.append((step, [slots.get(i, -1 - i) for i in node.inputs]))
            else:
                return None
        if any(graph.node(i).type not in _FLOATS for i in ids):  # type: ignore[arg-type]
            return None
        return cls(dtypes, steps, [slots[i] for i in ids])  # type: ignore[index]

    def matrix(self, raw: np.ndarray) -> np.ndarray:
        X = np.empty((len(raw), len(self.outputs)), dtype=np.float32)
        # Overflow gives infinities, as in Arrow and feature_matrix (then the general path).
        with np.errstate(all="ignore"):
            if self.affine is not None:
                columns, mean, std = self.affine
                X[...] = ((raw if columns is None else raw[:, columns]) - mean) / std
                return X
            values = [c.astype(d, copy=False) for c, d in zip(raw.T, self.dtypes, strict=True)]
            for step, args in self.steps:
                values.append(step([values[a] if a >= 0 else None for a in args]))
            for index, slot in enumerate(self.outputs):
                X[:, index] = values[slot]
        return X


def _affine(
    steps: list[tuple[Step, list[int]]], outputs: list[int], width: int
) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """(raw columns, means, stds) when every output is a raw feature or its z-score."""
    columns, means, stds = [], [], []
    for slot in outputs:
        if slot < width:
            columns.append(slot)
            means.append(0.0)
            stds.append(1.0)
            continue
        step, args = steps[slot - width]
        if not isinstance(step, _ZScore) or not 0 <= args[0] < width:
            return None
        columns.append(args[0])
        means.append(step.mean)
        stds.append(step.std or 1.0)
    chosen = None if columns == list(range(width)) else np.array(columns)
    return chosen, np.array(means), np.array(stds)


def _column_arg(node: Any, args: list[Any], constants: dict[int, Any]) -> Any:
    """The one column input of ``node`` and its fitted analyzer value (or None)."""
    if len(args) != 2 or args[0].type != pa.float64() or args[1].kind != "analyzer":
        return None
    return constants.get(args[1].id)


class _ZScore:
    """As ``moments._z_score`` on float64: ``(x - mean) / std``, or ``x - mean``."""

    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std

    def __call__(self, v: list[Any]) -> np.ndarray:
        return (v[0] - self.mean) / self.std if self.std > 0 else v[0] - self.mean


def _z_score(node: Any, args: list[Any], constants: dict[int, Any]) -> Step | None:
    fitted = _column_arg(node, args, constants)
    if fitted is None or node.type != pa.float64():
        return None
    return _ZScore(float(fitted["mean"]), float(np.sqrt(fitted["var"])))


def _scale_by_min_max(node: Any, args: list[Any], constants: dict[int, Any]) -> Step | None:
    """As ``ranges._scale_by_min_max``: in float32, ``(x - min) / (max - min)`` or the
    sigmoid, then scaled to the output range."""
    fitted = _column_arg(node, args, constants)
    if fitted is None:
        return None
    low, high = np.float32(fitted["min"]), np.float32(fitted["max"])
    span = np.float32(node.attrs["output_max"] - node.attrs["output_min"])
    start = np.float32(node.attrs["output_min"])

    def scale(v: list[Any]) -> np.ndarray:
        x = v[0].astype(np.float32)
        if low < high:
            scaled = (x - low) / (high - low)
        else:
            scaled = np.float32(1) / (np.float32(1) + np.exp(-x))
        return (scaled * span + start).astype(np.float32)

    return scale


_OPS: dict[str, Callable[[Any, list[Any], dict[int, Any]], Step | None]] = {
    "z_score": _z_score,
    "scale_by_min_max": _scale_by_min_max,
}
