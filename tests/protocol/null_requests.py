"""Requests with one array set to null (count -1), for every array of every request we serve.

kio's writer encodes ``None`` as a null array whatever the schema says, so a request
object with ``None`` in a non-nullable array field gives exactly the bytes a hostile
client would send. Every enclosing array holds one element, so nested arrays are reached.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from streamlog.protocol import SUPPORTED_VERSIONS, ApiKey, RequestPayload, request_class

__all__ = ["NullArrayRequest", "null_array_requests"]

# One plain value per primitive Kafka type for array elements (ids, names, indexes).
_ELEMENT_VALUES: dict[str, Any] = {
    "string": "nulltest",
    "int8": 0,
    "int16": 0,
    "int32": 0,
    "int64": 0,
    "uuid": uuid.UUID(int=1),
    "bytes": b"",
}


class NullArrayRequest(NamedTuple):
    api_key: ApiKey
    version: int
    path: tuple[str, ...]  # field names from the body down to the null array
    nullable: bool  # whether Kafka's schema allows that array to be null
    request: RequestPayload

    @property
    def name(self) -> str:
        return f"{self.api_key.name.lower()}-v{self.version}-{'.'.join(self.path)}"


def _unwrap(tp: Any) -> tuple[Any, bool, bool]:
    """(inner type, nullable, is an array) of a kio field annotation."""
    nullable = False
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not types.NoneType]
        nullable = len(args) < len(typing.get_args(tp))
        (tp,) = args
    if typing.get_origin(tp) is tuple:
        return typing.get_args(tp)[0], nullable, True
    return tp, nullable, False


def _is_entity(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _sample(entity_type: Any) -> Any:
    """An instance with one element in every (untagged) array, defaults elsewhere."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(entity_type):
        inner, _, is_array = _unwrap(f.type)
        tagged = f.metadata.get("tag") is not None
        if is_array and not tagged:
            if _is_entity(inner):
                values[f.name] = (_sample(inner),)
            else:
                values[f.name] = (_ELEMENT_VALUES[f.metadata["kafka_type"]],)
        elif _is_entity(inner) and f.default is dataclasses.MISSING:
            values[f.name] = _sample(inner)
    return _build(entity_type, values)


def _build(entity_type: Any, values: dict[str, Any]) -> Any:
    from streamlog.protocol import build_message

    plain = {k: _plain(v) for k, v in values.items()}
    return build_message(entity_type, **plain)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _array_paths(
    entity_type: Any, prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], bool]]:
    for f in dataclasses.fields(entity_type):
        if f.metadata.get("tag") is not None:
            continue
        inner, nullable, is_array = _unwrap(f.type)
        path = (*prefix, f.name)
        if is_array:
            yield path, nullable
        if _is_entity(inner):
            yield from _array_paths(inner, path)


def _with_null(value: Any, path: tuple[str, ...]) -> Any:
    name, rest = path[0], path[1:]
    if not rest:
        return dataclasses.replace(value, **{name: None})
    child = getattr(value, name)
    if isinstance(child, tuple):
        child = (_with_null(child[0], rest), *child[1:])
    else:
        child = _with_null(child, rest)
    return dataclasses.replace(value, **{name: child})


def null_array_requests() -> list[NullArrayRequest]:
    """One request per (API, version, array field), that array null, the rest filled."""
    out = []
    for api_key, versions in sorted(SUPPORTED_VERSIONS.items()):
        for version in range(versions.min, versions.max + 1):
            request_type = request_class(api_key, version)
            sample = _sample(request_type)
            for path, nullable in _array_paths(request_type, ()):
                out.append(
                    NullArrayRequest(
                        ApiKey(api_key), version, path, nullable, _with_null(sample, path)
                    )
                )
    return out
