"""Shared helpers for the wire codec tests (imported by the test modules beside it)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
from kio.static.primitive import Records, i64Timedelta

from streamlog.protocol import SUPPORTED_VERSIONS, ApiKey

# kio types record sets as the opaque ``Records`` bytes type and registers no strategy.
st.register_type_strategy(Records, st.binary(max_size=64).map(Records))

# kio's writer goes through float seconds and its native reader keeps durations as int64
# microseconds, so int64 durations beyond ~2**53 microseconds do not survive a round trip
# (kio's own strategy goes beyond). Real peers send hours, or -1.
_I64_MS_READABLE = 2**53 // 1000
st.register_type_strategy(
    i64Timedelta,
    st.integers(-_I64_MS_READABLE, _I64_MS_READABLE).map(
        lambda ms: i64Timedelta.parse(datetime.timedelta(milliseconds=ms))
    ),
)

client_ids = st.none() | st.text(max_size=20)


def api_version_params() -> list[Any]:
    """(api_key, version) at the lowest and highest version we support, for every API."""
    params = []
    for api_key, versions in sorted(SUPPORTED_VERSIONS.items()):
        for version in sorted({versions.min, versions.max}):
            params.append(
                pytest.param(api_key, version, id=f"{ApiKey(api_key).name.lower()}-v{version}")
            )
    return params


def all_version_params(api_key: int, versions: range) -> list[Any]:
    return [pytest.param(api_key, v, id=f"v{v}") for v in versions]


def error_codes_in(entity: object) -> Iterator[tuple[str, int]]:
    """Every (path, value) of a field named ``error_code`` anywhere inside a kio entity."""
    yield from _walk(entity, "")


def _walk(value: object, path: str) -> Iterator[tuple[str, int]]:
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            child = getattr(value, f.name)
            if f.name == "error_code":
                yield f"{path}.{f.name}", int(child)
            else:
                yield from _walk(child, f"{path}.{f.name}")
