"""``streamlog tables APP [NAME]``: an app's tables, and one table's contents.

Without NAME: one line per table (kind, window, partitions, store, changelog topic,
default, help). With NAME: the table's contents as ``Table.as_ansitable`` prints them, read
without running the app, from one of two places (``--from``):

* ``changelog`` (the default, always right): every partition of the table's changelog
  topic replayed into memory, through the app's broker URL (or ``--broker``). A
  ``file://`` log that a running worker owns is reached through that worker's listener
  (``streamlog.cli.common.start_transport``). What it shows is what the app has
  committed: changes made since the last commit are not in the changelog yet.
* ``store``: the RocksDB databases under the app's data directory
  (``<datadir>/tables/<name>/<partition>``), opened read-only, so it works next to a
  running worker too, and needs no broker. It shows the partitions this machine holds,
  as of their last commit.

Values are decoded with the table's key and value types; bytes that do not decode are
shown as the raw bytes. A windowed table shows one row per live window (KEY, WINDOW,
VALUE), as its ``as_ansitable`` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import click

from streamlog.cli.builtin import BuiltinCommand
from streamlog.cli.commands import CliState
from streamlog.cli.common import SECURITY_OPTIONS, format_table, one_line
from streamlog.cli.errors import CliError

if TYPE_CHECKING:
    from streamlog.dsl import App
    from streamlog.dsl.tables.table import Table
    from streamlog.transport.base import Transport

__all__ = [
    "TABLES",
    "tables",
    "render",
    "table_rows",
    "window_rows",
    "read_changelog",
    "read_store",
]


def render(
    table: Table, partitions: Mapping[int, list[tuple[bytes, bytes]]], limit: int = 0
) -> str:
    """The table's stored bytes laid out as its ``as_ansitable`` lays out its items."""
    from streamlog.dsl.tables.table import ansitable

    rows: list[tuple[str, ...]]
    if getattr(table, "windowed", None) is not None:
        head: tuple[str, ...] = ("KEY", "WINDOW", "VALUE")
        rows = [(repr(k), w, repr(v)) for k, w, v in window_rows(table, partitions)]
    else:
        head = ("KEY", "VALUE")
        raw = [pair for number in sorted(partitions) for pair in partitions[number]]
        rows = [(repr(k), repr(v)) for k, v in table_rows(table, raw)]
    rows.sort()
    if limit:
        rows = rows[:limit]
    return ansitable(table.name, head, rows)


def _loads(loads: Callable[[bytes], Any], data: bytes) -> Any:
    from streamlog.serde import SerdeError

    try:
        return loads(data)
    except SerdeError:
        return data


def table_rows(table: Table, raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[Any, Any]]:
    """Decoded (key, value) pairs of a plain table from its stored bytes (the bytes
    themselves where they do not decode)."""
    from streamlog.dsl.tables.kinds import SetTable

    schema = table.changelog_topic.schema
    out: list[tuple[Any, Any]] = []
    for raw_key, raw_value in raw:
        value = _loads(schema.loads_value, raw_value)
        if isinstance(table, SetTable) and isinstance(value, list):
            value = {_hashable(v) for v in value}
        out.append((_loads(schema.loads_key, raw_key), value))
    return out


def window_rows(
    table: Table, partitions: Mapping[int, list[tuple[bytes, bytes]]]
) -> list[tuple[Any, str, Any]]:
    """(key, window, value) of a windowed table's live windows, from its stored bytes.

    Decoded by the windowed table itself (``decode_stored``, ``decode_stream_time``,
    ``is_expired``), so the store layout is known in one place. A window that its
    partition's stream time has expired is left out, as the live table leaves it out.
    """
    from streamlog.state.window_store import STREAM_TIME_KEY
    from streamlog.state.windows import SessionWindow, SlidingWindow

    windowed = getattr(table, "windowed", None)
    if windowed is None:
        raise CliError(f"table {table.name!r} is not a windowed table")
    close = "]" if isinstance(windowed.window, SessionWindow | SlidingWindow) else ")"
    schema = table.changelog_topic.schema
    out: list[tuple[Any, str, Any]] = []
    for number in sorted(partitions):
        pairs = partitions[number]
        stream_time = next(
            (windowed.decode_stream_time(v) for k, v in pairs if k == STREAM_TIME_KEY), None
        )
        for key, data in pairs:
            entry = windowed.decode_stored(key, data)
            if entry is None:
                continue
            raw, window, payload = entry
            if windowed.is_expired(window, stream_time):
                continue
            value = _loads(schema.loads_value, payload)
            out.append(
                (_loads(schema.loads_key, raw), f"[{window.start}, {window.end}{close}", value)
            )
    return out


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


async def read_changelog(
    transport: Transport, app: App, table: Table
) -> dict[int, list[tuple[bytes, bytes]]]:
    """The table's latest (key, value) bytes per partition, replayed from its changelog."""
    from streamlog.state.memory_store import MemoryStorePartition
    from streamlog.state.recovery import recover_partition
    from streamlog.transport.errors import UnknownTopicError
    from streamlog.transport.types import TopicPartition

    name = table.changelog_topic.name
    admin = transport.admin()
    try:
        info = await admin.describe_topic(name)
    except UnknownTopicError:
        raise click.ClickException(
            f"changelog topic {name} does not exist on {app.conf.broker}: the app has not "
            f"committed a change to table {table.name!r} there yet"
        ) from None
    finally:
        await admin.close()
    consumer = transport.consumer(client_id=f"{app.conf.id}-tables")
    out: dict[int, list[tuple[bytes, bytes]]] = {}
    try:
        for number in sorted(p.partition for p in info.partitions):
            partition = MemoryStorePartition()
            await recover_partition(
                consumer, partition, TopicPartition(name, number), idle_timeout_ms=10_000
            )
            out[number] = list(partition.items())
    finally:
        await consumer.close()
    return out


def read_store(table: Table, datadir: str) -> dict[int, list[tuple[bytes, bytes]]]:
    """The (key, value) bytes of each of the table's RocksDB partitions under ``datadir``.

    Opened read-only: a running worker's lock does not stop it, and nothing is written.
    """
    from rocksdict import AccessType, Options, Rdict

    if table.store_kind != "rocksdb":
        raise click.ClickException(
            f"table {table.name!r} keeps its store in memory: read it with --from changelog"
        )
    directory = os.path.join(datadir, "tables", table.name)
    numbers = sorted(int(n) for n in _listdir(directory) if n.isdigit())
    if not numbers:
        raise click.ClickException(f"no store of table {table.name!r} under {directory}")
    out: dict[int, list[tuple[bytes, bytes]]] = {}
    for number in numbers:
        path = os.path.join(directory, str(number))
        try:
            db = Rdict(path, options=Options(raw_mode=True), access_type=AccessType.read_only())
        except Exception as exc:  # noqa: BLE001 - rocksdict raises plain Exception
            raise click.ClickException(f"cannot open {path}: {one_line(exc)}") from None
        try:
            out[number] = list(cast("Iterable[tuple[bytes, bytes]]", db.items()))
        finally:
            db.close()
    return out


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _describe(app: App) -> list[str]:
    from streamlog.dsl.topology.nodes import window_label

    rows = []
    for name in sorted(app.tables):
        table = app.tables[name]
        default = table.default
        windowed = getattr(table, "windowed", None)
        rows.append(
            (
                name,
                type(table).__name__,
                "-" if windowed is None else window_label(windowed.window),
                table.partitions,
                table.store_kind,
                table.changelog_topic.name,
                "-" if default is None else getattr(default, "__name__", repr(default)),
                table.help or "",
            )
        )
    if not rows:
        return ["(no tables)"]
    headers = ("TABLE", "KIND", "WINDOW", "PARTITIONS", "STORE", "CHANGELOG", "DEFAULT", "HELP")
    return format_table(headers, rows)


def _run_tables(
    load: Callable[[], App],
    state: CliState,
    *,
    name: str | None,
    source: str,
    broker_url: str | None,
    datadir: str | None,
    limit: int,
) -> None:
    app = load()
    if name is None:
        for line in _describe(app):
            click.echo(line)
        return
    table = app.tables.get(name)
    if table is None:
        known = ", ".join(sorted(app.tables)) or "none"
        raise click.ClickException(f"app {app.conf.id} has no table {name!r} (tables: {known})")
    if broker_url:
        app.conf.broker = broker_url  # a datadir left to its default follows the broker
    if source == "store":
        raw = read_store(table, datadir or str(app.conf.datadir))
    else:
        raw = _read_changelog_at(broker_url or app.conf.broker, app, table)
    click.echo(render(table, raw, limit=limit))


TABLES = BuiltinCommand(
    "tables",
    _run_tables,
    help="List the app's tables, or print table NAME's contents (as Faust's as_ansitable).",
    options=(
        click.argument("name", required=False),
        click.option(
            "--from",
            "source",
            type=click.Choice(["changelog", "store"]),
            default="changelog",
            show_default=True,
            help="Where NAME's contents come from: its changelog topic or its RocksDB store.",
        ),
        click.option(
            "-b",
            "--broker",
            "broker_url",
            metavar="URL",
            default=None,
            help="Override the app's broker.",
        ),
        *SECURITY_OPTIONS,
        click.option(
            "--datadir", metavar="DIR", default=None, help="Override the app's data directory."
        ),
        click.option(
            "--limit",
            type=click.IntRange(min=0),
            default=0,
            metavar="N",
            help="Show at most N rows.",
        ),
    ),
)
tables = TABLES.standalone()


def _read_changelog_at(url: str, app: App, table: Table) -> dict[int, list[tuple[bytes, bytes]]]:
    import asyncio

    from streamlog.cli.common import start_transport
    from streamlog.state.errors import RecoveryError
    from streamlog.transport import TransportError

    if url.startswith("memory://"):
        raise click.ClickException(
            f"app {app.conf.id} runs on memory://, whose log lives only inside its worker: "
            "nothing to read from outside it"
        )

    async def run() -> dict[int, list[tuple[bytes, bytes]]]:
        transport = await start_transport(url, app.conf.broker_security)
        try:
            return await read_changelog(transport, app, table)
        finally:
            await transport.close()

    try:
        return asyncio.run(run())
    except (TransportError, RecoveryError) as exc:
        raise click.ClickException(one_line(exc)) from None
