"""Schema: the four compiled functions, for every type and serializer combination."""

from __future__ import annotations

import base64
import datetime
import pickle
from typing import Any, Literal, Optional

import msgspec
import pytest

from streamlog.serde import (
    CodecRegistry,
    KeyDecodeError,
    KeyEncodeError,
    Schema,
    SchemaError,
    UnknownCodecError,
    ValueDecodeError,
    ValueEncodeError,
    default_codecs,
)
from streamlog.serde.codecs import CodecBase, JsonCodec
from tests.serde.sample_models import FrozenKey, Packed, Point, Ride, Stamped, Trip

# (key or value type, serializer, value, exact bytes): each row is checked on both sides
EXACT = [
    (bytes, "raw", b"\x00\xff", b"\x00\xff"),
    (str, "raw", "héllo", b"h\xc3\xa9llo"),
    (int, "raw", -42, b"-42"),
    (float, "raw", 2.5, b"2.5"),
    (None, "raw", b"abc", b"abc"),
    (None, "json", {"a": [1, None]}, b'{"a":[1,null]}'),
    (dict, "json", {"a": 1}, b'{"a":1}'),
    (list, "json", [1, "x"], b'[1,"x"]'),
    (int, "json", 7, b"7"),
    (float, "json", 0.25, b"0.25"),
    (str, "json", "hi", b'"hi"'),
    (bool, "json", True, b"true"),
    (dict[str, int], "json", {"a": 1, "b": 2}, b'{"a":1,"b":2}'),
    (
        Ride,
        "json",
        Ride("ann", 1.5),
        b'{"rider":"ann","lat":1.5,"lon":0.0,"speed":0,"active":true}',
    ),
    (list[Point], "json", [Point(1, 2)], b'[{"x":1,"y":2}]'),
    (Optional[Point], "json", Point(1, 2), b'{"x":1,"y":2}'),  # noqa: UP045
    (Point | int, "json", 5, b"5"),
    (Literal["a", "b"], "json", "b", b'"b"'),
    (datetime.datetime, "json", datetime.datetime(2024, 1, 1, 9), b'"2024-01-01T09:00:00"'),
    (Point, "msgpack", Point(1, 2), b"\x82\xa1x\x01\xa1y\x02"),
    (dict[str, int], "msgpack", {"a": 1}, b"\x81\xa1a\x01"),
    (None, "msgpack", [1, "x"], b"\x92\x01\xa1x"),
    (Point, "json|binary", Point(1, 2), base64.b64encode(b'{"x":1,"y":2}')),
    (str, "binary", "hi", b"aGk="),
]


@pytest.mark.parametrize(("tp", "serializer", "value", "data"), EXACT)
def test_value_exact_bytes_and_back(tp: Any, serializer: str, value: Any, data: bytes) -> None:
    schema = Schema(value_type=tp, value_serializer=serializer)
    assert schema.dumps_value(value) == data
    decoded = schema.loads_value(data)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("tp", "serializer", "value", "data"), EXACT)
def test_key_exact_bytes_and_back(tp: Any, serializer: str, value: Any, data: bytes) -> None:
    schema = Schema(key_type=tp, key_serializer=serializer)
    assert schema.dumps_key(value) == data
    decoded = schema.loads_key(data)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        Trip([Ride("a", 1.0), Ride("b", 2.0)], best=Ride("a", 1.0), counts={"x": 3}),
        {"any": ["thing", 1, {2: 3}]},
        (1, "tuple"),
        lambda: None,
    ],
    ids=["record", "dict", "tuple", "lambda"],
)
def test_pickle_values_round_trip(value: Any) -> None:
    schema = Schema(value_serializer="pickle")
    data = schema.dumps_value(value)
    assert data is not None
    decoded = schema.loads_value(data)
    if callable(value):
        assert decoded() is None
    else:
        assert decoded == value
        assert pickle.loads(data) == value


def test_pickle_with_a_record_type_checks_what_it_loads() -> None:
    schema = Schema(value_type=Point, value_serializer="pickle")
    assert schema.loads_value(schema.dumps_value(Point(1, 2))) == Point(1, 2)
    # a dict from the pickle is converted and validated into the Record
    assert schema.loads_value(pickle.dumps({"x": 1, "y": 2})) == Point(1, 2)
    with pytest.raises(ValueDecodeError) as info:
        schema.loads_value(pickle.dumps({"x": 1}))
    assert str(info.value) == "Point: Object missing required field y"


def test_nested_records_decode_straight_into_their_types() -> None:
    schema = Schema(value_type=Trip)
    trip = schema.loads_value(
        b'{"rides":[{"rider":"a","lat":1}],"best":null,"account":{"id":"x","owner":{"x":1,"y":2}}}'
    )
    assert isinstance(trip, Trip)
    assert isinstance(trip.rides[0], Ride)
    assert trip.account is not None and trip.account.owner == Point(1, 2)
    assert trip.best is None and trip.counts == {}


def test_datetime_fields_decode_to_datetimes() -> None:
    schema = Schema(value_type=Stamped)
    stamped = schema.loads_value(
        b'{"at":"2024-01-02T03:04:05.123456+02:00","day":"2024-01-02","amount":"9.99",'
        b'"ident":"00000000-0000-0000-0000-000000000003"}'
    )
    assert stamped.at == datetime.datetime(
        2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert stamped.day == datetime.date(2024, 1, 2)
    assert str(stamped.amount) == "9.99"


# --- defaults (Faust's) ---------------------------------------------------------------------


def test_defaults_are_raw_keys_and_json_values() -> None:
    schema = Schema()
    assert (schema.key_serializer, schema.value_serializer) == ("raw", "json")
    assert schema.dumps_key("k") == b"k"
    assert schema.loads_key(b"k") == b"k"
    assert schema.dumps_value({"a": 1}) == b'{"a":1}'
    assert schema.loads_value(b'{"a":1}') == {"a": 1}
    assert repr(schema) == (
        "Schema(key_type=None, value_type=None, key_serializer='raw', value_serializer='json')"
    )


def test_key_str_raw_gives_text() -> None:
    schema = Schema(key_type=str, value_type=Ride)
    assert schema.loads_key(b"ann") == "ann"
    assert schema.dumps_key("ann") == b"ann"


def test_record_key_defaults_to_json_as_raw_cannot_carry_it() -> None:
    schema = Schema(key_type=FrozenKey, value_type=Ride)
    assert schema.key_serializer == "json"
    assert schema.dumps_key(FrozenKey("eu", 1)) == b'{"region":"eu","shard":1}'
    assert schema.loads_key(b'{"region":"eu","shard":1}') == FrozenKey("eu", 1)
    assert Schema(key_type=dict[str, int]).key_serializer == "json"


def test_record_serializer_option_is_used_unless_the_schema_names_one() -> None:
    schema = Schema(key_type=Packed, value_type=Packed)
    assert (schema.key_serializer, schema.value_serializer) == ("msgpack", "msgpack")
    assert schema.dumps_value(Packed("a", 1)) == msgspec.msgpack.encode(Packed("a", 1))
    explicit = Schema(value_type=Packed, value_serializer="json")
    assert explicit.dumps_value(Packed("a", 1)) == b'{"name":"a","size":1}'


def test_app_defaults_apply_only_where_nothing_else_chose() -> None:
    schema = Schema(
        key_type=str,
        value_type=dict,
        default_key_serializer="json",
        default_value_serializer="msgpack",
    )
    assert (schema.key_serializer, schema.value_serializer) == ("json", "msgpack")
    assert schema.dumps_key("k") == b'"k"'
    assert schema.dumps_value({"a": 1}) == b"\x81\xa1a\x01"
    packed = Schema(key_type=Packed, value_type=Ride, default_value_serializer="msgpack")
    # a Record's own option beats the app's; a Record without one takes the app's
    assert (packed.key_serializer, packed.value_serializer) == ("msgpack", "msgpack")
    assert Ride.loads(Ride("a", 1.0).dumps()) == Ride("a", 1.0)  # json without an option
    record_key = Schema(key_type=Point, default_key_serializer="raw")
    assert record_key.key_serializer == "json"


def test_raw_explicitly_with_a_record_is_refused_when_declared() -> None:
    with pytest.raises(SchemaError) as info:
        Schema(value_type=Ride, value_serializer="raw")
    assert str(info.value) == (
        "the raw serializer carries bytes, str, int or float, not Ride: use 'json' or 'msgpack'"
    )


# --- None: null keys and tombstones ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "serializer"),
    [
        (None, "raw"),
        (bytes, "raw"),
        (str, "raw"),
        (int, "raw"),
        (None, "json"),
        (Ride, "json"),
        (Optional[Ride], "json"),  # noqa: UP045
        (int, "json"),
        (Ride, "msgpack"),
        (None, "pickle"),
        (Ride, "json|binary"),
    ],
)
def test_none_stays_none_both_ways(tp: Any, serializer: str) -> None:
    schema = Schema(
        key_type=tp, value_type=tp, key_serializer=serializer, value_serializer=serializer
    )
    assert schema.dumps_key(None) is None
    assert schema.dumps_value(None) is None
    assert schema.loads_key(None) is None
    assert schema.loads_value(None) is None


def test_json_null_literal_is_a_value_not_a_tombstone() -> None:
    assert Schema().loads_value(b"null") is None
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=Ride).loads_value(b"null")
    assert str(info.value) == "Ride: Expected object, got null"


# --- Faust's bytes pass-through ----------------------------------------------------------------


def test_bytes_value_type_passes_the_payload_untouched() -> None:
    schema = Schema(value_type=bytes, value_serializer="raw")
    payload = b"\x00\x01\xfe\xff"
    assert schema.dumps_value(payload) is payload
    assert schema.loads_value(payload) is payload
    assert schema.dumps_value(bytearray(b"ab")) == b"ab"
    assert schema.dumps_value("text") == b"text"


def test_bytes_value_type_ignores_the_serializer_both_ways() -> None:
    schema = Schema(value_type=bytes, value_serializer="json")
    assert schema.dumps_value(b"{not json") == b"{not json"
    assert schema.loads_value(b"{not json") == b"{not json"


@pytest.mark.parametrize("tp", [None, Ride, int, dict])
def test_bytes_given_to_dumps_are_already_encoded(tp: Any) -> None:
    schema = Schema(key_type=tp, value_type=tp, key_serializer="json", value_serializer="json")
    payload = b'{"pre":"encoded"}'
    assert schema.dumps_value(payload) is payload
    assert schema.dumps_key(payload) is payload


def test_bytes_type_refuses_other_values() -> None:
    with pytest.raises(ValueEncodeError) as info:
        Schema(value_type=bytes).dumps_value(5)
    assert str(info.value) == "bytes: expected bytes, got int"


# --- wrong types on the way out -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "value", "message"),
    [
        (int, "x", "int: expected int, got str"),
        (int, True, "int: expected int, got bool"),
        (float, "1.5", "float: expected float, got str"),
        (str, 5, "str: expected str, got int"),
        (Ride, Point(1, 2), "Ride: expected Ride, got Point"),
        (Ride, {"rider": "a", "lat": 1.0}, "Ride: expected Ride, got dict"),
        (list[Ride], (Ride("a", 1.0),), "list[Ride]: expected list[Ride], got tuple"),
        (dict[str, int], [1], "dict[str, int]: expected dict[str, int], got list"),
        (Optional[Ride], 3, "Ride | None: expected Ride | None, got int"),  # noqa: UP045
        (Literal["a"], "b", "Literal['a']: expected Literal['a'], got str"),
    ],
)
def test_wrong_value_type_on_dumps(tp: Any, value: Any, message: str) -> None:
    with pytest.raises(ValueEncodeError) as info:
        Schema(value_type=tp).dumps_value(value)
    assert str(info.value) == message


def test_int_is_accepted_for_float() -> None:
    schema = Schema(value_type=float)
    assert schema.dumps_value(2) == b"2"
    assert schema.loads_value(b"2") == 2.0


def test_wrong_key_type_on_dumps() -> None:
    with pytest.raises(KeyEncodeError) as info:
        Schema(key_type=str).dumps_key(5)
    assert str(info.value) == "str: expected str, got int"


def test_raw_untyped_key_refuses_an_int_clearly() -> None:
    with pytest.raises(KeyEncodeError) as info:
        Schema().dumps_key(5)
    assert str(info.value) == (
        "raw: TypeError: the raw codec takes bytes or str, got int: "
        "choose a serializer such as 'json' for other values"
    )


def test_unencodable_value_is_a_value_encode_error() -> None:
    with pytest.raises(ValueEncodeError) as info:
        Schema().dumps_value({"s": {1, 2}.__iter__()})
    assert (
        str(info.value) == "json: TypeError: Encoding objects of type set_iterator is unsupported"
    )


# --- decode errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "serializer", "data", "message"),
    [
        (Ride, "json", b'{"rider":"a","lat":"x"}', "Ride: Expected float, got str at $.lat"),
        (
            Ride,
            "msgpack",
            msgspec.msgpack.encode({"rider": 1}),
            "Ride: Expected str, got int at $.rider",
        ),
        (int, "json", b'"5"', "int: Expected int, got str"),
        (dict, "json", b"[1]", "dict: Expected object, got array"),
        (dict[str, int], "json", b'{"a":"b"}', "dict[str, int]: Expected int, got str at $[...]"),
        (
            list[Point],
            "json",
            b'[{"x":1,"y":2},{"x":1}]',
            "list[Point]: Object missing required field y at $[1]",
        ),
        (None, "json", b"{oops", "json: JSON is malformed: object keys must be strings (byte 1)"),
        (int, "raw", b"4x", "int: ValueError: invalid literal for int() with base 10: b'4x'"),
        (
            str,
            "raw",
            b"\xff",
            "str: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte",
        ),
        (Point, "json|binary", b"@@@@", "Point: binascii.Error: Only base64 data is allowed"),
    ],
)
def test_value_decode_errors(tp: Any, serializer: str, data: bytes, message: str) -> None:
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=tp, value_serializer=serializer, strict=True).loads_value(data)
    assert str(info.value) == message


def test_key_decode_errors_are_key_errors() -> None:
    with pytest.raises(KeyDecodeError) as info:
        Schema(key_type=Point, key_serializer="json").loads_key(b'{"x":"1","y":2}')
    assert str(info.value) == "Point: Expected int, got str at $.x"
    assert info.value.path == "$.x"
    assert isinstance(info.value.__cause__, msgspec.ValidationError)


# --- custom codecs -----------------------------------------------------------------------------


class Upper(CodecBase):
    """A user codec without typed decoding: upper-case JSON keys and strings."""

    def dumps(self, obj: Any) -> bytes:
        return msgspec.json.encode(obj).upper()

    def loads(self, data: bytes) -> Any:
        return msgspec.json.decode(data.lower())


def test_custom_codec_by_name_from_the_registry() -> None:
    registry = default_codecs()
    registry.register("upper", Upper())
    schema = Schema(value_type=Point, value_serializer="upper", codecs=registry)
    assert schema.dumps_value(Point(1, 2)) == b'{"X":1,"Y":2}'
    assert schema.loads_value(b'{"X":1,"Y":2}') == Point(1, 2)
    chained = Schema(value_serializer="upper|binary", codecs=registry)
    assert chained.dumps_value({"a": "b"}) == base64.b64encode(b'{"A":"B"}')


def test_codec_instance_passed_directly() -> None:
    schema = Schema(key_serializer=Upper(), value_serializer=JsonCodec(), codecs=CodecRegistry())
    assert schema.dumps_key(["k"]) == b'["K"]'
    assert schema.loads_key(b'["K"]') == ["k"]
    assert schema.dumps_value({"a": 1}) == b'{"a":1}'
    with pytest.raises(KeyDecodeError) as info:
        schema.loads_key(b"{")
    assert str(info.value) == "Upper: Input data was truncated"


def test_unknown_serializer_name() -> None:
    with pytest.raises(UnknownCodecError) as info:
        Schema(value_serializer="avro")
    assert str(info.value).startswith("unknown codec 'avro'; known codecs: binary, json,")


def test_registry_given_is_the_one_used() -> None:
    with pytest.raises(UnknownCodecError):
        Schema(codecs=CodecRegistry())  # no "raw" in an empty registry


def test_not_a_codec() -> None:
    with pytest.raises(SchemaError) as info:
        Schema(value_serializer=42)  # type: ignore[arg-type]
    assert str(info.value) == "a serializer is a codec name or a codec, got 42"
    with pytest.raises(SchemaError) as info:
        Schema(value_serializer=JsonCodec)  # type: ignore[arg-type]
    assert str(info.value) == (
        "a serializer is a codec name or a codec, got <class 'streamlog.serde.codecs.JsonCodec'>"
    )


def test_schema_is_compiled_once_and_keeps_its_codecs() -> None:
    registry = default_codecs()
    schema = Schema(value_serializer="json", codecs=registry)
    registry.register("json", Upper())
    assert schema.dumps_value({"a": "b"}) == b'{"a":"b"}'
