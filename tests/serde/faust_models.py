"""Records declared the way Faust programs declare them (Faust's defaults: no type checks
when decoding, the ``__faust`` tag written), in an importable module so their namespace is
stable: ``tests.serde.faust_models.<Class>``."""

from __future__ import annotations

import datetime
import decimal
from typing import Optional

from streamlog.serde import Record

__all__ = [
    "Point",
    "Account",
    "User",
    "AccountList",
    "Order",
    "Dated",
    "ListOfDates",
    "WithDefaults",
    "Priced",
    "Base",
    "Special",
    "Holder",
]


class Point(Record):
    x: int
    y: int


class Account(Record):
    id: str
    name: str
    active: bool = True


class User(Record):
    id: str
    username: str
    account: Account


class AccountList(Record):
    accounts: list[Account]


class Order(Record, validation=True):
    price: decimal.Decimal
    quantity: int
    side: str
    foo: float = 3.33


class Dated(Record, isodates=True):
    at: datetime.datetime
    note: Optional[str] = None  # noqa: UP045 (Faust programs spell it so)


class ListOfDates(Record):
    dates: list[datetime.datetime]


class WithDefaults(Record):
    a: int = 5
    b: str = "x"
    c: Optional[int] = None  # noqa: UP045


class Priced(Record, decimals=True):
    amount: decimal.Decimal


class Base(Record):
    a: int


class Special(Record, polymorphic_fields=True):
    a: int
    extra: str = "special"


class Holder(Record):
    item: Special
