"""TFRecord framing: byte-exact writes, streaming reads, and corruption caught with its offset."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import google_crc32c
import pytest

from conveyor.io.bad_rows import BadInputError
from conveyor.io.tfrecord import TFRecordWriter, iter_records, masked_crc32c
from conveyor.types import ConveyorError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TFX = SHARED / "data" / "tfx_artifacts"


def reference_mask(crc: int) -> int:
    """The TFRecord mask, written out from the format's definition."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def reference_frame(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", reference_mask(google_crc32c.value(length)))
        + payload
        + struct.pack("<I", reference_mask(google_crc32c.value(payload)))
    )


def write_plain(path: Path, records: list[bytes]) -> Path:
    with TFRecordWriter(str(path), compression=None) as writer:
        for record in records:
            writer.write(record)
    return path


def test_masked_crc32c_known_vector():
    assert google_crc32c.value(b"123456789") == 0xE3069283
    assert masked_crc32c(b"123456789") == reference_mask(0xE3069283)
    # by hand: (0x1C60D | 0x25060000) + 0xA282EAD8 = 0xC78AB0E5
    assert reference_mask(0xE3069283) == 0xC78AB0E5


def test_tfrecord_writer_bytes_match_framing(tmp_path):
    payload = b"conveyor tfrecord"
    path = write_plain(tmp_path / "one.tfrecord", [payload])

    data = path.read_bytes()
    assert data == reference_frame(payload)
    assert data[:8] == b"\x11" + bytes(7)  # 17, uint64 little-endian
    assert len(data) == 8 + 4 + len(payload) + 4


def test_tfrecord_writer_gzip_is_gzip_of_the_plain_bytes(tmp_path):
    records = [b"a", b"", b"ccc"]
    with TFRecordWriter(str(tmp_path / "r.gz")) as writer:  # gzip is the default
        for record in records:
            writer.write(record)

    assert gzip.decompress((tmp_path / "r.gz").read_bytes()) == b"".join(
        reference_frame(r) for r in records
    )


def test_tfrecord_writer_gzip_output_is_reproducible(tmp_path):
    for name in ("a.gz", "b.gz"):
        with TFRecordWriter(str(tmp_path / name), compression="GZIP") as writer:
            writer.write(b"same bytes")
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_iter_records_round_trip(tmp_path, compression):
    records = [b"", b"x", bytes(range(256)) * 5, b"y" * 3_000_000]  # one longer than a chunk
    records += [str(i).encode() * (i % 7) for i in range(50_000)]  # records across chunks
    path = str(tmp_path / "data.tfrecord")
    with TFRecordWriter(path, compression=compression) as writer:
        for record in records:
            writer.write(record)
        assert writer.records_written == len(records)

    assert list(iter_records(path)) == records  # "auto" detects either
    assert list(iter_records(path, compression=compression)) == records


def test_iter_records_auto_detection_trusts_a_valid_header_over_the_suffix(tmp_path):
    plain = write_plain(tmp_path / "plain-but-named.gz", [b"first", b"second"])
    assert list(iter_records(str(plain))) == [b"first", b"second"]


def test_iter_records_reads_tfx_example_gen_output():
    counts = {}
    for split in ("train", "eval"):
        files = sorted((TFX / "taxi_examples" / f"Split-{split}").glob("*.gz"))
        assert len(files) == 12
        counts[split] = sum(1 for f in files for _ in iter_records(str(f)))
    assert counts == {"train": 9909, "eval": 5091}


def test_iter_records_flipped_data_byte_names_file_record_and_offset(tmp_path):
    records = [b"alpha", b"bravo", b"charlie"]
    path = write_plain(tmp_path / "bad.tfrecord", records)
    data = bytearray(path.read_bytes())
    third = sum(16 + len(r) for r in records[:2])  # byte offset of record 2
    data[third + 12 + 3] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(BadInputError) as caught:
        list(iter_records(str(path)))
    message = str(caught.value)
    assert str(path) in message
    assert "record 2" in message
    assert f"byte offset {third}" in message
    assert "data" in message and "CRC" in message


def test_iter_records_flipped_byte_in_gzip_file_gives_uncompressed_offset(tmp_path):
    records = [b"alpha", b"bravo", b"charlie"]
    framed = bytearray(b"".join(reference_frame(r) for r in records))
    framed[16 + 5 + 12] ^= 0xFF  # first data byte of record 1
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(bytes(framed)))

    with pytest.raises(BadInputError, match=r"record 1 at byte offset 21 \(uncompressed\)"):
        list(iter_records(str(path)))


def test_iter_records_bad_length_crc_is_an_error(tmp_path):
    path = write_plain(tmp_path / "bad.tfrecord", [b"alpha", b"bravo"])
    data = bytearray(path.read_bytes())
    data[21 + 9] ^= 0x10  # inside record 1's length CRC
    path.write_bytes(bytes(data))

    with pytest.raises(BadInputError, match="record 1 at byte offset 21.*length"):
        list(iter_records(str(path)))


def test_iter_records_bad_length_is_caught_before_reading_the_data(tmp_path):
    path = write_plain(tmp_path / "bad.tfrecord", [b"alpha"])
    data = bytearray(path.read_bytes())
    data[7] = 0x7F  # a length of ~9e18 bytes: must fail on its CRC, not try to buffer it
    path.write_bytes(bytes(data))

    with pytest.raises(BadInputError, match="record 0 at byte offset 0.*length header"):
        list(iter_records(str(path)))


@pytest.mark.parametrize(
    ("cut", "what"),
    [
        (21 + 5, "length header has only 5 of 8 bytes"),
        (21 + 10, "length CRC has only 2 of 4 bytes"),
        (21 + 12 + 3, "5 data bytes but only 3 remain"),
        (21 + 12 + 5 + 1, "data CRC has only 1 of 4 bytes"),
    ],
)
def test_iter_records_truncated_file_names_the_record_and_offset(tmp_path, cut, what):
    path = write_plain(tmp_path / "cut.tfrecord", [b"alpha", b"bravo"])
    path.write_bytes(path.read_bytes()[:cut])

    with pytest.raises(BadInputError) as caught:
        list(iter_records(str(path)))
    message = str(caught.value)
    assert "truncated" in message
    assert "record 1 at byte offset 21" in message
    assert what in message
    assert str(path) in message


def test_iter_records_yields_the_good_records_before_the_truncation(tmp_path):
    path = write_plain(tmp_path / "cut.tfrecord", [b"alpha", b"bravo"])
    path.write_bytes(path.read_bytes()[:-2])

    seen = []
    with pytest.raises(BadInputError):
        for record in iter_records(str(path)):
            seen.append(record)
    assert seen == [b"alpha"]


def test_iter_records_truncated_gzip_file_is_an_error(tmp_path):
    source = TFX / "penguin_examples" / "Split-train" / "data_tfrecord-00000-of-00001.gz"
    path = tmp_path / "cut.gz"
    path.write_bytes(source.read_bytes()[:2000])

    with pytest.raises(BadInputError, match=re.escape(str(path)) + ".*truncated"):
        list(iter_records(str(path)))


def test_iter_records_rejects_unknown_compression(tmp_path):
    path = write_plain(tmp_path / "r.tfrecord", [b"a"])
    with pytest.raises(ConveyorError, match="'compression' parameter of iter_records"):
        list(iter_records(str(path), compression="ZSTD"))


def test_tfrecord_writer_write_outside_context_is_an_error(tmp_path):
    writer = TFRecordWriter(str(tmp_path / "r.tfrecord"))
    with pytest.raises(ConveyorError, match="context manager"):
        writer.write(b"a")
