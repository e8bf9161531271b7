"""Records shared by the serde tests, in an importable module (cloudpickle pickles them by
reference; a msgspec Struct class shipped by value arrives without its fields).

These are declared the strict, untagged way (``strict=True, include_metadata=False``:
msgspec's validating decoder, no ``__faust`` tag), the behaviour these tests pin down;
Faust's default rules are tested with the models of ``tests/serde/faust_models.py``."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Optional

from streamlog.serde import Record

__all__ = ["Ride", "Point", "Account", "Trip", "Stamped", "FrozenKey", "Packed"]


class Ride(Record, strict=True, include_metadata=False):
    """Five fields: the model of the micro-benchmark in the report."""

    rider: str
    lat: float
    lon: float = 0.0
    speed: int = 0
    active: bool = True


class Point(Record, strict=True, include_metadata=False):
    x: int
    y: int


class Account(Record, strict=True, include_metadata=False):
    id: str
    owner: Point


class Trip(Record, strict=True, include_metadata=False):
    rides: list[Ride]
    best: Optional[Ride] = None  # noqa: UP045 (the Optional spelling Faust users write)
    counts: dict[str, int] = {}
    account: Account | None = None


class Stamped(Record, strict=True, include_metadata=False):
    at: datetime.datetime
    day: datetime.date
    amount: decimal.Decimal
    ident: uuid.UUID
    tags: list[str] = []


class FrozenKey(Record, frozen=True, strict=True, include_metadata=False):
    region: str
    shard: int


class Packed(Record, serializer="msgpack", strict=True, include_metadata=False):
    name: str
    size: int
