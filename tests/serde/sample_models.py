"""Records shared by the serde tests, in an importable module (cloudpickle pickles them by
reference; a msgspec Struct class shipped by value arrives without its fields)."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Optional

from streamlog.serde import Record

__all__ = ["Ride", "Point", "Account", "Trip", "Stamped", "FrozenKey", "Packed"]


class Ride(Record):
    """Five fields: the model of the micro-benchmark in the report."""

    rider: str
    lat: float
    lon: float = 0.0
    speed: int = 0
    active: bool = True


class Point(Record):
    x: int
    y: int


class Account(Record):
    id: str
    owner: Point


class Trip(Record):
    rides: list[Ride]
    best: Optional[Ride] = None  # noqa: UP045 (the Optional spelling Faust users write)
    counts: dict[str, int] = {}
    account: Account | None = None


class Stamped(Record):
    at: datetime.datetime
    day: datetime.date
    amount: decimal.Decimal
    ident: uuid.UUID
    tags: list[str] = []


class FrozenKey(Record, frozen=True):
    region: str
    shard: int


class Packed(Record, serializer="msgpack"):
    name: str
    size: int
