"""Faust's decoding rules and type tag, as faust-streaming's source defines them
(``faust/models/record.py``, ``fields.py``, ``typing.py``, ``serializers/registry.py``) and
its own tests check them (``tests/functional/test_models.py``); the last tests compare bytes
with what a real faust-streaming writes (skipped without ``.venv-faust``)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import msgspec
import pytest

from streamlog.serde import Record, Schema, ValidationError, ValueDecodeError
from tests.serde.faust_models import (
    Account,
    AccountList,
    Base,
    Dated,
    Holder,
    ListOfDates,
    Order,
    Point,
    Priced,
    Special,
    User,
    WithDefaults,
)

NS = "tests.serde.faust_models"

# --- lenient by default (Faust: no type enforcement unless validation=True) -----------------


def test_field_types_are_not_enforced_when_decoding() -> None:
    # faust: P.loads('{"x": 1.5, "s": 3, "d": 17000}') keeps every value as it came
    class Loose(Record):
        x: int
        s: str
        d: datetime.datetime

    loose = Loose.loads(b'{"x": 1.5, "s": 3, "d": 17000, "unknown": 9}')
    assert (loose.x, loose.s, loose.d) == (1.5, 3, 17000)
    assert type(loose.x) is float and type(loose.s) is int


def test_a_schema_takes_the_record_as_the_json_gives_it() -> None:
    schema = Schema(value_type=Point)
    point = schema.loads_value(b'{"x": "1", "y": null}')
    assert isinstance(point, Point) and (point.x, point.y) == ("1", None)


def test_datetime_fields_stay_strings_without_isodates() -> None:
    class Stamp(Record):
        at: datetime.datetime

    assert Stamp.loads(b'{"at": "2024-01-02T03:04:05"}').at == "2024-01-02T03:04:05"


def test_isodates_parses_iso_strings_naive_or_with_a_zone() -> None:
    assert Dated.loads(b'{"at": "2024-01-02T03:04:05Z"}').at == datetime.datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC
    )
    assert Dated.loads(b'{"at": "2024-01-02 03:04:05.000"}').at == datetime.datetime(
        2024, 1, 2, 3, 4, 5
    )


def test_datetimes_inside_containers_are_parsed_always() -> None:
    # typing.py: generic + custom types compile a comprehension that parses ISO strings
    dates = ListOfDates.loads(b'{"dates": ["2024-01-01T00:00:00", "2024-01-02T00:00:00"]}')
    assert dates.dates == [datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 2)]


def test_decimals_option_converts_decimal_fields() -> None:
    assert Priced.loads(b'{"amount": "1.10"}').amount == decimal.Decimal("1.10")

    class Plain(Record):
        amount: decimal.Decimal

    assert Plain.loads(b'{"amount": "1.10"}').amount == "1.10"


def test_nested_records_are_built_from_their_dicts() -> None:
    data = (
        b'{"id": "1", "username": "u", "account": {"id": "a", "name": "n", '
        b'"__faust": {"ns": "' + NS.encode() + b'.Account"}}}'
    )
    user = User.loads(data)
    assert user.account == Account("a", "n")
    accounts = AccountList.loads(b'{"accounts": [{"id": "a", "name": "n", "active": false}]}')
    assert accounts.accounts == [Account("a", "n", False)]


def test_null_in_a_field_with_a_default_gives_the_default() -> None:
    # faust: Q.loads('{"a": null, "b": null}') -> a=5, b='x'
    value = WithDefaults.loads(b'{"a": null, "b": null, "c": null}')
    assert (value.a, value.b, value.c) == (5, "x", None)


def test_a_missing_required_field_is_a_decode_error() -> None:
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=Point).loads_value(b'{"x": 1}')
    assert str(info.value) == "Point: TypeError: Point: missing required field 'y'"


def test_scalar_value_types_are_converted_as_fausts_registry_does() -> None:
    # Registry._prepare_payload: int(want_str(v)), float(...), Decimal(...); str as it is
    assert Schema(value_type=int).loads_value(b'"5"') == 5
    assert Schema(value_type=int).loads_value(b"3.9") == 3
    assert Schema(value_type=float).loads_value(b'"2.5"') == 2.5
    assert Schema(value_type=decimal.Decimal).loads_value(b'"1.5"') == decimal.Decimal("1.5")
    assert Schema(value_type=str).loads_value(b"3") == 3
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=int).loads_value(b'"five"')
    assert str(info.value) == "int: ValueError: invalid literal for int() with base 10: 'five'"


def test_strict_is_the_opt_in_for_full_type_checks() -> None:
    class Checked(Record, strict=True):
        x: int

    with pytest.raises(ValueDecodeError) as info:
        Checked.loads(b'{"x": "1"}')
    assert str(info.value) == "Checked: Expected int, got str at $.x"
    with pytest.raises(ValueDecodeError):
        Schema(value_type=int, strict=True).loads_value(b'"5"')
    # a lenient Record read through a strict schema is checked too
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=Point, strict=True).loads_value(b'{"x": "1", "y": 2}')
    assert str(info.value) == "Point: Expected int, got str at $.x"


# --- validation=True: coerce, then Faust's validators -------------------------------------------


def test_validation_coerces_on_decoding() -> None:
    # faust: V.loads('{"x": "3", "s": 4, "f": "2.5", "dec": "1.10"}')
    order = Order.loads(b'{"price": "3.13", "quantity": "10", "side": "BUY", "foo": "3.33"}')
    assert order.price == decimal.Decimal("3.13") and isinstance(order.price, decimal.Decimal)
    assert order.quantity == 10 and order.side == "BUY"
    assert order.foo == 3.33 and isinstance(order.foo, float)


def test_validation_coerces_on_construction_too() -> None:
    # test_validation_ensures_types_match: Order(price="3.13", quantity="10", ...)
    order = Order(price="3.13", quantity="10", side=5, foo="3.33")  # type: ignore[arg-type]
    assert (order.price, order.quantity, order.side, order.foo) == (
        decimal.Decimal("3.13"),
        10,
        "5",
        3.33,
    )


def test_validation_refuses_what_fausts_validators_refuse() -> None:
    with pytest.raises(ValidationError) as info:
        Order(price="NaN", quantity=2, side="BUY")  # type: ignore[arg-type]
    assert str(info.value) == "Illegal value in decimal: Decimal('NaN')"
    with pytest.raises(ValidationError) as info:
        Order(price="1", quantity=2, side="")  # type: ignore[arg-type]
    assert str(info.value) == "side cannot be left blank"
    with pytest.raises(ValueError) as value_info:
        Order(price="3.13", quantity="xyz", side="BUY")  # type: ignore[arg-type]
    assert str(value_info.value) == "invalid literal for int() with base 10: 'xyz'"
    with pytest.raises(ValueDecodeError) as decode_info:
        Order.loads(b'{"price": "1", "quantity": 1, "side": ""}')
    assert str(decode_info.value) == (
        "Order: streamlog.serde.errors.ValidationError: side cannot be left blank"
    )


def test_an_int_epoch_is_not_a_datetime_even_with_validation() -> None:
    # Faust's date_parser is ISO 8601 only: an int raises (TypeError in faust too)
    class When(Record, validation=True):
        at: datetime.datetime

    assert When.loads(b'{"at": "2024-01-02 03:04:05"}').at == datetime.datetime(2024, 1, 2, 3, 4, 5)
    with pytest.raises(ValueDecodeError) as info:
        When.loads(b'{"at": 1700000000}')
    assert "expected an ISO 8601 string for a datetime, got int" in str(info.value)


def test_date_parser_option_is_used_by_coercion() -> None:
    def from_epoch(value: Any) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(float(value), datetime.UTC)

    class When(Record, coerce=True, date_parser=from_epoch):
        at: datetime.datetime

    assert When.loads(b'{"at": 0}').at == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def test_coercion_runs_before_the_users_post_init() -> None:
    class Total(Record, coerce=True):
        a: int
        b: int

        def __post_init__(self) -> None:
            self.sum = self.a + self.b  # type: ignore[attr-defined]

    class Slotted(Total, dict=True):
        pass

    assert Slotted("1", "2").sum == 3  # type: ignore[arg-type, attr-defined]


def test_validation_is_not_inherited_but_coerce_is() -> None:
    # ModelOptions.clone_defaults copies coerce, not validation
    class Child(Order):
        pass

    assert Child._options.coerce and not Child._options.validation
    assert Child(price="1", quantity="2", side="").side == ""  # type: ignore[arg-type]


# --- options, dataclass, polymorphism -----------------------------------------------------------


def test_class_options_are_fausts() -> None:
    assert Point._options.namespace == f"{NS}.Point"
    assert Point._options.include_metadata and not Point._options.isodates
    assert Dated._options.isodates and Order._options.validation and Order._options.coerce

    class Named(Record, namespace="com.example.Named", include_metadata=False):
        x: int

        class Options:
            decimals = True

    assert Named._options.namespace == "com.example.Named"
    assert Named._options.decimals and not Named._options.include_metadata
    with pytest.raises(TypeError) as info:

        class Bad(Record, isodates="yes"):  # type: ignore[arg-type]
            x: int

    assert str(info.value) == "Bad: isodates must be True or False, got 'yes'"


def test_dataclass_decorator_is_tolerated() -> None:
    @dataclasses.dataclass
    class Ride(Record):
        rider: str
        lat: float = 0.0

    ride = Ride("ann")
    assert (ride.rider, ride.lat) == ("ann", 0.0)
    assert Ride.loads(ride.dumps()) == ride
    assert hash(Ride.__struct_fields__) and ride == Ride("ann", 0.0)


def test_polymorphic_fields_let_a_tagged_subclass_stand_in() -> None:
    # test_polymorphic_fields: the tag names a class with polymorphic_fields=True
    data = Holder(Special(303, "x")).dumps()
    assert isinstance(Holder.loads(data).item, Special)
    assert Base.from_data({"a": 1, "__faust": {"ns": f"{NS}.Special"}}) == Special(1)
    # without the option, the declared class is used
    assert Point.from_data({"x": 1, "y": 2, "__faust": {"ns": f"{NS}.Account"}}) == Point(1, 2)


# --- the __faust tag: written by default, read back where no type is declared -----------------


def test_dumps_writes_the_tag_last_as_faust_does() -> None:
    assert Point(1, 2).dumps() == b'{"x":1,"y":2,"__faust":{"ns":"' + NS.encode() + b'.Point"}}'
    user = User("1", "u", Account("a", "n"))
    assert json.loads(user.dumps()) == {
        "id": "1",
        "username": "u",
        "account": {
            "id": "a",
            "name": "n",
            "active": True,
            "__faust": {"ns": f"{NS}.Account"},
        },
        "__faust": {"ns": f"{NS}.User"},
    }
    assert user.to_representation() == json.loads(user.dumps())


def test_msgpack_carries_the_tag_too() -> None:
    data = Point(1, 2).dumps("msgpack")
    assert msgspec.msgpack.decode(data) == {"x": 1, "y": 2, "__faust": {"ns": f"{NS}.Point"}}
    assert Schema(value_serializer="msgpack").loads_value(data) == Point(1, 2)


def test_untyped_values_come_back_as_the_record_they_name() -> None:
    schema = Schema()  # no value_type: Faust's Model._maybe_reconstruct
    assert schema.loads_value(schema.dumps_value(Point(1, 2))) == Point(1, 2)
    nested = User("1", "u", Account("a", "n"))
    assert schema.loads_value(schema.dumps_value(nested)) == nested
    # an unknown namespace, or no tag, leaves the dict
    assert schema.loads_value(b'{"x":1,"__faust":{"ns":"no.such.Class"}}') == {
        "x": 1,
        "__faust": {"ns": "no.such.Class"},
    }
    assert schema.loads_value(b'{"x":1}') == {"x": 1}


def test_include_metadata_false_writes_no_tag() -> None:
    class Bare(Record, include_metadata=False):
        x: int

    assert Bare(1).dumps() == b'{"x":1}'
    assert Schema().loads_value(Bare(1).dumps()) == {"x": 1}


# --- against a real faust-streaming --------------------------------------------------------------

FAUST_PYTHON = os.path.join(os.path.dirname(__file__), "..", "..", ".venv-faust", "bin", "python")

FAUST_SIDE = textwrap.dedent(
    """
    import base64, datetime, decimal, sys
    from typing import List, Optional
    import faust

    class Point(faust.Record, namespace="compat.Point"):
        x: int
        y: int

    class Account(faust.Record, namespace="compat.Account"):
        id: str
        name: str
        active: bool = True

    class User(faust.Record, namespace="compat.User"):
        id: str
        username: str
        account: Account
        tags: List[str] = None

    values = [
        Point(1, 2),
        Point(-5, 10**12),
        Account("a1", "Ann Lee"),
        User("u1", "ann", Account("a1", "Ann", False), ["x", "y"]),
        User("u2", "bob", None),
    ]
    for value in values:
        print(base64.b64encode(value.dumps(serializer="json")).decode())
    for key in ["word", 42, -7, ["k", [1700000000.0, 1700000009.9]], True]:
        print(base64.b64encode(faust.serializers.codecs.dumps("json", key)).decode())
    # a table value that is a list of Records (default=list), as its changelog holds it
    listed = [Point(1, 2), Point(3, 4)]
    print(base64.b64encode(faust.serializers.codecs.dumps("json", listed)).decode())
    """
)


def _faust_output() -> list[bytes]:
    if not os.path.exists(FAUST_PYTHON):
        pytest.skip("no .venv-faust (scripts/setup.sh builds it from requirements-faust.txt)")
    import base64

    result = subprocess.run(
        [FAUST_PYTHON, "-c", FAUST_SIDE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [base64.b64decode(line) for line in result.stdout.split()]


class CPoint(Record, namespace="compat.Point"):
    x: int
    y: int


class CAccount(Record, namespace="compat.Account"):
    id: str
    name: str
    active: bool = True


class CUser(Record, namespace="compat.User"):
    id: str
    username: str
    account: CAccount | None
    tags: list[str] | None = None


def test_records_are_byte_for_byte_what_faust_writes() -> None:
    faust = _faust_output()
    ours = [
        CPoint(1, 2),
        CPoint(-5, 10**12),
        CAccount("a1", "Ann Lee"),
        CUser("u1", "ann", CAccount("a1", "Ann", False), ["x", "y"]),
        CUser("u2", "bob", None),
    ]
    assert [value.dumps() for value in ours] == faust[:5]
    # and Faust's bytes read back, untyped, as the same Records
    schema = Schema()
    assert [schema.loads_value(data) for data in faust[:5]] == ours


def test_faust_json_keys_are_what_table_keys_are_written_as() -> None:
    from streamlog.serde.codecs import FaustJsonCodec

    faust = _faust_output()
    codec = FaustJsonCodec()
    keys = ["word", 42, -7, ("k", (1700000000.0, 1700000009.9)), True]
    assert [codec.dumps(key) for key in keys] == faust[5:10]


def test_a_list_of_records_is_what_faust_writes_and_reads_back_as_records() -> None:
    faust = _faust_output()
    schema = Schema()
    assert schema.dumps_value([CPoint(1, 2), CPoint(3, 4)]) == faust[10]
    assert schema.loads_value(faust[10]) == [CPoint(1, 2), CPoint(3, 4)]


def test_main_module_namespace_is_named_after_the_file(tmp_path: Any) -> None:
    # Faust (mode's canoname) names __main__ after the file that runs: app.py -> "app.Ride"
    script = tmp_path / "app.py"
    script.write_text(
        "from streamlog.serde import Record\n"
        "class Ride(Record):\n    rider: str\n"
        "print(Ride('ann').dumps().decode())\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == '{"rider":"ann","__faust":{"ns":"app.Ride"}}'


def test_records_inside_untyped_lists_and_dicts_are_tagged_and_come_back():
    # Faust's json tags every Record it writes, in a list or dict too; its default
    # (in-memory) tables hand the Records back, so a table of lists of Records reads back
    # Records here, in either format
    from streamlog.serde import Record, Schema

    class Point(Record, namespace="tests.Point"):
        x: int

    for serializer in ("json", "msgpack"):
        schema = Schema(value_serializer=serializer)
        data = schema.dumps_value([Point(1), Point(2)])
        assert data.count(b"tests.Point") == 2
        assert schema.loads_value(data) == [Point(1), Point(2)]
        nested = schema.loads_value(schema.dumps_value({"a": Point(3), "b": [Point(4), 5]}))
        assert nested == {"a": Point(3), "b": [Point(4), 5]}
        assert schema.loads_value(schema.dumps_value({"plain": [1, 2]})) == {"plain": [1, 2]}
    assert Schema(value_serializer="json").dumps_value([Point(1)]) == (
        b'[{"x":1,"__faust":{"ns":"tests.Point"}}]'
    )
