"""Connectors by name: what ``streamlog connect CONFIG`` builds from a ``[[source]]`` or
``[[sink]]`` table.

A table names its connector by ``type`` (a built-in: the module below, whose
``source_from_config(name, config)`` / ``sink_from_config(name, config)`` builds it) or
by ``class = "package.module:attr"`` (a user's own: ``attr.from_config(name, config)``
when it has one, else ``attr(name=name, **config)``). ``config`` is the table without
``name``, ``type``/``class``, ``topic`` and the runner's own keys (``RUNNER_KEYS``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from streamlog.connect.base import Sink, Source
from streamlog.connect.errors import ConnectorConfigError

__all__ = [
    "SOURCE_TYPES",
    "SINK_TYPES",
    "RUNNER_KEYS",
    "ConnectorEntry",
    "parse_entry",
    "build_source",
    "build_sink",
]

SOURCE_TYPES = {
    "file": "streamlog.connect.files",
    "webhook": "streamlog.connect.http",
    "postgres": "streamlog.connect.postgres",
}
SINK_TYPES = {
    "file": "streamlog.connect.files",
    "http": "streamlog.connect.http",
    "sqlite": "streamlog.connect.sqlite",
    "postgres": "streamlog.connect.postgres",
}
# Keys of a table the runner takes (``App.source``/``App.sink``'s options), not the connector.
RUNNER_KEYS = {
    "source": ("checkpoint_interval",),
    "sink": ("retry_for", "max_batch", "max_pending"),
}


class ConnectorEntry:
    """One ``[[source]]``/``[[sink]]`` table, split: what the runner takes and what the
    connector's factory gets."""

    __slots__ = ("kind", "name", "topic", "type", "class_path", "config", "runner")

    def __init__(
        self,
        kind: str,
        name: str,
        topic: str,
        type: str | None,
        class_path: str | None,
        config: dict[str, Any],
        runner: dict[str, Any],
    ) -> None:
        self.kind = kind
        self.name = name
        self.topic = topic
        self.type = type
        self.class_path = class_path
        self.config = config
        self.runner = runner

    def __repr__(self) -> str:
        return f"<ConnectorEntry {self.kind} {self.name} {self.type or self.class_path}>"


def parse_entry(kind: str, table: Mapping[str, Any], where: str) -> ConnectorEntry:
    """Check the common keys of a ``[[source]]``/``[[sink]]`` table (``where`` names it in
    errors: ``"[[sink]] #2"``)."""
    if kind not in ("source", "sink"):
        raise ValueError(f"kind is 'source' or 'sink', not {kind!r}")
    if not isinstance(table, Mapping):
        raise ConnectorConfigError(f"{where}: expected a table, got {type(table).__name__}")
    rest = dict(table)
    name = rest.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConnectorConfigError(f"{where}: 'name' is required (a non-empty string)")
    where = f"{where} ({name!r})"
    topic = rest.pop("topic", None)
    if not isinstance(topic, str) or not topic:
        raise ConnectorConfigError(f"{where}: 'topic' is required (a non-empty string)")
    type_ = rest.pop("type", None)
    class_path = rest.pop("class", None)
    if (type_ is None) == (class_path is None):
        raise ConnectorConfigError(f"{where}: give exactly one of 'type' and 'class'")
    known = SOURCE_TYPES if kind == "source" else SINK_TYPES
    if type_ is not None and type_ not in known:
        raise ConnectorConfigError(
            f"{where}: unknown {kind} type {type_!r} (known: {', '.join(sorted(known))}; "
            'or class = "package.module:attr")'
        )
    if class_path is not None and (not isinstance(class_path, str) or ":" not in class_path):
        raise ConnectorConfigError(
            f"{where}: 'class' is \"package.module:attr\", not {class_path!r}"
        )
    runner = {key: rest.pop(key) for key in RUNNER_KEYS.get(kind, ()) if key in rest}
    return ConnectorEntry(kind, name, topic, type_, class_path, rest, runner)


def build_source(entry: ConnectorEntry) -> Source:
    """The ``Source`` an entry describes (``ConnectorConfigError`` when it cannot)."""
    made = _build(entry, "source_from_config")
    if not isinstance(made, Source):
        raise ConnectorConfigError(
            f"source {entry.name!r}: {entry.type or entry.class_path} made {made!r}, "
            "which is not a Source (start, poll, close, status, name)"
        )
    return made


def build_sink(entry: ConnectorEntry) -> Sink:
    """The ``Sink`` an entry describes (``ConnectorConfigError`` when it cannot)."""
    made = _build(entry, "sink_from_config")
    if not isinstance(made, Sink):
        raise ConnectorConfigError(
            f"sink {entry.name!r}: {entry.type or entry.class_path} made {made!r}, "
            "which is not a Sink (start, write, flush, discard, close, status, name)"
        )
    return made


def _build(entry: ConnectorEntry, factory_name: str) -> Any:
    label = f"{entry.kind} {entry.name!r}"
    if entry.type is not None:
        table = SOURCE_TYPES if entry.kind == "source" else SINK_TYPES
        module = _import(table[entry.type], label)
        factory = getattr(module, factory_name, None)
        if factory is None:
            raise ConnectorConfigError(
                f"{label}: type {entry.type!r} has no {entry.kind} ({module.__name__} lacks "
                f"{factory_name})"
            )
        return factory(entry.name, dict(entry.config))
    module_name, _, attr = str(entry.class_path).partition(":")
    module = _import(module_name, label)
    target = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConnectorConfigError(
                f"{label}: {module_name} has no attribute {attr!r}"
            ) from None
    from_config = getattr(target, "from_config", None)
    try:
        if callable(from_config):
            return from_config(entry.name, dict(entry.config))
        return target(name=entry.name, **entry.config)
    except ConnectorConfigError:
        raise
    except TypeError as exc:
        raise ConnectorConfigError(f"{label}: {entry.class_path}: {exc}") from exc


def _import(module_name: str, label: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConnectorConfigError(f"{label}: cannot import {module_name}: {exc}") from exc
