"""Files on an object store (moto's S3 server on loopback) work like local files."""

from __future__ import annotations

from pathlib import Path

from conveyor.io import filesystems as fsx

PENGUINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "penguin"


def test_filesystems_s3_round_trip(s3_endpoint):
    uri = "s3://conveyor/fs-test/folder/data.csv"
    with fsx.open_file(uri, "wb") as handle:
        handle.write(b"a,b\n1,2\n")
    assert fsx.exists(uri) and fsx.size(uri) == 8
    assert fsx.list_files("s3://conveyor/fs-test") == [uri]
    assert fsx.glob("s3://conveyor/fs-test/*/*.csv") == [uri]
    with fsx.open_file(uri) as handle:
        assert handle.read() == b"a,b\n1,2\n"


def test_filesystems_local_listing_skips_hidden(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.csv").write_text("1")
    (tmp_path / ".hidden").write_text("1")
    assert fsx.list_files(str(tmp_path)) == [str(tmp_path / "a" / "x.csv")]
