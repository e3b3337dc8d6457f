"""The ``tf.train.Example`` protobuf messages, without TensorFlow.

The classes are built when this module is imported, from descriptors written out below with
the same package (``tensorflow``), message names and field numbers as TensorFlow's
``tensorflow/core/example/feature.proto`` and ``example.proto``, so the bytes they write and
read are TensorFlow's. They live in a private descriptor pool, never the default one, so
they cannot clash with TensorFlow's own classes when TensorFlow is installed as well.

Example::

    from conveyor.io.tf_example import Example

    example = Example()
    example.features.feature["age"].int64_list.value.append(42)
    data = example.SerializeToString()
    assert Example.FromString(data).features.feature["age"].int64_list.value == [42]
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = [
    "BytesList",
    "Example",
    "Feature",
    "FeatureList",
    "FeatureLists",
    "Features",
    "FloatList",
    "Int64List",
    "SequenceExample",
]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow"


def _field(
    name: str,
    number: int,
    type_: int,
    *,
    repeated: bool = False,
    type_name: str | None = None,
    oneof_index: int | None = None,
    packed: bool = False,
) -> descriptor_pb2.FieldDescriptorProto:
    field = _F(name=name, number=number, type=type_, json_name=_camel(name))
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name is not None:
        field.type_name = f".{_PACKAGE}.{type_name}"
    if oneof_index is not None:
        field.oneof_index = oneof_index
    if packed:
        field.options.packed = True
    return field


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _map_field(
    message: descriptor_pb2.DescriptorProto, name: str, entry: str, value_type: str
) -> None:
    """``map<string, value_type> name = 1;`` as protoc writes it: a nested ``*Entry`` type."""
    nested = message.nested_type.add(name=entry)
    nested.options.map_entry = True
    nested.field.append(_field("key", 1, _F.TYPE_STRING))
    nested.field.append(_field("value", 2, _F.TYPE_MESSAGE, type_name=value_type))
    message.field.append(
        _field(name, 1, _F.TYPE_MESSAGE, repeated=True, type_name=f"{message.name}.{entry}")
    )


def _feature_file() -> descriptor_pb2.FileDescriptorProto:
    """tensorflow/core/example/feature.proto."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow/core/example/feature.proto", package=_PACKAGE, syntax="proto3"
    )
    bytes_list = proto.message_type.add(name="BytesList")
    bytes_list.field.append(_field("value", 1, _F.TYPE_BYTES, repeated=True))
    float_list = proto.message_type.add(name="FloatList")
    float_list.field.append(_field("value", 1, _F.TYPE_FLOAT, repeated=True, packed=True))
    int64_list = proto.message_type.add(name="Int64List")
    int64_list.field.append(_field("value", 1, _F.TYPE_INT64, repeated=True, packed=True))

    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, type_name) in enumerate(
        [("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")],
        start=1,
    ):
        feature.field.append(
            _field(name, number, _F.TYPE_MESSAGE, type_name=type_name, oneof_index=0)
        )

    _map_field(proto.message_type.add(name="Features"), "feature", "FeatureEntry", "Feature")
    feature_list = proto.message_type.add(name="FeatureList")
    feature_list.field.append(
        _field("feature", 1, _F.TYPE_MESSAGE, repeated=True, type_name="Feature")
    )
    _map_field(
        proto.message_type.add(name="FeatureLists"),
        "feature_list",
        "FeatureListEntry",
        "FeatureList",
    )
    return proto


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    """tensorflow/core/example/example.proto."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow/core/example/example.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["tensorflow/core/example/feature.proto"],
    )
    example = proto.message_type.add(name="Example")
    example.field.append(_field("features", 1, _F.TYPE_MESSAGE, type_name="Features"))
    sequence = proto.message_type.add(name="SequenceExample")
    sequence.field.append(_field("context", 1, _F.TYPE_MESSAGE, type_name="Features"))
    sequence.field.append(_field("feature_lists", 2, _F.TYPE_MESSAGE, type_name="FeatureLists"))
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_feature_file())
_POOL.Add(_example_file())


def _message_class(name: str) -> type:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


BytesList = _message_class("BytesList")
FloatList = _message_class("FloatList")
Int64List = _message_class("Int64List")
Feature = _message_class("Feature")
Features = _message_class("Features")
FeatureList = _message_class("FeatureList")
FeatureLists = _message_class("FeatureLists")
Example = _message_class("Example")
SequenceExample = _message_class("SequenceExample")
