"""``[[source]]``/``[[sink]]`` tables of ``type = "file"`` to a ``FileSource``/``FileSink``
(the registry calls these). Each key's type is checked here, before a constructor sees it,
so that a config file's mistake names its key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlog.connect.errors import ConnectorConfigError
from streamlog.connect.files.sink import FileSink
from streamlog.connect.files.source import FileSource

__all__ = ["source_from_config", "sink_from_config"]

_SOURCE_KEYS: dict[str, tuple[type, ...]] = {
    "path": (str,),
    "format": (str,),
    "follow": (bool,),
    "key_field": (str,),
    "columns": (list,),
    "header": (bool,),
    "delimiter": (str,),
    "encoding": (str,),
    "start_at": (str,),
    "on_error": (str,),
    "batch_size": (int,),
    "poll_interval": (int, float),
    "max_record_bytes": (int,),
}

_SINK_KEYS: dict[str, tuple[type, ...]] = {
    "path": (str,),
    "format": (str,),
    "columns": (list,),
    "delimiter": (str,),
    "max_bytes": (int,),
    "max_age": (int, float),
    "buffer_bytes": (int,),
}


def source_from_config(name: str, config: Mapping[str, Any]) -> FileSource:
    """A file source from its config table (without ``name``, ``type``, ``topic``)."""
    settings = _checked(name, config, _SOURCE_KEYS)
    return FileSource(settings.pop("path"), name=name, **settings)


def sink_from_config(name: str, config: Mapping[str, Any]) -> FileSink:
    """A file sink from its config table (without ``name``, ``type``, ``topic``)."""
    settings = _checked(name, config, _SINK_KEYS)
    return FileSink(settings.pop("path"), name=name, **settings)


def _checked(
    name: str, config: Mapping[str, Any], keys: Mapping[str, tuple[type, ...]]
) -> dict[str, Any]:
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise ConnectorConfigError(
            f"{name}: unknown key {unknown[0]!r} (a file connector takes {', '.join(keys)})"
        )
    if "path" not in config:
        raise ConnectorConfigError(f"{name}: path: missing (the file to read or write)")
    for key, value in config.items():
        expected = keys[key]
        wrong_bool = isinstance(value, bool) and bool not in expected
        if wrong_bool or not isinstance(value, expected):
            kinds = " or ".join(t.__name__ for t in expected)
            raise ConnectorConfigError(f"{name}: {key}: {value!r} is not a {kinds}")
        if isinstance(value, list) and not all(isinstance(c, str) for c in value):
            raise ConnectorConfigError(f"{name}: columns: {value!r} is not a list of names")
    return dict(config)
