"""The NumPy fast paths of :mod:`conveyor.io.example_codec`: ``tf.train.Example`` bytes walked
for all examples at once, with no loop over examples.

They read canonically encoded records only (what TensorFlow and protobuf write: each message
exactly the fields expected, in order, every length as short as it can be). Where a batch holds
anything else, or something the codec must report (an undeclared or repeated feature), they
return ``None`` and the codec takes its exact per-example path, which gives the same result or
names the feature and example at fault. Nothing here raises.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from conveyor.io import tf_example

BYTES, FLOAT, INT64 = "bytes_list", "float_list", "int64_list"
TAG = {BYTES: 0x0A, FLOAT: 0x12, INT64: 0x1A}  # Feature's oneof fields 1, 2, 3 (wire type 2)
_NUMPY_TYPE = {INT64: np.int64, FLOAT: np.float32}
_PAD = bytes(8)  # lets the vectorised varint reader look past the end of the last value
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


def split_features_fast(
    serialized: Sequence[bytes], names: list[str], wanted: list[str]
) -> dict[str, tuple[np.ndarray, bytes]] | None:
    """Per wanted feature, each example's serialized ``Feature`` as (lengths, bytes joined).

    All records are joined into one buffer and walked in lockstep: step ``j`` reads the
    ``j``-th map entry of every example at once. ``None`` when anything is unusual: another
    encoding, a feature not in ``names`` that is not empty, a feature twice in one example.
    """
    lengths = np.fromiter(map(len, serialized), np.int64, len(serialized))
    buf = np.frombuffer(b"".join(serialized) + _PAD, dtype=np.uint8)
    stops = np.cumsum(lengths)
    rows = np.flatnonzero(lengths)
    entries = _map_entries(buf, rows, stops[rows] - lengths[rows], stops[rows])
    if entries is None:
        return None
    rows, key_start, key_length, value_start, value_length = entries
    column_of = _match_keys(buf, key_start, key_length, names)
    if np.any(value_length[column_of < 0]):  # an undeclared feature that is not empty
        return None
    split = {}
    for number, name in enumerate(names):
        mine = column_of == number
        here = rows[mine]
        if here.size and np.bincount(here).max() > 1:  # a feature twice in one example
            return None
        if name not in wanted:
            continue
        sizes = np.zeros(len(serialized), np.int64)
        sizes[here] = value_length[mine]
        starts = np.zeros(len(serialized), np.int64)
        starts[here] = value_start[mine]
        split[name] = (sizes, _gather(buf, starts, sizes).tobytes())
    return split


def feature_values_fast(
    lengths: np.ndarray, joined: bytes, kind: str
) -> tuple[np.ndarray, np.ndarray, pa.Array] | None:
    """One column's ``(counts, present, values)`` from its examples' serialized ``Feature``.

    Per example, how many values it has and whether the feature is there; then all values in
    example order. ``None`` when any example is encoded otherwise or is of another ``kind``.
    """
    buf = np.frombuffer(joined + _PAD, dtype=np.uint8)
    present = lengths > 0
    rows = np.flatnonzero(present)
    stops = np.cumsum(lengths)[rows]
    # Feature: exactly one field, the expected list; then the list's one field of values.
    list_start = _one_field(buf, stops - lengths[rows], stops, TAG[kind])
    if list_start is None:
        return None
    nonempty = list_start < stops
    rows, stops = rows[nonempty], stops[nonempty]
    body = _one_field(buf, list_start[nonempty], stops, 0x0A)
    if body is None:
        return None
    counts = np.zeros(lengths.size, dtype=np.int64)
    if kind == BYTES:  # the field spans the whole BytesList: one value per example
        counts[rows] = 1
        return counts, present, _gather_binary(buf, body, stops)
    if kind == FLOAT:
        if np.any((stops - body) % 4):
            return None
        counts[rows] = (stops - body) // 4
    else:  # packed varints: count the bytes that end one
        if np.any(buf[stops - 1] >= 0x80):
            return None
        varint_ends = np.concatenate(([0], np.cumsum(buf < 0x80)))
        counts[rows] = varint_ends[stops] - varint_ends[body]
    # Concatenated Features of one kind parse as one Feature holding every value in order.
    merged = getattr(tf_example.Feature.FromString(joined), kind).value
    values = np.array(merged, dtype=_NUMPY_TYPE[kind])
    if values.size != counts.sum():
        return None
    return counts, present, pa.array(values)


@functools.cache
def raw_example_class() -> type:
    """A view of ``Example`` that stops at each feature's name and serialized ``Feature``.

    ``map<string, Feature>`` and ``map<string, bytes>`` are the same on the wire; reading the
    values as bytes lets NumPy split them by column afterwards.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    optional = field.LABEL_OPTIONAL
    proto = descriptor_pb2.FileDescriptorProto(
        name="conveyor/raw_example.proto", package="conveyor_raw", syntax="proto3"
    )
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=optional)
    entry.field.add(name="value", number=2, type=field.TYPE_BYTES, label=optional)
    features.field.add(
        name="feature",
        number=1,
        type=field.TYPE_MESSAGE,
        type_name=".conveyor_raw.Features.FeatureEntry",
        label=field.LABEL_REPEATED,
    )
    example = proto.message_type.add(name="Example")
    example.field.add(
        name="features",
        number=1,
        type=field.TYPE_MESSAGE,
        type_name=".conveyor_raw.Features",
        label=optional,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("conveyor_raw.Example"))


def _map_entries(buf: np.ndarray, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray):
    """Row, key and value ranges of every ``Features`` map entry of the Examples in ``buf``.

    Each Example must be exactly one ``features`` field; each entry exactly a key field then
    a value field, as protobuf and TensorFlow write them; otherwise ``None``.
    """
    pos = _one_field(buf, starts, stops, 0x0A)
    if pos is None:
        return None
    found: list[tuple[np.ndarray, ...]] = []
    while rows.size:
        going = pos < stops
        rows, pos, stops = rows[going], pos[going], stops[going]
        if len(found) > 64 and rows.size < 64:  # a few very wide examples: not worth it
            return None
        if not rows.size:
            break
        entry = _field_at(buf, pos, stops, 0x0A)
        if entry is None:
            return None
        entry_start, entry_stop = entry
        key = _field_at(buf, entry_start, entry_stop, 0x0A)
        if key is None:
            return None
        value = _field_at(buf, key[1], entry_stop, 0x12)
        if value is None or not np.array_equal(value[1], entry_stop):
            return None
        found.append((rows, key[0], key[1] - key[0], value[0], value[1] - value[0]))
        pos = entry_stop
    if not found:
        return (np.zeros(0, np.int64),) * 5
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def _match_keys(
    buf: np.ndarray, key_start: np.ndarray, key_length: np.ndarray, names: list[str]
) -> np.ndarray:
    """For each key ``buf[start:start + length]``, the index of the equal name, or -1.

    Keys are compared 8 bytes at a time through an unaligned little-endian uint64 view of
    ``buf`` (``words[i]`` is bytes ``i`` to ``i + 7``); the first word rules out most names.
    """
    words = np.ndarray((buf.size - 7,), dtype="<u8", buffer=buf, strides=(1,))
    first = words[key_start] & _LOW_BYTES[np.minimum(key_length, 8)]
    column_of = np.full(key_start.size, -1)
    for number, name in enumerate(names):
        key = name.encode()
        padded = np.frombuffer(key + bytes(-len(key) % 8), dtype="<u8")
        same = np.flatnonzero((key_length == len(key)) & (first == (padded[0] if key else 0)))
        for word in range(1, padded.size):
            mask = _LOW_BYTES[min(len(key) - 8 * word, 8)]
            same = same[(words[key_start[same] + 8 * word] & mask) == padded[word]]
        column_of[same] = number
    return column_of


def _field_at(buf: np.ndarray, at: np.ndarray, limit: np.ndarray, tag: int):
    """Body ranges of the length-delimited fields with ``tag`` at ``at``, inside ``limit``.

    Reads at most 5 bytes past ``at``; ``buf`` is padded so that is always in bounds.
    """
    if np.any(buf[at] != tag):
        return None
    length, size = _varints(buf, at + 1)
    if length is None:
        return None
    start = at + 1 + size
    stop = start + length
    return None if np.any(stop > limit) else (start, stop)


def _one_field(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray, tag: int):
    """Where the body of each ``[start, stop)`` message's only field begins, or ``None``.

    ``None`` unless every message is exactly one length-delimited field with this tag whose
    body runs to ``stop``: the canonical encoding the fast path relies on.
    """
    if not starts.size:
        return starts
    field = _field_at(buf, starts, stops, tag)
    return field[0] if field is not None and np.array_equal(field[1], stops) else None


def _varints(buf: np.ndarray, at: np.ndarray):
    """Decode one varint (up to 4 bytes, lengths below 256 MiB) at each position."""
    first = buf[at]
    if not np.any(first & 0x80):  # the usual case: every length below 128
        return first.astype(np.int64), 1
    value = np.zeros(at.size, dtype=np.int64)
    size = np.zeros(at.size, dtype=np.int64)
    going = np.ones(at.size, dtype=bool)
    for shift in range(4):
        byte = buf[at + shift].astype(np.int64)
        value |= np.where(going, (byte & 0x7F) << (7 * shift), 0)
        size += going
        going &= byte >= 0x80
    return (None, None) if going.any() else (value, size)


def _gather(buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The byte ranges ``[start, start + size)`` of ``buf``, one after another."""
    offsets = np.cumsum(sizes) - sizes
    return buf[np.repeat(starts - offsets, sizes) + np.arange(int(sizes.sum()))]


def _gather_binary(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> pa.Array:
    """A binary array of the byte ranges ``[start, stop)`` of ``buf``, without Python objects."""
    offsets = np.concatenate(([0], np.cumsum(stops - starts)))
    data = _gather(buf, starts, stops - starts)
    return pa.Array.from_buffers(
        pa.binary(), starts.size, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )
