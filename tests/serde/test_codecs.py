"""Codecs and the codec registry: exact bytes, round trips, chains, errors."""

from __future__ import annotations

import base64
import datetime
import decimal
import pickle
import subprocess
import sys
import uuid
from typing import Any

import msgspec
import pytest

from streamlog.serde import CodecRegistry, Record, UnknownCodecError, default_codecs
from streamlog.serde.codecs import (
    BinaryCodec,
    ChainedCodec,
    CodecBase,
    JsonCodec,
    MsgpackCodec,
    PickleCodec,
    RawCodec,
    decoder_for,
    encoder_for,
)
from streamlog.serde.errors import SchemaError
from tests.serde.sample_models import Point, Ride

# --- raw ---------------------------------------------------------------------------------


def test_raw_passes_bytes_through_untouched() -> None:
    data = b"\x00\xffabc"
    assert RawCodec().dumps(data) is data
    assert RawCodec().loads(data) is data


def test_raw_copies_other_buffers_to_bytes() -> None:
    assert RawCodec().dumps(bytearray(b"ab")) == b"ab"
    assert type(RawCodec().dumps(bytearray(b"ab"))) is bytes
    assert RawCodec().dumps(memoryview(b"xyz")[1:]) == b"yz"
    assert RawCodec().loads(memoryview(b"xyz")) == b"xyz"


def test_raw_encodes_str_as_utf8() -> None:
    assert RawCodec().dumps("héllo") == b"h\xc3\xa9llo"


@pytest.mark.parametrize("value", [5, 1.5, {"a": 1}, None, Point(1, 2)])
def test_raw_refuses_everything_else_clearly(value: Any) -> None:
    with pytest.raises(TypeError) as info:
        RawCodec().dumps(value)
    assert str(info.value) == (
        f"the raw codec takes bytes or str, got {type(value).__name__}: "
        "choose a serializer such as 'json' for other values"
    )


def test_raw_typed_text_encoders() -> None:
    raw = RawCodec()
    assert encoder_for(raw, str)("ключ") == "ключ".encode()
    assert encoder_for(raw, int)(-42) == b"-42"
    assert encoder_for(raw, float)(0.1) == b"0.1"
    assert decoder_for(raw, str)(b"\xd0\xba") == "к"
    assert decoder_for(raw, int)(b"-42") == -42
    assert decoder_for(raw, float)(b"0.1") == 0.1


def test_raw_cannot_carry_a_record() -> None:
    with pytest.raises(SchemaError) as info:
        decoder_for(RawCodec(), Ride)
    assert str(info.value) == (
        "the raw serializer carries bytes, str, int or float, not Ride: use 'json' or 'msgpack'"
    )


# --- json ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1, "b": [True, None]}, b'{"a":1,"b":[true,null]}'),
        ([1, "x", 2.5], b'[1,"x",2.5]'),
        ("héllo", b'"h\xc3\xa9llo"'),
        (7, b"7"),
        (-0.5, b"-0.5"),
        (False, b"false"),
        (None, b"null"),
    ],
)
def test_json_exact_bytes_and_round_trip(value: Any, expected: bytes) -> None:
    codec = JsonCodec()
    assert codec.dumps(value) == expected
    assert codec.loads(expected) == value


def test_json_encodes_records_and_extended_types_as_msgspec_does() -> None:
    codec = JsonCodec()
    value = {
        "ride": Ride("ann", 1.5),
        "at": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
        "amount": decimal.Decimal("10.25"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    assert codec.dumps(value) == (
        b'{"ride":{"rider":"ann","lat":1.5,"lon":0.0,"speed":0,"active":true},'
        b'"at":"2024-05-01T12:30:00Z","amount":"10.25",'
        b'"id":"12345678-1234-5678-1234-567812345678"}'
    )
    # untyped decode gives plain JSON values back: the strings stay strings
    assert codec.loads(codec.dumps(value))["at"] == "2024-05-01T12:30:00Z"


def test_json_typed_decoder_builds_the_record() -> None:
    decode = decoder_for(JsonCodec(), Ride)
    assert decode(b'{"rider":"ann","lat":1}') == Ride("ann", 1.0)


def test_json_hooks_extend_the_types() -> None:
    class Celsius:
        def __init__(self, degrees: float) -> None:
            self.degrees = degrees

    def enc_hook(obj: Any) -> Any:
        if isinstance(obj, Celsius):
            return obj.degrees
        raise NotImplementedError

    def dec_hook(tp: type, obj: Any) -> Any:
        if tp is Celsius:
            return Celsius(obj)
        raise NotImplementedError

    codec = JsonCodec(enc_hook=enc_hook, dec_hook=dec_hook)
    assert codec.dumps({"t": Celsius(21.5)}) == b'{"t":21.5}'
    decoded = decoder_for(codec, dict[str, Celsius])(b'{"t":21.5}')
    assert decoded["t"].degrees == 21.5


# --- msgpack ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1}, b"\x81\xa1a\x01"),
        ([1, "x"], b"\x92\x01\xa1x"),
        ("hi", b"\xa2hi"),
        (300, b"\xcd\x01\x2c"),
        (None, b"\xc0"),
        (b"\x00\x01", b"\xc4\x02\x00\x01"),
    ],
)
def test_msgpack_exact_bytes_and_round_trip(value: Any, expected: bytes) -> None:
    codec = MsgpackCodec()
    assert codec.dumps(value) == expected
    assert codec.loads(expected) == value


def test_msgpack_typed_decoder_builds_the_record() -> None:
    codec = MsgpackCodec()
    data = codec.dumps(Ride("ann", 1.5, 2.5, 3, False))
    assert decoder_for(codec, Ride)(data) == Ride("ann", 1.5, 2.5, 3, False)


# --- binary ----------------------------------------------------------------------------------


def test_binary_is_base64_like_fausts() -> None:
    codec = BinaryCodec()
    assert codec.dumps(b"\x00\xff\x10") == b"AP8Q"
    assert codec.dumps("hi") == b"aGk="
    assert codec.loads(b"AP8Q") == b"\x00\xff\x10"


def test_binary_refuses_text_that_is_not_base64() -> None:
    with pytest.raises(ValueError):
        BinaryCodec().loads(b"not base64!")


# --- pickle ----------------------------------------------------------------------------------


def test_pickle_ships_a_lambda() -> None:
    codec = PickleCodec()
    offset = 10
    restored = codec.loads(codec.dumps(lambda x: x + offset))
    assert restored(5) == 15


def test_pickle_round_trips_objects_and_importable_records() -> None:
    codec = PickleCodec()
    value = {"ride": Ride("ann", 1.0), "set": {1, 2}, "tuple": (1, b"x")}
    data = codec.dumps(value)
    assert pickle.loads(data) == value
    assert codec.loads(data) == value


def test_pickle_refuses_a_record_class_it_would_ship_by_value() -> None:
    class LocalRide(Record):
        rider: str

    with pytest.raises(pickle.PicklingError) as info:
        PickleCodec().dumps([1, {"nested": LocalRide("ann")}])
    message = str(info.value)
    assert message.startswith(
        "cannot pickle tests.serde.test_codecs."
        "test_pickle_refuses_a_record_class_it_would_ship_by_value.<locals>.LocalRide: "
    )
    assert message.endswith(
        "a msgspec Struct (a Record) rebuilt that way has lost its fields: define the model "
        "in an importable module"
    )


def test_pickle_refuses_a_record_defined_in_main() -> None:
    code = (
        "from streamlog.serde import Record, Schema\n"
        "class Ride(Record):\n"
        "    rider: str\n"
        "try:\n"
        "    Schema(value_serializer='pickle').dumps_value(Ride('ann'))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith(
        "ValueEncodeError pickle: pickle.PicklingError: cannot pickle __main__.Ride: "
        "cloudpickle ships"
    )
    assert "define the model in an importable module" in out.stdout


def test_pickle_loads_explains_a_struct_that_lost_its_fields() -> None:
    # what plain cloudpickle does: a class from __main__ travels by value, arrives empty
    code = (
        "import sys, cloudpickle, msgspec\n"
        "class Ride(msgspec.Struct):\n"
        "    rider: str\n"
        "sys.stdout.buffer.write(cloudpickle.dumps(Ride('ann')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    with pytest.raises(TypeError) as info:
        PickleCodec().loads(out.stdout)
    assert str(info.value) == (
        "Extra positional arguments provided (if the value holds a Record: cloudpickle ships "
        "classes defined in __main__ or inside a function by value, and a msgspec Struct "
        "(a Record) rebuilt that way has lost its fields: define the model in an importable "
        "module)"
    )


# --- chains ----------------------------------------------------------------------------------


def test_chain_applies_left_to_right_then_back() -> None:
    codec = default_codecs().get("json|binary")
    assert isinstance(codec, ChainedCodec)
    data = codec.dumps({"a": 1})
    assert data == base64.b64encode(b'{"a":1}') == b"eyJhIjoxfQ=="
    assert codec.loads(data) == {"a": 1}


def test_chain_with_spaces_and_typed_decode() -> None:
    codec = default_codecs().get("msgpack | binary")
    data = codec.dumps(Ride("ann", 2.0))
    assert base64.b64decode(data) == msgspec.msgpack.encode(Ride("ann", 2.0))
    assert decoder_for(codec, Ride)(data) == Ride("ann", 2.0)


def test_pickle_binary_gives_fausts_base64_pickle() -> None:
    codec = default_codecs().get("pickle|binary")
    data = codec.dumps({"a": (1, 2)})
    assert pickle.loads(base64.b64decode(data)) == {"a": (1, 2)}
    assert codec.loads(data) == {"a": (1, 2)}


def test_or_operator_chains_and_flattens() -> None:
    chained = JsonCodec() | BinaryCodec() | BinaryCodec()
    assert [type(c) for c in chained.codecs] == [JsonCodec, BinaryCodec, BinaryCodec]
    data = chained.dumps([1])
    assert data == base64.b64encode(base64.b64encode(b"[1]"))
    assert chained.loads(data) == [1]


# --- user codecs and the registry -----------------------------------------------------------


class Reversed(CodecBase):
    """A user codec: JSON text written backwards, decoded to plain values."""

    def dumps(self, obj: Any) -> bytes:
        return msgspec.json.encode(obj)[::-1]

    def loads(self, data: bytes) -> Any:
        return msgspec.json.decode(bytes(data)[::-1])


def test_untyped_user_codec_still_yields_a_validated_record() -> None:
    decode = decoder_for(Reversed(), Ride)
    assert decode(b'}1:"tal","nna":"redir"{') == Ride("ann", 1.0)
    with pytest.raises(msgspec.ValidationError) as info:
        decode(Reversed().dumps({"rider": "ann", "lat": "north"}))
    assert str(info.value) == "Expected `float`, got `str` - at `$.lat`"


def test_registry_register_and_get() -> None:
    registry = CodecRegistry()
    codec = Reversed()
    registry.register("rev", codec)
    assert registry.get("rev") is codec
    assert "rev" in registry
    assert registry.names() == ["rev"]
    registry.register("rev", JsonCodec())  # replacing is allowed, as in Faust
    assert isinstance(registry.get("rev"), JsonCodec)


def test_registry_chains_user_codecs_with_builtins() -> None:
    registry = default_codecs()
    registry.register("rev", Reversed())
    codec = registry.get("rev|binary")
    assert codec.dumps([1, 2]) == base64.b64encode(b"]2,1[")
    assert codec.loads(codec.dumps([1, 2])) == [1, 2]


def test_unknown_codec_names_the_known_ones() -> None:
    with pytest.raises(UnknownCodecError) as info:
        default_codecs().get("yaml")
    assert str(info.value) == (
        "unknown codec 'yaml'; known codecs: binary, json, msgpack, pickle, raw "
        "(chain them with '|', e.g. 'json|binary')"
    )
    assert isinstance(info.value, LookupError)


def test_unknown_codec_inside_a_chain() -> None:
    with pytest.raises(UnknownCodecError) as info:
        default_codecs().get("json|gzip")
    assert str(info.value).startswith("unknown codec 'gzip'; known codecs: binary, json,")


def test_empty_registry_says_none_are_known() -> None:
    with pytest.raises(UnknownCodecError) as info:
        CodecRegistry().get("json")
    assert str(info.value).startswith("unknown codec 'json'; known codecs: none ")


@pytest.mark.parametrize("name", ["", "a|b", " json"])
def test_register_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError) as info:
        CodecRegistry().register(name, JsonCodec())
    assert str(info.value) == f"invalid codec name {name!r}: non-empty, no '|', no spaces around"


def test_register_refuses_a_non_codec() -> None:
    with pytest.raises(TypeError) as info:
        CodecRegistry().register("x", object())  # type: ignore[arg-type]
    assert str(info.value).startswith("a codec is an object with dumps() and loads(), got <obj")
    with pytest.raises(TypeError) as info:
        CodecRegistry().register("x", JsonCodec)  # type: ignore[arg-type]
    assert str(info.value) == (
        "a codec is an object with dumps() and loads(), "
        "got <class 'streamlog.serde.codecs.JsonCodec'>"
    )


def test_default_codecs_are_fresh_each_time() -> None:
    first = default_codecs()
    second = default_codecs()
    first.register("rev", Reversed())
    assert "rev" in first
    assert "rev" not in second
    assert first.get("json") is not second.get("json")
    assert second.names() == ["binary", "json", "msgpack", "pickle", "raw"]
    assert repr(second) == "CodecRegistry(binary, json, msgpack, pickle, raw)"
