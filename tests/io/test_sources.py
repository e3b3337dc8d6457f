from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conveyor.io import sources
from conveyor.io.bad_rows import BadInputError, BadRows
from conveyor.types import ConveyorError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def _read(uri: str, schema: pa.Schema, bad_rows: BadRows | None = None, fmt: str = "csv", **kw):
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    batches = list(sources.read_batches(uri, fmt, schema=schema, bad_rows=bad_rows, **kw))
    for batch in batches:
        assert batch.schema.equals(schema, check_metadata=True)
    return pa.Table.from_batches(batches, schema=schema)


def _types(schema: pa.Schema) -> dict[str, pa.DataType]:
    return {field.name: field.type for field in schema}


# ---------------------------------------------------------------------------- formats
def test_format_for_extensions():
    assert sources.format_for("data/a.csv") == "csv"
    assert sources.format_for("s3://bucket/x/part-0.PARQUET") == "parquet"
    assert sources.format_for("a.pq") == "parquet"
    assert sources.format_for("a.ndjson") == "jsonl"
    assert sources.format_for("a.json") == "jsonl"
    assert sources.format_for("a.avro") == "avro"
    assert sources.format_for("data_tfrecord-00000-of-00001.gz") == "tfrecord"
    assert sources.format_for("a.tfrecords") == "tfrecord"


def test_format_for_unknown_extension_names_the_file():
    with pytest.raises(ConveyorError, match=r"notes\.txt"):
        sources.format_for("in/notes.txt")
    with pytest.raises(ConveyorError, match="gzipped csv"):
        sources.format_for("in/a.csv.gz")


def test_infer_schema_rejects_an_unknown_format(tmp_path):
    with pytest.raises(ConveyorError, match="'format' parameter must be one of"):
        sources.infer_schema([str(tmp_path / "a.csv")], "xlsx")


# ---------------------------------------------------------------------------- CSV types
def test_infer_schema_int_column_with_missing_value_stays_int64_in_both_files(tmp_path):
    a = _write(tmp_path / "a.csv", "id,n\n1,10\n2,\n3,30\n")
    b = _write(tmp_path / "b.csv", "id,n\n4,40\n5,50\n")

    schema = sources.infer_schema([a, b], "csv")

    assert _types(schema) == {"id": pa.int64(), "n": pa.int64()}
    assert _read(a, schema).column("n").to_pylist() == [10, None, 30]
    assert _read(b, schema).column("n").to_pylist() == [40, 50]


def test_infer_schema_int_in_one_file_float_in_another_is_float64_in_both(tmp_path):
    a = _write(tmp_path / "a.csv", "x\n1\n2\n")
    b = _write(tmp_path / "b.csv", "x\n1.5\n")

    schema = sources.infer_schema([a, b], "csv")

    assert schema.field("x").type == pa.float64()
    assert _read(a, schema).column("x").type == pa.float64()
    assert _read(b, schema).column("x").to_pylist() == [1.5]


def test_infer_schema_mixed_kinds_across_files(tmp_path):
    a = _write(
        tmp_path / "a.csv", "num_text,bool_num,bool_text,empty_here,when\n1,true,true,,2024-01-02\n"
    )
    b = _write(
        tmp_path / "b.csv",
        "num_text,bool_num,bool_text,empty_here,when\nx,7,maybe,3,2024-02-03 10:00:00\n",
    )

    schema = sources.infer_schema([a, b], "csv")

    assert _types(schema) == {
        "num_text": pa.string(),
        "bool_num": pa.string(),
        "bool_text": pa.string(),
        "empty_here": pa.int64(),  # null-only in one file, int in the other
        "when": pa.string(),  # dates and timestamps stay as written
    }
    assert _read(b, schema).column("when").to_pylist() == ["2024-02-03 10:00:00"]


def test_infer_schema_keeps_bool_and_reads_empty_string_as_empty(tmp_path):
    a = _write(tmp_path / "a.csv", "flag,name\ntrue,x\n,\nFalse,z\n")

    schema = sources.infer_schema([a], "csv")
    table = _read(a, schema)

    assert _types(schema) == {"flag": pa.bool_(), "name": pa.string()}
    assert table.column("flag").to_pylist() == [True, None, False]
    assert table.column("name").to_pylist() == ["x", "", "z"]  # TFX-like: "" stays ""


def test_infer_schema_marks_inferred_columns(tmp_path):
    a = _write(tmp_path / "a.csv", "x,y\n1,2\n")

    schema = sources.infer_schema([a], "csv", schema=pa.schema([("x", pa.float64())]))

    assert json.loads(schema.metadata[sources.INFERRED_COLUMNS]) == ["y"]


def test_infer_schema_given_schema_fixes_types(tmp_path):
    a = _write(tmp_path / "a.csv", "zip,score,other\n02139,1,x\n10001,2,y\n")
    given = pa.schema([("zip", pa.string()), ("score", pa.float64())])

    schema = sources.infer_schema([a], "csv", schema=given)
    table = _read(a, schema)

    assert _types(schema) == {"zip": pa.string(), "score": pa.float64(), "other": pa.string()}
    assert table.column("zip").to_pylist() == ["02139", "10001"]
    assert table.column("score").to_pylist() == [1.0, 2.0]


def test_infer_schema_given_list_type_reads_one_element_lists(tmp_path):
    a = _write(tmp_path / "a.csv", "tags\nx\n\n")

    schema = sources.infer_schema([a], "csv", schema=pa.schema([("tags", pa.list_(pa.string()))]))

    assert _read(a, schema).column("tags").to_pylist() == [["x"]]


def test_infer_schema_given_column_missing_from_data_names_column_and_file(tmp_path):
    a = _write(tmp_path / "a.csv", "x\n1\n")

    with pytest.raises(ConveyorError) as caught:
        sources.infer_schema([a], "csv", schema=pa.schema([("label", pa.int64())]))

    assert "'label'" in str(caught.value)
    assert a in str(caught.value)


def test_infer_schema_different_columns_name_both_files(tmp_path):
    a = _write(tmp_path / "a.csv", "x,y\n1,2\n")
    b = _write(tmp_path / "b.csv", "x,z\n1,2\n")

    with pytest.raises(ConveyorError) as caught:
        sources.infer_schema([a, b], "csv")

    message = str(caught.value)
    assert a in message and b in message
    assert "only in" in message and "'y'" not in message and "y" in message and "z" in message


def test_infer_schema_same_columns_in_another_order_read_alike(tmp_path):
    a = _write(tmp_path / "a.csv", "x,y\n1,a\n")
    b = _write(tmp_path / "b.csv", "y,x\nb,2\n")

    schema = sources.infer_schema([a, b], "csv")

    assert _read(b, schema).to_pydict() == {"x": [2], "y": ["b"]}


def test_header_only_or_empty_csv_is_an_error(tmp_path):
    header_only = _write(tmp_path / "h.csv", "x,y\n")
    empty = _write(tmp_path / "e.csv", "")
    ok = _write(tmp_path / "ok.csv", "x,y\n1,2\n")

    with pytest.raises(BadInputError, match=r"h\.csv has a header but no rows"):
        sources.infer_schema([ok, header_only], "csv")
    with pytest.raises(BadInputError, match=r"e\.csv is empty"):
        sources.infer_schema([empty], "csv")
    schema = sources.infer_schema([ok], "csv")
    with pytest.raises(BadInputError, match=r"h\.csv has a header but no rows"):
        _read(header_only, schema)


# ---------------------------------------------------------------------------- CSV bad rows
GOOD = "1,a,1.5\n"
BAD_CASES = {  # data, bad line, reason, the row's text
    "wrong number of fields": (f"x,y,z\n{GOOD}2,b\n{GOOD}", 3, "wrong number of fields", "2,b"),
    "unterminated quote": (
        f'x,y,z\n{GOOD}{GOOD}2,"b,2.5\n{GOOD}',
        4,
        "unterminated quote",
        '2,"b,2.5',
    ),
    "value not of the fixed type": (
        f"x,y,z\n{GOOD}two,b,2.5\n{GOOD}",
        3,
        "invalid int64 value",
        "two,b,2.5",
    ),
    "invalid UTF-8": (
        f"x,y,z\n{GOOD}".encode() + b"2,\xff\xfe,2.5\n" + GOOD.encode(),
        3,
        "invalid UTF-8",
        "2,\\xff\\xfe,2.5",
    ),
}
SCHEMA = pa.schema([("x", pa.int64()), ("y", pa.string()), ("z", pa.float64())])


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_row_in_error_mode_names_file_line_and_reason(tmp_path, case):
    data, line, reason, _ = BAD_CASES[case]
    uri = _write(tmp_path / "input.csv", data)

    with pytest.raises(BadInputError) as caught:
        _read(uri, SCHEMA, BadRows("error"))

    message = str(caught.value)
    assert f"{uri}, line {line}: {reason}" in message


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_row_in_skip_mode_keeps_the_good_rows(tmp_path, case):
    data, line, reason, _ = BAD_CASES[case]
    uri = _write(tmp_path / "input.csv", data)
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    good = 3 if case == "unterminated quote" else 2
    assert table.to_pydict() == {"x": [1] * good, "y": ["a"] * good, "z": [1.5] * good}
    assert bad_rows.count == 1
    assert bad_rows.summary()["bad_row_reasons"] == {reason: 1}
    assert bad_rows.samples[0].line == line


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_row_in_quarantine_mode_is_written_as_json(tmp_path, case):
    data, line, reason, text = BAD_CASES[case]
    uri = _write(tmp_path / "input.csv", data)
    side = io.StringIO()

    _read(uri, SCHEMA, BadRows("quarantine", side))

    records = [json.loads(text) for text in side.getvalue().splitlines()]
    assert len(records) == 1
    assert records[0]["file"] == uri
    assert records[0]["line"] == line
    assert records[0]["reason"].startswith(reason)
    assert records[0]["text"] == text


def test_bad_rows_line_numbers_count_multi_line_values_and_blank_lines(tmp_path):
    data = 'x,y,z\n1,"two\nlines",1.5\n\n2,b\n3,"three\n\nlines",2.5\n\nbad,c,3.5\n4,d,4.5\n\n'
    uri = _write(tmp_path / "input.csv", data)
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert table.column("x").to_pylist() == [1, 3, 4]
    assert table.column("y").to_pylist() == ["two\nlines", "three\n\nlines", "d"]
    assert [(row.line, row.reason.split(":")[0]) for row in bad_rows.samples] == [
        (5, "wrong number of fields"),
        (10, "invalid int64 value"),
    ]


def test_bad_rows_deep_in_a_large_file_are_found_once_with_their_line(tmp_path):
    rows = 300_000
    lines = [f"{i},name {i},{i}.5" for i in range(rows)]
    lines[250_000] = "oops,x,1.0"
    lines[250_010] = "7,y"
    uri = _write(tmp_path / "big.csv", "x,y,z\n" + "\n".join(lines) + "\n")
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert table.num_rows == rows - 2
    assert table.column("x").to_numpy()[-1] == rows - 1
    assert [row.line for row in bad_rows.samples] == [250_002, 250_012]
    with pytest.raises(BadInputError, match=r"big\.csv, line 250002: invalid int64"):
        _read(uri, SCHEMA, BadRows("error"))


def test_unterminated_quote_past_the_read_window_is_one_bad_row(tmp_path):
    body = "".join(f"{i},n{i},{i}.5\n" for i in range(400_000))  # ~7 MB after the open quote
    uri = _write(tmp_path / "open.csv", f'x,y,z\n1,a,1.5\n2,"open,2.5\n{body}')
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert bad_rows.count == 1
    assert bad_rows.samples[0].line == 3
    assert bad_rows.samples[0].reason.startswith("unterminated quote")
    assert table.num_rows == 1 + 400_000


def test_open_quote_in_the_last_record_with_the_right_field_count(tmp_path):
    uri = _write(tmp_path / "input.csv", 'x,z,y\n1,1.5,a\n2,2.5,"b\n3,3.5,c\n')
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert table.column("y").to_pylist() == ["a", "c"]
    assert [(r.line, r.reason.split(":")[0], r.text) for r in bad_rows.samples] == [
        (3, "unterminated quote", '2,2.5,"b')
    ]


def test_quoted_multi_line_values_across_many_read_windows(tmp_path):
    rows = 200_000
    lines = [
        f'{i},"one, of {i}\nline ""two""",{i}.5' if i % 3 == 0 else f"{i},plain {i},{i}.5"
        for i in range(rows)
    ]
    uri = _write(tmp_path / "quoted.csv", "x,y,z\n" + "\n".join(lines) + "\n")
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert bad_rows.count == 0
    assert table.column("x").to_pylist() == list(range(rows))
    assert table.column("y")[rows - 2].as_py() == f'one, of {rows - 2}\nline "two"'


def _quoted_rows_with(special: str, newline_at: int) -> str:
    """Quoted CSV rows with ``special`` (a record) placed so that its first newline is the
    file's character ``newline_at``, then more rows."""
    head = "x,z,y\n"  # the string last: an open quote at the cut leaves the fields whole
    rows, i = [], 0
    size = len(head)
    first_line = special.index("\n") + 1
    while size + 60 + first_line <= newline_at:
        row = f'{i},{i}.5,"name {i:07d}"\n'
        rows.append(row)
        size += len(row)
        i += 1
    pad = newline_at + 1 - size - first_line  # the length of a row that fills the gap
    lead, end = f'{i},0.5,"', '"\n'
    rows.append(lead + "p" * (pad - len(lead) - len(end)) + end)
    rows.append(special)
    rows.extend(f'{j},{j}.5,"tail {j:07d}"\n' for j in range(i + 1, i + 100_000))
    text = head + "".join(rows)
    assert text[newline_at] == "\n" and text.index(special) + special.index("\n") == newline_at
    return text


@pytest.mark.parametrize(
    ("where", "special"),
    [
        ("inside a block", '9,9.5,"two\nlines"\n'),
        ("inside a block, a bare CR line after", '9,9.5,"two\nlines"\r'),
        ("at a parse block's end", '9,9.5,"two\nlines"\n'),
        ("at the window's end", '9,9.5,"two\n' + "l" * 300 + '"\n'),
        ("at the window's end, a bare CR line after", '9,9.5,"two\n' + "l" * 300 + '"\r'),
        ("a blank line", '9,9.5,"one line"\n\n'),
    ],
    ids=lambda value: value if " " in value else "",
)
def test_quoted_files_read_right_where_a_line_is_not_a_record(
    tmp_path, monkeypatch, where, special
):
    # Windows of 2 MiB parsed in blocks of 1 MiB: a line that is not a record lands where
    # the fast read's assumption (each line one record) breaks in each way.
    from conveyor.io import _csv

    window = 2 * 1024 * 1024
    monkeypatch.setattr(_csv, "_window", lambda size: window)
    newline_at = window // 3 if "inside" in where else window - 100
    if where == "at a parse block's end":
        newline_at = window // 2 - 1
    text = _quoted_rows_with(special, newline_at)
    uri = _write(tmp_path / "quoted.csv", text)
    expected = pcsv.read_csv(
        pa.BufferReader(text.encode()),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types=_types(SCHEMA), strings_can_be_null=False),
    )
    bad_rows = BadRows("error")

    table = _read(uri, SCHEMA, bad_rows)

    assert table.equals(expected.select(SCHEMA.names))
    assert len(text) > 1.5 * window and bad_rows.count == 0


def test_well_quoted_files_are_cut_without_following_quotes(tmp_path, monkeypatch):
    from conveyor.io import _csv

    monkeypatch.setattr(_csv, "_window", lambda size: 1024 * 1024)
    lines = [f'{i},"name, {i}",{i}.5' for i in range(200_000)]
    uri = _write(tmp_path / "quoted.csv", '"x","y","z"\n' + "\n".join(lines))
    cuts = []
    monkeypatch.setattr(_csv, "_cut", lambda *args: cuts.append(args))

    table = _read(uri, SCHEMA)

    assert table.column("y").to_pylist() == [f"name, {i}" for i in range(200_000)]
    assert cuts == []


def test_stray_quote_then_a_bad_row_keeps_every_good_row_once(tmp_path):
    rows = 200_000
    lines = [f"{i},v{i},{i}.5" for i in range(rows)]
    lines[10] = '10,ab"c,10.5'  # pyarrow reads a quote inside a field as a character
    lines[190_000] = "oops,q,1"
    uri = _write(tmp_path / "stray.csv", "x,y,z\n" + "\n".join(lines) + "\n")
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert table.column("x").to_pylist() == [i for i in range(rows) if i != 190_000]
    assert table.column("y")[10].as_py() == 'ab"c'
    assert [row.line for row in bad_rows.samples] == [190_002]


def test_crlf_line_endings(tmp_path):
    uri = _write(tmp_path / "crlf.csv", 'x,y,z\r\n1,"a\r\nb",1.5\r\n2,b\r\n3,c,3.5\r\n')
    bad_rows = BadRows("skip")

    table = _read(uri, SCHEMA, bad_rows)

    assert table.column("x").to_pylist() == [1, 3]
    assert table.column("y").to_pylist() == ["a\r\nb", "c"]
    assert bad_rows.samples[0].line == 4


# ---------------------------------------------------------------------------- widening
def _past_the_sample(tmp_path: Path, late_value: str) -> str:
    rows = "".join(f"{i},{i}\n" for i in range(5000))  # ~50 KB
    return _write(tmp_path / "late.csv", f"x,y\n{rows}{late_value},1\n")


def test_value_past_the_sample_raises_schema_widening(tmp_path):
    uri = _past_the_sample(tmp_path, "2.5")
    schema = sources.infer_schema([uri], "csv", sample_bytes=1024)
    assert schema.field("x").type == pa.int64()

    with pytest.raises(sources.SchemaWidening) as caught:
        _read(uri, schema, BadRows("error"))

    widening = caught.value
    assert (widening.column, widening.new_type, widening.line) == ("x", pa.float64(), 5002)
    wider = sources.widen(schema, widening)
    assert wider.field("x").type == pa.float64()
    assert wider.metadata == schema.metadata
    table = _read(uri, wider)
    assert table.num_rows == 5001
    assert table.column("x").to_pylist()[-1] == 2.5


def test_widen_by_column_and_kind_moves_up_to_string(tmp_path):
    schema = pa.schema([("x", pa.int64()), ("b", pa.bool_())])

    assert sources.widen(schema, "x", pa.float64()).field("x").type == pa.float64()
    assert sources.widen(schema, "x", pa.string()).field("x").type == pa.string()
    assert sources.widen(schema, "b", pa.int64()).field("b").type == pa.string()
    with pytest.raises(ConveyorError, match="'nope'"):
        sources.widen(schema, "nope", pa.string())


def test_text_past_the_sample_widens_to_string(tmp_path):
    uri = _past_the_sample(tmp_path, "n/a-ish")
    schema = sources.infer_schema([uri], "csv", sample_bytes=1024)

    with pytest.raises(sources.SchemaWidening) as caught:
        _read(uri, schema)

    assert caught.value.new_type == pa.string()
    assert str(5002) in str(caught.value)


def test_value_past_the_sample_in_a_fixed_column_is_a_bad_row(tmp_path):
    uri = _past_the_sample(tmp_path, "2.5")
    schema = sources.infer_schema([uri], "csv", sample_bytes=1024).remove_metadata()
    bad_rows = BadRows("skip")

    table = _read(uri, schema, bad_rows)

    assert table.num_rows == 5000
    assert [(r.line, r.reason) for r in bad_rows.samples] == [
        (5002, "invalid int64 value: column 'x' has '2.5'")
    ]


def test_schema_widening_pickles():
    widening = sources.SchemaWidening("x", pa.float64(), file="a.csv", line=3, value="2.5")

    copy = pickle.loads(pickle.dumps(widening))

    assert (copy.column, copy.new_type, copy.line, str(copy)) == (
        "x",
        pa.float64(),
        3,
        str(widening),
    )


# ---------------------------------------------------------------------------- shared CSV data
def test_multi_line_csv_from_tfx():
    uri = str(DATA / "external" / "csv_multi_line_string.csv")

    schema = sources.infer_schema([uri], "csv")
    table = _read(uri, schema)

    assert _types(schema) == {"A": pa.int64(), "B": pa.string(), "C": pa.int64(), "D": pa.int64()}
    assert table.num_rows == 3
    assert table.column("B").to_pylist() == ["2", '"2,\n"3",\n4\n5"', "2"]
    assert table.column("D").to_pylist() == [4, 7, 4]


def test_csv_with_an_all_empty_column_from_tfx():
    uri = str(DATA / "external" / "csv_empty.csv")

    schema = sources.infer_schema([uri], "csv")
    table = _read(uri, schema)

    assert _types(schema) == {
        "A": pa.int64(),
        "B": pa.string(),
        "C": pa.string(),
        "D": pa.float64(),
    }
    assert table.to_pydict() == {
        "A": [1, 2, 3],
        "B": ["", "", ""],
        "C": ["x", "y", ""],
        "D": [0.1, 0.2, 0.3],
    }


def test_chicago_taxi_csv_reads_with_nullable_ints():
    uri = str(DATA / "chicago_taxi" / "data.csv")

    schema = sources.infer_schema([uri], "csv")
    table = _read(uri, schema, batch_size=4000)

    assert table.num_rows == 15002
    assert schema.field("pickup_community_area").type == pa.int64()
    assert schema.field("trip_start_timestamp").type == pa.int64()
    assert table.column("pickup_community_area").null_count > 0


def test_batches_hold_at_most_batch_size_rows(tmp_path):
    uri = _write(tmp_path / "a.csv", "x\n" + "".join(f"{i}\n" for i in range(1000)))
    schema = sources.infer_schema([uri], "csv")

    batches = list(
        sources.read_batches(uri, "csv", schema=schema, bad_rows=BadRows(), batch_size=64)
    )

    assert max(b.num_rows for b in batches) == 64
    assert sum(b.num_rows for b in batches) == 1000
    with pytest.raises(ConveyorError, match="'batch_size' parameter"):
        sources.read_batches(uri, "csv", schema=schema, bad_rows=BadRows(), batch_size=0)


def test_large_csv_streams_in_bounded_memory(tmp_path):
    rng = np.random.default_rng(0)
    rows = 700_000
    table = pa.table(
        {
            "id": np.arange(rows),
            "value": rng.normal(size=rows),
            "name": pa.array([f"customer {i % 9973} of the region" for i in range(rows)]),
            "count": rng.integers(0, 1000, rows),
        }
    )
    path = tmp_path / "large.csv"
    pcsv.write_csv(table, path)
    size = path.stat().st_size
    assert size > 40_000_000
    schema = sources.infer_schema([str(path)], "csv")
    before = pa.total_allocated_bytes()

    peak, seen = 0, 0
    for batch in sources.read_batches(str(path), "csv", schema=schema, bad_rows=BadRows()):
        peak = max(peak, pa.total_allocated_bytes() - before)
        seen += batch.num_rows
        del batch

    assert seen == rows
    # A window is parsed while the one before it is handed out: a few windows at most, each
    # about as large in Arrow as in CSV; never the file.
    window = sources._window(size)
    assert window < size / 8
    assert peak < 4 * window, (
        f"peak Arrow memory {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"
    )


# ---------------------------------------------------------------------------- Parquet, Avro
def test_taxi_parquet_and_avro_read_alike():
    parquet = str(DATA / "external" / "taxi.parquet")
    avro = str(DATA / "external" / "taxi.avro")

    p_schema = sources.infer_schema([parquet], "parquet")
    a_schema = sources.infer_schema([avro], "avro")
    p_table = _read(parquet, p_schema, fmt="parquet", batch_size=3000)
    a_table = _read(avro, a_schema, fmt="avro", batch_size=3000)

    assert p_table.num_rows == a_table.num_rows == 10000
    assert set(p_schema.names) == set(a_schema.names)
    assert p_schema.field("company").type == a_schema.field("company").type == pa.string()
    assert a_schema.field("trip_start_hour").type == pa.int64()
    assert a_schema.field("fare").type == pa.float64()  # Avro float, read as double
    for name in p_schema.names:
        p_values = p_table.column(name)
        a_values = a_table.column(name)
        if name == "company":  # TFX's Parquet file spells the missing companies "nan"
            p_values = pa.chunked_array([[None if v == "nan" else v for v in p_values.to_pylist()]])
        assert p_values.null_count == a_values.null_count, name
        if pa.types.is_floating(p_values.type) or pa.types.is_floating(a_values.type):
            p_np = p_values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            a_np = a_values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            np.testing.assert_allclose(a_np, p_np, rtol=1e-6, equal_nan=True, err_msg=name)
        else:
            assert p_values.to_pylist() == a_values.to_pylist(), name


def test_parquet_files_unify_int_and_float(tmp_path):
    a, b = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    pq.write_table(pa.table({"x": pa.array([1, 2], pa.int32()), "s": ["a", "b"]}), a)
    pq.write_table(pa.table({"x": [0.5], "s": ["c"]}), b)

    schema = sources.infer_schema([a, b], "parquet")

    assert _types(schema) == {"x": pa.float64(), "s": pa.string()}
    assert _read(a, schema, fmt="parquet").column("x").to_pylist() == [1.0, 2.0]


def test_parquet_value_that_does_not_fit_a_fixed_type_is_a_bad_row(tmp_path):
    uri = str(tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": ["1", "two", "3"]}), uri)
    schema = sources.infer_schema([uri], "parquet", schema=pa.schema([("x", pa.int64())]))
    bad_rows = BadRows("skip")

    table = _read(uri, schema, bad_rows, fmt="parquet")

    assert table.column("x").to_pylist() == [1, 3]
    assert (bad_rows.samples[0].line, bad_rows.samples[0].reason) == (
        2,
        "invalid int64 value: column 'x' has 'two'",
    )


def test_avro_types_and_unsupported_union(tmp_path):
    schema = {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "i", "type": ["null", "int"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "raw", "type": "bytes"},
            {"name": "ok", "type": "boolean"},
        ],
    }
    uri = str(tmp_path / "a.avro")
    with open(uri, "wb") as handle:
        fastavro.writer(handle, schema, [{"i": None, "tags": ["a"], "raw": b"\x00", "ok": True}])

    inferred = sources.infer_schema([uri], "avro")
    table = _read(uri, inferred, fmt="avro")

    assert _types(inferred) == {
        "i": pa.int64(),
        "tags": pa.list_(pa.string()),
        "raw": pa.binary(),
        "ok": pa.bool_(),
    }
    assert table.to_pylist() == [{"i": None, "tags": ["a"], "raw": b"\x00", "ok": True}]

    schema["fields"].append({"name": "either", "type": ["int", "string"]})
    bad = str(tmp_path / "b.avro")
    with open(bad, "wb") as handle:
        fastavro.writer(handle, schema, [])
    with pytest.raises(BadInputError, match="Field 'either'.*union"):
        sources.infer_schema([bad], "avro")


# ---------------------------------------------------------------------------- JSON lines
def test_jsonl_infers_across_files_and_reads(tmp_path):
    a = _write(
        tmp_path / "a.jsonl", '{"x": 1, "s": "a", "t": "2024-01-01"}\n{"x": null, "s": "b"}\n'
    )
    b = _write(tmp_path / "b.jsonl", '{"x": 2.5, "s": "c", "t": "2024-01-02", "l": [1, 2]}\n')

    schema = sources.infer_schema([a, b], "jsonl")
    table = _read(a, schema, fmt="jsonl")

    assert _types(schema) == {
        "x": pa.float64(),
        "s": pa.string(),
        "t": pa.string(),
        "l": pa.list_(pa.int64()),
    }
    assert table.to_pydict() == {
        "x": [1.0, None],
        "s": ["a", "b"],
        "t": ["2024-01-01", None],
        "l": [None, None],
    }


def test_jsonl_bad_line_is_a_bad_row(tmp_path):
    uri = _write(tmp_path / "a.jsonl", '{"x": 1}\n{"x": 2\n\n{"x": "three"}\n{"x": 4}\n')
    schema = pa.schema([("x", pa.int64())])
    bad_rows = BadRows("skip")

    table = _read(uri, schema, bad_rows, fmt="jsonl")

    assert table.column("x").to_pylist() == [1, 4]
    assert [(row.line, row.reason.split(":")[0]) for row in bad_rows.samples] == [
        (2, "invalid JSON line"),
        (4, "invalid JSON line"),
    ]
    with pytest.raises(BadInputError, match=r"a\.jsonl, line 2: invalid JSON line"):
        _read(uri, schema, BadRows("error"), fmt="jsonl")


def test_jsonl_float_past_the_sample_widens_an_inferred_int(tmp_path):
    rows = "".join(json.dumps({"x": i}) + "\n" for i in range(2000))
    uri = _write(tmp_path / "a.jsonl", rows + '{"x": 0.5}\n')
    schema = sources.infer_schema([uri], "jsonl", sample_bytes=1024)

    with pytest.raises(sources.SchemaWidening) as caught:
        _read(uri, schema, fmt="jsonl")

    assert (caught.value.column, caught.value.new_type, caught.value.line) == (
        "x",
        pa.float64(),
        2001,
    )
    assert _read(uri, sources.widen(schema, caught.value), fmt="jsonl").num_rows == 2001
