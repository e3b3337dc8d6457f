from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from conveyor.io import tfmd
from conveyor.types import ConveyorError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _schema(text: str) -> schema_pb2.Schema:
    return text_format.Parse(text, schema_pb2.Schema())


def test_load_schema_reads_tfx_penguin_schemas():
    expected = pa.schema(
        [
            ("body_mass_g", pa.float64()),
            ("culmen_depth_mm", pa.float64()),
            ("culmen_length_mm", pa.float64()),
            ("flipper_length_mm", pa.float64()),
            ("species", pa.int64()),
        ]
    )
    for path in (
        DATA / "tfx_artifacts" / "penguin_schema.pbtxt",
        DATA / "penguin" / "schema_user_provided.pbtxt",
    ):
        assert tfmd.arrow_schema(tfmd.load_schema(str(path))) == expected


def test_load_schema_reads_tfdv_taxi_schema():
    schema = tfmd.load_schema(str(DATA / "tfx_artifacts" / "taxi_schema.pbtxt"))
    arrow = tfmd.arrow_schema(schema)

    assert len(arrow) == 18
    assert arrow.field("company").type == pa.string()  # value_count {min: 1 max: 1}
    assert arrow.field("dropoff_census_tract").type == pa.int64()
    assert arrow.field("fare").type == pa.float64()  # shape {dim {size: 1}}
    assert arrow.field("payment_type").type == pa.string()
    assert len(schema.string_domain) == 2


def test_load_schema_accepts_a_folder(tmp_path):
    tfmd.save_schema(_schema('feature { name: "a" type: INT }'), str(tmp_path))

    assert (tmp_path / "schema.pbtxt").exists()
    assert tfmd.load_schema(str(tmp_path)).feature[0].name == "a"


def test_load_schema_parse_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text('feature {\n  name: "a"\n  type: INTEGER\n}\n')

    with pytest.raises(ConveyorError) as caught:
        tfmd.load_schema(str(path))

    message = str(caught.value)
    assert str(path) in message
    assert "line 3, column 9" in message
    assert "INTEGER" in message


def test_load_schema_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConveyorError, match="no such file"):
        tfmd.load_schema(str(tmp_path / "nope.pbtxt"))


def test_save_schema_round_trips(tmp_path):
    schema = tfmd.load_schema(str(DATA / "tfx_artifacts" / "taxi_schema.pbtxt"))
    path = str(tmp_path / "out" / "schema.pbtxt")

    tfmd.save_schema(schema, path)

    assert tfmd.load_schema(path) == schema
    assert Path(path).read_text().startswith("# proto-file: tensorflow_metadata")


def test_arrow_schema_scalar_or_list():
    schema = _schema(
        """
        feature { name: "shape_one" type: INT shape { dim { size: 1 } } }
        feature { name: "shape_three" type: INT shape { dim { size: 3 } } }
        feature { name: "count_one" type: FLOAT value_count { min: 1 max: 1 } }
        feature { name: "count_many" type: FLOAT value_count { min: 1 max: 5 } }
        feature { name: "count_unbounded" type: FLOAT value_count { min: 1 } }
        feature { name: "required" type: BYTES presence { min_fraction: 1.0 } }
        feature { name: "optional" type: BYTES presence { min_count: 1 } }
        feature { name: "nested" type: INT value_counts { value_count { } value_count { } } }
        """
    )

    types = {f.name: f.type for f in tfmd.arrow_schema(schema)}

    assert types == {
        "shape_one": pa.int64(),
        "shape_three": pa.list_(pa.int64()),
        "count_one": pa.float64(),
        "count_many": pa.list_(pa.float64()),
        "count_unbounded": pa.list_(pa.float64()),
        "required": pa.string(),
        "optional": pa.list_(pa.string()),
        "nested": pa.list_(pa.list_(pa.int64())),
    }


def test_arrow_schema_image_bytes_are_binary_and_struct_is_struct():
    schema = _schema(
        """
        feature { name: "image" type: BYTES image_domain { } value_count { max: 1 } }
        feature {
          name: "point" type: STRUCT value_count { max: 1 }
          struct_domain {
            feature { name: "x" type: FLOAT value_count { max: 1 } }
            feature { name: "tags" type: BYTES }
          }
        }
        """
    )

    types = {f.name: f.type for f in tfmd.arrow_schema(schema)}

    assert types["image"] == pa.binary()
    assert types["point"] == pa.struct([("x", pa.float64()), ("tags", pa.list_(pa.string()))])


def test_arrow_schema_leaves_out_deprecated_features():
    schema = _schema(
        """
        feature { name: "kept" type: INT value_count { max: 1 } }
        feature { name: "old" type: INT lifecycle_stage: DEPRECATED }
        """
    )

    assert tfmd.arrow_schema(schema).names == ["kept"]


def test_arrow_schema_untyped_feature_is_an_error():
    with pytest.raises(ConveyorError, match="'mystery'.*TYPE_UNKNOWN"):
        tfmd.arrow_schema(_schema('feature { name: "mystery" }'))
