"""Access to kio's message schemas: lookup by (API key, version) and a version-agnostic builder.

kio generates one frozen dataclass per message *version* (``kio.schema.fetch.v12.response.
FetchResponse`` and so on). A handler serving versions 4..12 of an API would otherwise need
nine constructors; ``build_message`` takes the values as plain Python data (nested dicts
and lists) and builds whichever version's class it is given, as Kafka's generated code
does: fields the version lacks are dropped, fields the caller leaves out take their
schema default (or the type's zero value), and nested entities are built recursively.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kio.index import (
    UnknownAPIKey,
    UnknownEntity,
    load_request_schema,
    load_response_schema,
)
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.static.constants import EntityType
from kio.static.protocol import RequestPayload, ResponsePayload

__all__ = [
    "RequestPayload",
    "ResponsePayload",
    "build_message",
    "is_flexible_request_header",
    "is_flexible_response_header",
    "request_class",
    "response_class",
]

E = TypeVar("E")


@functools.cache
def request_class(api_key: int, version: int) -> type[RequestPayload]:
    """kio's request class for ``api_key`` at ``version``.

    :raises LookupError: kio does not model that API key or version.
    """
    try:
        return load_request_schema(api_key, version)
    except (UnknownAPIKey, UnknownEntity) as e:
        raise LookupError(f"no request schema for API key {api_key} v{version}") from e


@functools.cache
def response_class(api_key: int, version: int) -> type[ResponsePayload]:
    """kio's response class for ``api_key`` at ``version``.

    :raises LookupError: kio does not model that API key or version.
    """
    try:
        return load_response_schema(api_key, version)
    except (UnknownAPIKey, UnknownEntity) as e:
        raise LookupError(f"no response schema for API key {api_key} v{version}") from e


def is_flexible_request_header(request_type: type[RequestPayload]) -> bool:
    """Whether requests of this type carry request header v2 (tagged fields) rather than v1."""
    return bool(request_type.__header_schema__.__flexible__)


def is_flexible_response_header(response_type: type[ResponsePayload]) -> bool:
    """Whether responses of this type carry response header v1 rather than v0.

    ApiVersions responses use v0 at every version, so that a client can read the
    correlation id of a response to a version the broker does not support; kio encodes
    that rule in ``__header_schema__``.
    """
    return bool(response_type.__header_schema__.__flexible__)


# --- the builder ------------------------------------------------------------------------


def _zero_for(kafka_type: str | None) -> object:
    match kafka_type:
        case "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32" | "uint64":
            return 0
        case "float64":
            return 0.0
        case "string":
            return ""
        case "bytes" | "records":
            return b""
        case "bool":
            return False
        case "uuid":
            return uuid.UUID(int=0)
        case "error_code":
            return KioErrorCode.none
        case "timedelta_i32" | "timedelta_i64":
            return datetime.timedelta(0)
        case "datetime_i64":
            return datetime.datetime.fromtimestamp(0, datetime.UTC)
    raise TypeError(f"no zero value for kafka type {kafka_type!r}")


def _convert_primitive(kafka_type: str | None) -> Callable[[Any], object] | None:
    """A converter from plain Python values to what kio's writers expect, or None if as-is."""
    match kafka_type:
        case "error_code":
            return lambda v: v if type(v) is KioErrorCode else KioErrorCode(int(v))
        case "timedelta_i32" | "timedelta_i64":
            return lambda v: (
                v if isinstance(v, datetime.timedelta) else datetime.timedelta(milliseconds=v)
            )
        case "datetime_i64":
            return _to_datetime
    return None


def _to_datetime(value: object) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    if isinstance(value, int):
        if value == -1:
            return None
        return datetime.datetime.fromtimestamp(value / 1000, datetime.UTC)
    raise TypeError(f"expected epoch milliseconds or a datetime, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    optional: bool
    is_array: bool
    entity: type | None  # element entity class, for entity and entity-array fields
    convert: Callable[[Any], object] | None
    has_default: bool
    zero: Callable[[], object]


def _unwrap(tp: Any) -> tuple[Any, bool, bool]:
    """(innermost type, optional, is_array) of a kio field annotation."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not types.NoneType]
        optional = len(args) < len(typing.get_args(tp))
        (tp,) = args
        origin = typing.get_origin(tp)
    if origin is tuple:
        return typing.get_args(tp)[0], optional, True
    return tp, optional, False


@functools.cache
def _plan(cls: type) -> tuple[dict[str, _FieldPlan], frozenset[str]]:
    plans: dict[str, _FieldPlan] = {}
    for f in dataclasses.fields(cls):
        inner, optional, is_array = _unwrap(f.type)
        entity: type | None = (
            inner if isinstance(inner, type) and dataclasses.is_dataclass(inner) else None
        )
        kafka_type = f.metadata.get("kafka_type")
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        zero: Callable[[], object]
        if optional:
            zero = _none
        elif is_array:
            zero = tuple
        elif entity is not None:
            zero = functools.partial(build_message, entity)
        else:
            zero = functools.partial(_zero_for, kafka_type)
        plans[f.name] = _FieldPlan(
            name=f.name,
            optional=optional,
            is_array=is_array,
            entity=entity,
            convert=None if entity is not None else _convert_primitive(kafka_type),
            has_default=has_default,
            zero=zero,
        )
    return plans, _names_of_message(cls)


def _none() -> None:
    return None


def _walk_names(cls: type, into: set[str]) -> None:
    for f in dataclasses.fields(cls):
        into.add(f.name)
        inner, _, _ = _unwrap(f.type)
        if dataclasses.is_dataclass(inner):
            _walk_names(typing.cast(type, inner), into)


@functools.cache
def _names_across_versions(api_name: str, entity_type: EntityType) -> frozenset[str]:
    names: set[str] = set()
    for version in schema_name_map[api_name]:
        top: type[Any]
        try:
            if entity_type is EntityType.request:
                top = load_request_schema(_api_key_of[api_name], version)
            else:
                top = load_response_schema(_api_key_of[api_name], version)
        except (UnknownAPIKey, UnknownEntity):
            continue
        _walk_names(top, names)
    return frozenset(names)


_api_key_of: Mapping[str, int] = {name: key for key, name in api_key_map.items()}


def _names_of_message(cls: type) -> frozenset[str]:
    """Every field name any version of the message that ``cls`` belongs to has, at any depth.

    Lets ``build_message`` ignore a field a version lacks while still rejecting a misspelt
    one. Classes outside an API's request/response (headers, data records) only accept
    their own field names.
    """
    module = cls.__module__.split(".")
    # kio.schema.<api_name>.v<N>.<request|response>
    if len(module) == 5 and module[:2] == ["kio", "schema"] and module[2] in _api_key_of:
        if module[4] == "request":
            return _names_across_versions(module[2], EntityType.request)
        if module[4] == "response":
            return _names_across_versions(module[2], EntityType.response)
    return frozenset(f.name for f in dataclasses.fields(cls))


def build_message(cls: type[E], /, **values: Any) -> E:
    """Build an instance of the kio entity class ``cls`` from plain values.

    Nested entities may be given as mappings and arrays of entities as iterables of
    mappings (instances of the right class pass through untouched). Error codes may be
    ints or ``ErrorCode`` members, durations ints of milliseconds, timestamps epoch
    milliseconds (``-1`` for a nullable timestamp means null). A field the given version
    does not have is ignored; a name no version of the message has raises ``TypeError``.
    A field left out takes its schema default, else null if nullable, else the type's zero
    (0, "", b"", False, empty array, zero UUID, an entity of defaults).
    """
    plans, known = _plan(typing.cast(type, cls))
    kwargs: dict[str, object] = {}
    for name, value in values.items():
        plan = plans.get(name)
        if plan is None:
            if name not in known:
                raise TypeError(f"{cls.__module__}.{cls.__qualname__} has no field {name!r}")
            continue
        kwargs[name] = _convert(plan, value)
    for name, plan in plans.items():
        if name not in kwargs and not plan.has_default:
            kwargs[name] = plan.zero()
    return cls(**kwargs)


def _convert(plan: _FieldPlan, value: Any) -> object:
    if value is None:
        return None
    if plan.is_array:
        return tuple(_convert_item(plan, item) for item in typing.cast(Iterable[Any], value))
    return _convert_item(plan, value)


def _convert_item(plan: _FieldPlan, value: Any) -> object:
    entity = plan.entity
    if entity is not None:
        if isinstance(value, Mapping):
            return build_message(entity, **value)
        return value
    if plan.convert is not None:
        return plan.convert(value)
    return value
