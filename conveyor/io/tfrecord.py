"""TFRecord files, read and written without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64  length          little-endian
    uint32  masked CRC32C of the 8 length bytes
    bytes   data[length]
    uint32  masked CRC32C of data

where ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32). Files may be
gzip-compressed as a whole (TFX's ExampleGen writes ``*.gz``). Every CRC is checked on read;
a damaged or truncated file raises :class:`~conveyor.io.bad_rows.BadInputError` naming the
file, the record and its byte offset in the uncompressed stream.

Example::

    with TFRecordWriter("out/data.tfrecord.gz") as writer:
        writer.write(b"payload")
    assert list(iter_records("out/data.tfrecord.gz")) == [b"payload"]
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

import google_crc32c

from conveyor.io.bad_rows import BadInputError
from conveyor.io.filesystems import open_file
from conveyor.types import ConveyorError

__all__ = ["TFRecordWriter", "iter_records", "masked_crc32c"]

_CHUNK = 1 << 20  # bytes read (uncompressed) per call; memory stays near one chunk + one record
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"
_READ_COMPRESSIONS = (None, "GZIP", "auto")
_WRITE_COMPRESSIONS = (None, "GZIP")


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C that TFRecord framing stores for ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(uri: str, compression: str | None = "auto") -> Iterator[bytes]:
    """Yield the records of one TFRecord file, checking every CRC.

    ``compression`` is ``None`` (plain), ``"GZIP"``, or ``"auto"`` (the default): gzip when
    the file starts with the gzip magic bytes or its name ends in ``.gz``, unless it starts
    with a valid TFRecord header. The file is streamed in 1 MiB chunks.
    """
    compression = _check_compression(compression, _READ_COMPRESSIONS, "iter_records")
    with open_file(uri, "rb") as handle:
        if compression == "auto":
            compression = _detect_compression(handle, uri)
        if compression == "GZIP":
            with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
                yield from _read_framed(stream, uri)
        else:
            yield from _read_framed(handle, uri)


class TFRecordWriter:
    """Write records to one TFRecord file (gzip-compressed unless ``compression=None``).

    Gzip output is reproducible: the same records give the same bytes (no timestamp, no
    file name in the gzip header). Use as a context manager::

        with TFRecordWriter("data.tfrecord.gz") as writer:
            for record in records:
                writer.write(record)
    """

    def __init__(self, uri: str, compression: str | None = "GZIP") -> None:
        self.uri = uri
        self.compression = _check_compression(compression, _WRITE_COMPRESSIONS, "TFRecordWriter")
        self.records_written = 0
        self._opener: Any = None
        self._stream: IO[bytes] | None = None
        self._buffer = bytearray()

    def __enter__(self) -> TFRecordWriter:
        self._opener = open_file(self.uri, "wb")
        handle = self._opener.__enter__()
        if self.compression == "GZIP":
            # compresslevel 6 is zlib's default, what TensorFlow's writer uses.
            handle = gzip.GzipFile(filename="", fileobj=handle, mode="wb", compresslevel=6, mtime=0)
        self._stream = handle
        return self

    def write(self, record: bytes) -> None:
        """Append one record."""
        if self._stream is None:
            raise ConveyorError(
                f"TFRecordWriter for {self.uri} is not open. Use it as a context manager: "
                "`with TFRecordWriter(uri) as writer: writer.write(record)`."
            )
        length = len(record)
        length_bytes = _LENGTH.pack(length)
        buffer = self._buffer
        buffer += length_bytes
        buffer += _FOOTER.pack(masked_crc32c(length_bytes))
        buffer += record
        buffer += _FOOTER.pack(masked_crc32c(bytes(record)))
        self.records_written += 1
        if len(buffer) >= _CHUNK:
            self._stream.write(buffer)
            buffer.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        try:
            if stream is not None:
                if exc_type is None and self._buffer:
                    stream.write(self._buffer)
                self._buffer.clear()
                if self.compression == "GZIP":
                    stream.close()  # writes the gzip trailer; the file itself stays open
        finally:
            self._opener.__exit__(exc_type, exc, traceback)


def _check_compression(
    value: str | None, allowed: tuple[str | None, ...], owner: str
) -> str | None:
    if isinstance(value, str) and value.upper() in ("GZIP", ""):
        value = value.upper() or None
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ConveyorError(
            f"The 'compression' parameter of {owner} must be one of {choices}. "
            f"Got {value!r} instead."
        )
    return value


def _detect_compression(handle: IO[bytes], uri: str) -> str | None:
    head = handle.read(_HEADER.size)
    handle.seek(0)
    if len(head) == _HEADER.size:
        (stored,) = _FOOTER.unpack_from(head, 8)
        if masked_crc32c(head[:8]) == stored:
            return None
    if head.startswith(_GZIP_MAGIC) or uri.endswith(".gz"):
        return "GZIP"
    return None


def _read_framed(stream: IO[bytes], uri: str) -> Iterator[bytes]:
    """Parse records out of an uncompressed byte stream, a chunk at a time.

    The inner loop does per record only what it must: one header unpack, two CRCs, one
    slice, one footer unpack. A record longer than a chunk grows the buffer to fit it.
    """
    crc = google_crc32c.value
    unpack_header = _HEADER.unpack_from
    unpack_footer = _FOOTER.unpack_from
    buf = b""
    pos = 0  # where the next record starts in buf
    base = 0  # offset of buf[0] in the uncompressed stream
    index = 0
    while True:
        chunk = _read_chunk(stream, uri, base + len(buf), index)
        if not chunk:
            break
        base += pos
        buf = buf[pos:] + chunk if pos < len(buf) else chunk
        pos = 0
        end = len(buf)
        while end - pos >= 12:
            length, length_crc = unpack_header(buf, pos)
            if _mask(crc(buf[pos : pos + 8])) != length_crc:
                raise _corrupt(
                    uri, index, base + pos, "the CRC of its length header does not match"
                )
            stop = pos + 16 + length
            if stop > end:
                break
            data = buf[pos + 12 : stop - 4]
            if _mask(crc(data)) != unpack_footer(buf, stop - 4)[0]:
                raise _corrupt(
                    uri, index, base + pos, f"the CRC of its {length} data bytes does not match"
                )
            yield data
            pos = stop
            index += 1
    if pos < len(buf):
        raise _truncated(uri, index, base + pos, len(buf) - pos, buf[pos:])


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _read_chunk(stream: IO[bytes], uri: str, offset: int, index: int) -> bytes:
    try:
        return stream.read(_CHUNK)
    except EOFError as exc:  # gzip stream cut short
        raise BadInputError(
            f"TFRecord file {uri} is truncated: its gzip stream ends early, around record "
            f"{index} (uncompressed byte offset {offset}). The file was cut short (an "
            "interrupted write or copy); re-create or re-copy it, or remove it from the input."
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise BadInputError(
            f"TFRecord file {uri} is not valid gzip near uncompressed byte offset {offset} "
            f"(record {index}): {exc}. Re-create or re-copy the file, or read it with "
            "compression=None if it is not compressed."
        ) from exc


def _corrupt(uri: str, index: int, offset: int, what: str) -> BadInputError:
    return BadInputError(
        f"Corrupt TFRecord file {uri}: record {index} at byte offset {offset} (uncompressed): "
        f"{what}. The file is damaged or is not a TFRecord file; re-create or re-copy it "
        "from its source, or remove it from the input."
    )


def _truncated(uri: str, index: int, offset: int, have: int, tail: bytes) -> BadInputError:
    if have < 8:
        what = f"its length header has only {have} of 8 bytes"
    elif have < 12:
        what = f"its length CRC has only {have - 8} of 4 bytes"
    else:
        length = _LENGTH.unpack_from(tail)[0]
        if have < 12 + length:
            what = f"it should hold {length} data bytes but only {have - 12} remain"
        else:
            what = f"its data CRC has only {have - 12 - length} of 4 bytes"
    return BadInputError(
        f"TFRecord file {uri} is truncated: record {index} at byte offset {offset} "
        f"(uncompressed) is incomplete: {what}. The file was cut short (an interrupted write "
        "or copy); re-create or re-copy it, or remove it from the input."
    )
