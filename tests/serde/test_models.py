"""Record: construction, Faust's conveniences, validation messages, field references."""

from __future__ import annotations

import datetime
import decimal
import json
import pickle
import uuid
from typing import Any

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given, settings

from streamlog.serde import (
    Record,
    Schema,
    SchemaError,
    ValueDecodeError,
    ValueEncodeError,
    default_codecs,
    field_getter,
    field_name,
)
from streamlog.serde.codecs import JsonCodec
from tests.serde.sample_models import Account, FrozenKey, Packed, Point, Ride, Stamped, Trip

# --- construction -----------------------------------------------------------------------------


def test_positional_keyword_and_defaults() -> None:
    assert Ride("ann", 1.5) == Ride(rider="ann", lat=1.5)
    ride = Ride("ann", 1.5, lon=2.5)
    assert (ride.rider, ride.lat, ride.lon, ride.speed, ride.active) == ("ann", 1.5, 2.5, 0, True)
    assert repr(ride) == "Ride(rider='ann', lat=1.5, lon=2.5, speed=0, active=True)"
    assert Ride.__struct_fields__ == ("rider", "lat", "lon", "speed", "active")


def test_records_are_mutable_and_compare_by_fields() -> None:
    ride = Ride("ann", 1.5)
    ride.lat = 3.0
    assert ride == Ride("ann", 3.0)
    assert ride != Ride("bob", 3.0)


def test_missing_field_fails_at_construction() -> None:
    with pytest.raises(TypeError) as info:
        Ride("ann")  # type: ignore[call-arg]
    assert str(info.value) == "Missing required argument 'lat'"


def test_msgspec_options_pass_through_as_class_keywords() -> None:
    key = FrozenKey("eu", 3)
    assert {key: 1}[FrozenKey("eu", 3)] == 1
    with pytest.raises(AttributeError):
        key.shard = 4  # type: ignore[misc]


def test_field_names_that_hide_record_methods_are_refused() -> None:
    with pytest.raises(TypeError) as info:

        class Bad(Record):
            dumps: str
            asdict: int

    assert str(info.value) == "Bad: field name(s) asdict, dumps would hide Record methods"


def test_serializer_class_option_must_be_a_name_or_codec() -> None:
    with pytest.raises(TypeError) as info:

        class Bad(Record, serializer=3):  # type: ignore[arg-type]
            x: int

    assert str(info.value) == "Bad: serializer must be a codec name or a codec"


# --- Faust's conveniences ------------------------------------------------------------------


def test_asdict_is_shallow() -> None:
    account = Account("a1", Point(1, 2))
    assert account.asdict() == {"id": "a1", "owner": Point(1, 2)}


def test_to_representation_is_plain_json_data() -> None:
    stamped = Stamped(
        at=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        day=datetime.date(2024, 1, 2),
        amount=decimal.Decimal("1.10"),
        ident=uuid.UUID(int=1),
        tags=["x"],
    )
    assert stamped.to_representation() == {
        "at": "2024-01-02T03:04:05Z",
        "day": "2024-01-02",
        "amount": "1.10",
        "ident": "00000000-0000-0000-0000-000000000001",
        "tags": ["x"],
    }
    assert Account("a1", Point(1, 2)).to_representation() == {
        "id": "a1",
        "owner": {"x": 1, "y": 2},
    }


def test_derive_replaces_fields() -> None:
    ride = Ride("ann", 1.0, speed=5)
    assert ride.derive(lat=2.0) == Ride("ann", 2.0, speed=5)
    assert ride.derive({"speed": 9}, lon=4.0) == Ride("ann", 1.0, lon=4.0, speed=9)
    # another Record contributes all its fields, then the keywords win
    assert ride.derive(Ride("bob", 2.0), active=False) == Ride("bob", 2.0, active=False)
    assert ride == Ride("ann", 1.0, speed=5)  # the original is untouched


def test_dumps_and_loads_json_by_default() -> None:
    ride = Ride("ann", 1.5, -0.25, 7, False)
    data = ride.dumps()
    assert data == b'{"rider":"ann","lat":1.5,"lon":-0.25,"speed":7,"active":false}'
    assert Ride.loads(data) == ride


@pytest.mark.parametrize(
    "serializer", ["json", "msgpack", "pickle", "json|binary", "msgpack|binary", "pickle|binary"]
)
def test_dumps_and_loads_with_each_serializer(serializer: str) -> None:
    trip = Trip([Ride("ann", 1.0), Ride("bob", 2.0)], best=Ride("ann", 1.0), counts={"a": 2})
    assert Trip.loads(trip.dumps(serializer), serializer) == trip


def test_dumps_with_a_codec_instance_and_a_registry() -> None:
    ride = Ride("ann", 1.0)
    assert Ride.loads(ride.dumps(JsonCodec()), JsonCodec()) == ride
    registry = default_codecs()
    registry.register("json", registry.get("json|binary"))  # an app may redefine names
    data = ride.dumps(codecs=registry)
    assert (
        data == b"eyJyaWRlciI6ImFubiIsImxhdCI6MS4wLCJsb24iOjAuMCwic3BlZWQiOjAsImFjdGl2ZSI6dHJ1ZX0="
    )
    assert Ride.loads(data, codecs=registry) == ride


def test_serializer_class_option_is_the_default() -> None:
    packed = Packed("disk", 3)
    assert packed.dumps() == msgspec.msgpack.encode(packed)
    assert Packed.loads(packed.dumps()) == packed
    assert Packed.loads(packed.dumps("json"), "json") == packed


def test_record_dumps_refuses_a_serializer_that_cannot_carry_it() -> None:
    with pytest.raises(SchemaError) as info:
        Ride("ann", 1.0).dumps("raw")
    assert str(info.value) == (
        "the raw serializer carries bytes, str, int or float, not Ride: use 'json' or 'msgpack'"
    )


def test_record_dumps_wraps_codec_errors() -> None:
    class Opaque:
        pass

    class Holder(Record):
        thing: Any

    with pytest.raises(ValueEncodeError) as info:
        Holder(Opaque()).dumps()
    assert str(info.value) == ("Holder: TypeError: Encoding objects of type Opaque is unsupported")


def test_pickle_of_a_record_instance_itself() -> None:
    trip = Trip([Ride("ann", 1.0)], account=Account("a", Point(1, 2)))
    assert pickle.loads(pickle.dumps(trip)) == trip


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message", "path"),
    [
        (b'{"rider":"ann","lat":"north"}', "Ride: Expected float, got str at $.lat", "$.lat"),
        (b'{"rider":"ann"}', "Ride: Object missing required field lat", None),
        (b'{"rider":5,"lat":1}', "Ride: Expected str, got int at $.rider", "$.rider"),
        (
            b'{"rider":"ann","lat":1,"speed":1.5}',
            "Ride: Expected int, got float at $.speed",
            "$.speed",
        ),
        (b'["ann",1]', "Ride: Expected object, got array", None),
        (b'{"rider":"ann"', "Ride: Input data was truncated", None),
        (b"", "Ride: Input data was truncated", None),
    ],
)
def test_decode_errors_name_the_model_and_path(data: bytes, message: str, path: str | None) -> None:
    with pytest.raises(ValueDecodeError) as info:
        Ride.loads(data)
    assert str(info.value) == message
    assert info.value.subject == "Ride"
    assert info.value.path == path


def test_nested_decode_error_path() -> None:
    data = b'{"rides":[{"rider":"a","lat":1},{"rider":"b","lat":null}]}'
    with pytest.raises(ValueDecodeError) as info:
        Trip.loads(data)
    assert str(info.value) == "Trip: Expected float, got null at $.rides[1].lat"
    with pytest.raises(ValueDecodeError) as info:
        Trip.loads(b'{"rides":[],"account":{"id":"x","owner":{"x":1,"y":"2"}}}')
    assert str(info.value) == "Trip: Expected int, got str at $.account.owner.y"


def test_msgpack_decode_error_has_the_same_shape() -> None:
    data = msgspec.msgpack.encode({"rider": "ann", "lat": "north"})
    with pytest.raises(ValueDecodeError) as info:
        Ride.loads(data, "msgpack")
    assert str(info.value) == "Ride: Expected float, got str at $.lat"


def test_from_data_validates_and_builds_nested_records() -> None:
    trip = Trip.from_data(
        {"rides": [{"rider": "ann", "lat": 1}], "account": {"id": "a", "owner": {"x": 1, "y": 2}}}
    )
    assert trip == Trip([Ride("ann", 1.0)], account=Account("a", Point(1, 2)))
    assert Stamped.from_data(
        {
            "at": "2024-01-02T03:04:05Z",
            "day": "2024-01-02",
            "amount": "1.5",
            "ident": str(uuid.UUID(int=2)),
        }
    ) == Stamped(
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 2),
        decimal.Decimal("1.5"),
        uuid.UUID(int=2),
    )
    with pytest.raises(ValueDecodeError) as info:
        Trip.from_data({"rides": [{"rider": "ann", "lat": "x"}]})
    assert str(info.value) == "Trip: Expected float, got str at $.rides[0].lat"


def test_unknown_fields_are_ignored_for_schema_evolution() -> None:
    assert Point.loads(b'{"x":1,"y":2,"z":3}') == Point(1, 2)


def test_decode_errors_survive_pickling() -> None:
    error = ValueDecodeError("Ride", "Expected float, got str", "$.lat")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.subject, copy.reason, copy.path) == (
        "Ride: Expected float, got str at $.lat",
        "Ride",
        "Expected float, got str",
        "$.lat",
    )


# --- field references ---------------------------------------------------------------------------


def test_field_name_from_descriptor_and_string() -> None:
    assert field_name(Ride.rider) == "rider"
    assert field_name(Ride.lon) == "lon"  # a field with a default is a descriptor too
    assert field_name("rider") == "rider"
    assert field_name("owner.x") == "owner.x"


def test_field_name_of_an_inherited_field() -> None:
    class FastRide(Ride):
        top_speed: int = 0

    assert field_name(FastRide.rider) == "rider"
    assert field_name(FastRide.top_speed) == "top_speed"


@pytest.mark.parametrize("bad", [Ride, 3, "", "a b", "class", "owner..x", Ride.dumps])
def test_field_name_refuses_what_is_not_a_field(bad: Any) -> None:
    with pytest.raises(TypeError) as info:
        field_name(bad)
    assert str(info.value) in (
        f"not a field name: {bad!r}",
        f"expected a Record field such as Ride.rider, or a field name string, got {bad!r}",
    )


def test_field_getter_reads_the_field() -> None:
    get_rider = field_getter(Ride.rider)
    assert get_rider(Ride("ann", 1.0)) == "ann"
    assert [field_getter(Ride.speed)(r) for r in (Ride("a", 0, speed=3), Ride("b", 0))] == [3, 0]
    assert field_getter("owner.y")(Account("a", Point(1, 2))) == 2


# --- property: JSON and msgpack round trips -------------------------------------------------

_text = st.text(max_size=20)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_rides = st.builds(Ride, _text, _floats, _floats, _ints, st.booleans())
_points = st.builds(Point, _ints, _ints)
_trips = st.builds(
    Trip,
    st.lists(_rides, max_size=4),
    st.none() | _rides,
    st.dictionaries(_text, _ints, max_size=4),
    st.none() | st.builds(Account, _text, _points),
)
_datetimes = st.datetimes() | st.datetimes(timezones=st.just(datetime.UTC))
_stamped = st.builds(
    Stamped,
    _datetimes,
    st.dates(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
    st.lists(_text, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(trip=_trips)
def test_trip_json_round_trip(trip: Trip) -> None:
    schema = Schema(key_type=str, value_type=Trip)
    data = schema.dumps_value(trip)
    assert data is not None
    assert schema.loads_value(data) == trip
    assert Trip.loads(trip.dumps()) == trip
    # what any JSON reader sees is the Record's plain representation
    assert json.loads(data) == trip.to_representation()


@settings(max_examples=150, deadline=None)
@given(stamped=_stamped)
def test_stamped_json_and_msgpack_round_trip(stamped: Stamped) -> None:
    for serializer in ("json", "msgpack"):
        schema = Schema(value_type=Stamped, value_serializer=serializer)
        assert schema.loads_value(schema.dumps_value(stamped)) == stamped


@settings(max_examples=100, deadline=None)
@given(trip=_trips)
def test_trip_msgpack_round_trip(trip: Trip) -> None:
    assert Trip.loads(trip.dumps("msgpack"), "msgpack") == trip
