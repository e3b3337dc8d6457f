"""How fast Conveyor reads TFX's tf.train.Example TFRecords without TensorFlow; how big they are.

Run it from the repository root::

    .venv/bin/python bench/tf_example.py [--repeats 3] [--min-examples 100000]

The 24 gzip shards of the taxi ExampleGen output in shared/data/tfx_artifacts (15,000
examples) are read once, repeated until there are at least ``--min-examples`` records, and
written back, unchanged, to one plain and one gzip TFRecord file on fsspec's in-memory
filesystem, so no disk is timed. Then, best of ``--repeats`` each:

- framing only: ``iter_records`` over each file (every CRC checked), records/s;
- ``read_tfrecord_batches`` over each file (framing, CRCs, decoding into Arrow), examples/s;
- ``decode`` alone on the records already in memory, examples/s;
- for comparison, a naive decoder: ``Example.FromString``, walk the features into Python
  lists, ``pa.array`` each list, examples/s;
- the anchor: ``Example.FromString`` on every record, no Arrow, each message dropped at
  once, examples/s; and the same keeping every message (memory grows as decode's does);
- ``encode`` of the decoded table, examples/s.

And the size on disk per example: TFX's shards as they are (gzip), their records framed
uncompressed, and the same rows re-encoded by Conveyor (plain and gzip). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import google.protobuf
import pyarrow as pa
from google.protobuf.internal import api_implementation

from conveyor.io import filesystems
from conveyor.io.example_codec import (
    decode,
    encode,
    infer_tfrecord_schema,
    read_tfrecord_batches,
    write_tfrecord,
)
from conveyor.io.tf_example import Example
from conveyor.io.tfrecord import TFRecordWriter, iter_records

ROOT = Path(__file__).resolve().parents[1]
TAXI = ROOT.parent / "shared" / "data" / "tfx_artifacts" / "taxi_examples"
TFDV_ROWS_PER_S = 17_600  # TFDV's CSV-to-statistics pass on our machines, for scale
BATCH = 8192


def best_of(repeats: int, measure: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        measure()
        times.append(time.perf_counter() - start)
    return min(times)


def taxi_files() -> list[str]:
    files = sorted(str(p) for p in TAXI.glob("Split-*/*.gz"))
    if len(files) != 24:
        sys.exit(f"Expected the 24 taxi shards under {TAXI}; found {len(files)}.")
    return files


def write_records(uri: str, records: list[bytes], compression: str | None) -> int:
    with TFRecordWriter(uri, compression=compression) as writer:
        for record in records:
            writer.write(record)
    return filesystems.size(uri)


def count_framed(uri: str) -> int:
    return sum(1 for _ in iter_records(uri))


def count_decoded(uri: str, schema: pa.Schema) -> int:
    return sum(b.num_rows for b in read_tfrecord_batches(uri, schema, batch_size=BATCH))


def decode_all(records: list[bytes], schema: pa.Schema) -> list[pa.RecordBatch]:
    return [decode(records[i : i + BATCH], schema) for i in range(0, len(records), BATCH)]


def parse_all(records: list[bytes]) -> None:
    parse = Example.FromString
    for record in records:
        parse(record)


def parse_and_keep(records: list[bytes]) -> list:
    parse = Example.FromString
    return [parse(record) for record in records]


def naive_decode(records: list[bytes], schema: pa.Schema) -> list[pa.RecordBatch]:
    """The straightforward way, for comparison: parse each Example, walk its features into
    per-column Python lists, convert the lists with ``pa.array``. Scalar columns only."""
    batches = []
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        columns = {name: [None] * len(chunk) for name in schema.names}
        for row, record in enumerate(chunk):
            for name, feature in Example.FromString(record).features.feature.items():
                kind = feature.WhichOneof("kind")
                if kind is not None:
                    values = getattr(feature, kind).value
                    columns[name][row] = values[0] if values else None
        arrays = [pa.array(columns[f.name], pa.binary()).cast(f.type) if f.type == pa.string()
                  else pa.array(columns[f.name], f.type) for f in schema]  # fmt: skip
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return batches


def print_machine(examples: int, repeats: int) -> None:
    print("Conveyor tf.train.Example benchmark")
    print(f"  machine : {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"  python  : {sys.version.split()[0]}, pyarrow {pa.__version__}, protobuf "
        f"{google.protobuf.__version__} ({api_implementation.Type()})"
    )
    print(
        f"  data    : taxi ExampleGen output, 24 gzip shards, 15,000 examples repeated to "
        f"{examples:,}; best of {repeats}; batch_size {BATCH}; files on memory://"
    )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="take the best of this many")
    parser.add_argument("--min-examples", type=int, default=100_000, help="records to read")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.min_examples < 1:
        parser.error("--repeats and --min-examples must be >= 1")

    files = taxi_files()
    original = [record for f in files for record in iter_records(f)]
    schema = infer_tfrecord_schema(files)
    records = original * -(-args.min_examples // len(original))
    n = len(records)
    print_machine(n, args.repeats)

    plain, gzipped = "memory://conveyor-bench/taxi.tfrecord", "memory://conveyor-bench/taxi.gz"
    write_records(plain, records, None)
    write_records(gzipped, records, "GZIP")
    if count_decoded(gzipped, schema) != n or count_framed(plain) != n:
        sys.exit("Read back a different number of examples than were written.")

    rates = {
        "framing only, plain (iter_records)": best_of(args.repeats, lambda: count_framed(plain)),
        "framing only, gzip (iter_records)": best_of(args.repeats, lambda: count_framed(gzipped)),
        "read_tfrecord_batches, plain": best_of(args.repeats, lambda: count_decoded(plain, schema)),
        "read_tfrecord_batches, gzip": best_of(
            args.repeats, lambda: count_decoded(gzipped, schema)
        ),
        "decode (records in memory)": best_of(args.repeats, lambda: decode_all(records, schema)),
        "naive decode (FromString, walk, lists)": best_of(
            args.repeats, lambda: naive_decode(records, schema)
        ),
        "anchor: Example.FromString each": best_of(args.repeats, lambda: parse_all(records)),
        "Example.FromString each, kept": best_of(args.repeats, lambda: parse_and_keep(records)),
    }
    table = pa.Table.from_batches(decode_all(records, schema))
    if not pa.Table.from_batches(naive_decode(records[:BATCH], schema)).equals(table[:BATCH]):
        sys.exit("decode and the naive decoder disagree.")
    rates["encode (Arrow to records)"] = best_of(args.repeats, lambda: encode(table))

    print(f"{'what':<38} {'per second':>12} {'vs anchor':>10}")
    anchor = n / rates["anchor: Example.FromString each"]
    for what, seconds in rates.items():
        unit = "records" if what.startswith("framing") else "examples"
        print(f"{what:<38} {n / seconds:>12,.0f} {n / seconds / anchor:>9.2f}x  {unit}")
    print()

    tfx_gzip = sum(filesystems.size(f) for f in files)
    tfx_raw = sum(len(r) + 16 for r in original)
    ours_plain = write_tfrecord(
        "memory://conveyor-bench/ours.tfrecord", [table[: len(original)]], None
    )
    ours_gzip = write_tfrecord("memory://conveyor-bench/ours.gz", [table[: len(original)]], "GZIP")
    assert ours_plain == ours_gzip == len(original)
    sizes = {
        "TFX's shards as written (gzip)": tfx_gzip,
        "TFX's records, framed, uncompressed": tfx_raw,
        "Conveyor re-encoded, gzip (level 6)": filesystems.size("memory://conveyor-bench/ours.gz"),
        "Conveyor re-encoded, plain": filesystems.size("memory://conveyor-bench/ours.tfrecord"),
    }
    print(f"{'size on disk':<38} {'bytes/example':>14}")
    for what, size in sizes.items():
        print(f"{what:<38} {size / len(original):>14.1f}")
    print()
    read_gzip = n / rates["read_tfrecord_batches, gzip"]
    print(
        f"For scale: TFDV's CSV-to-statistics pass handled {TFDV_ROWS_PER_S / 1000:.1f}k rows/s "
        f"on our machines; read_tfrecord_batches (gzip) is {read_gzip / TFDV_ROWS_PER_S:.1f}x that."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
