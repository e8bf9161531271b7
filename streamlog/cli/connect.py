"""``streamlog connect CONFIG.toml``: run connectors from a config file, as Kafka Connect's
standalone mode does, in a worker like ``streamlog worker`` (same options).

The file (``tomllib``)::

    [app]                      # App settings: id (required), broker, web_port, ...
    id = "orders-connect"
    broker = "file://./.streamlog"

    [topic.orders]             # optional: declare a topic (App.topic's keywords)
    partitions = 6

    [[source]]                 # any number of sources and sinks
    name = "orders-in"         # unique: keys the source's saved position
    type = "file"              # a built-in (streamlog.connect.registry), or
    # class = "mypkg.mod:MySource"  a connector of your own
    topic = "orders"
    path = "/var/spool/orders.jsonl"   # the connector's own keys

    [[sink]]
    name = "orders-db"
    type = "sqlite"
    topic = "orders"
    retry_for = 300            # the runner's: retry_for, max_batch, max_pending
    path = "orders.db"
    table = "orders"

A bad file is refused before anything starts, with the table and key at fault.
"""

from __future__ import annotations

import os
import sys
import tomllib
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from streamlog.cli.commands import CliState
from streamlog.cli.worker import WORKER, _run_worker_command

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["connect", "app_from_config"]

_SECTIONS = ("app", "topic", "source", "sink")


def app_from_config(path: str) -> App:
    """The app a connect config file describes (``click.ClickException`` naming what is
    wrong: the worker exits 1 before opening anything)."""
    from streamlog.connect.errors import ConnectorConfigError
    from streamlog.connect.registry import build_sink, build_source, parse_entry
    from streamlog.dsl import App
    from streamlog.dsl.errors import ImproperlyConfigured
    from streamlog.dsl.settings import UnknownSettingWarning

    data = _read(path)
    # ``class = "module:attr"`` imports from next to the config file and from the current
    # directory, as ``streamlog worker app.py`` imports the modules next to the app
    for directory in (os.getcwd(), os.path.dirname(os.path.abspath(path))):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise click.ClickException(
            f"{path}: unknown section(s) {', '.join(unknown)} (known: {', '.join(_SECTIONS)}; "
            "sources and sinks are [[source]] and [[sink]])"
        )
    settings = dict(_table(data, "app", path))
    app_id = settings.pop("id", None)
    if not isinstance(app_id, str) or not app_id:
        raise click.ClickException(f'{path}: [app] needs id = "..." (the app\'s id)')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownSettingWarning)
        try:
            app = App(app_id, **settings)
        except (TypeError, ValueError, ImproperlyConfigured) as exc:
            raise click.ClickException(f"{path}: [app]: {exc}") from None
    for warning in caught:
        if issubclass(warning.category, UnknownSettingWarning):
            raise click.ClickException(f"{path}: [app]: {warning.message}")
    try:
        for name, options in _table(data, "topic", path).items():
            if not isinstance(options, Mapping):
                raise click.ClickException(f"{path}: [topic.{name}] must be a table")
            try:
                app.topic(name, **options)
            except TypeError as exc:
                raise click.ClickException(f"{path}: [topic.{name}]: {exc}") from None
        sources = _array(data, "source", path)
        sinks = _array(data, "sink", path)
        if not sources and not sinks:
            raise click.ClickException(f"{path}: no [[source]] and no [[sink]]: nothing to run")
        for index, table in enumerate(sources, 1):
            entry = parse_entry("source", table, f"{path}: [[source]] #{index}")
            app.source(build_source(entry), topic=entry.topic, **entry.runner)
        for index, table in enumerate(sinks, 1):
            entry = parse_entry("sink", table, f"{path}: [[sink]] #{index}")
            app.sink(entry.topic, build_sink(entry), **entry.runner)
    except (ConnectorConfigError, ImproperlyConfigured) as exc:
        raise click.ClickException(str(exc)) from None
    return app


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(f"{path}: not valid TOML: {exc}") from None


def _table(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise click.ClickException(f"{path}: [{key}] must be a table")
    return value


def _array(data: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise click.ClickException(f"{path}: {key} must be an array of tables: [[{key}]]")
    return value


def _connect(config: str, **options: Any) -> None:
    _run_worker_command(lambda: app_from_config(config), CliState(), **options)


def _build() -> click.Command:
    fun: Any = _connect
    for decorator in reversed(
        [click.argument("config", type=click.Path(dir_okay=False)), *WORKER.options]
    ):
        fun = decorator(fun)
    return click.command(
        "connect",
        help="""Run the connectors CONFIG (a TOML file) describes, until Ctrl-C or SIGTERM.

        Kafka Connect's standalone mode: [app] (id, broker and any App setting),
        [[source]] and [[sink]] tables (name, type or class, topic, the connector's keys).
        Runs as `streamlog worker` does, with the same options; the web endpoint adds
        /connect/ (every connector's status as JSON) and connector counters on /metrics.
        See docs/connect.md.
        """,
    )(fun)


connect = _build()
