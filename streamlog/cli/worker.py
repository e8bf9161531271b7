"""``worker``, ``send`` and ``agents``: commands over an app (``BuiltinCommand``s, so
``streamlog worker app.py`` and ``python app.py worker`` are one implementation).

``run_app_worker`` is the worker itself, for the ``worker`` command and Faust's
``Worker(app).execute_from_commandline()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from streamlog.cli.builtin import BuiltinCommand
from streamlog.cli.commands import CliState
from streamlog.cli.common import (
    SECURITY_OPTIONS,
    check_data_dir,
    cli_security,
    loglevel_option_type,
    normalize_loglevel,
    one_line,
    require_topic,
    start_transport,
)
from streamlog.transport.connect import listener_path

if TYPE_CHECKING:
    from streamlog.dsl import App
    from streamlog.transport.security import ClientSecurity

__all__ = [
    "AGENTS",
    "SEND",
    "WORKER",
    "Worker",
    "agents",
    "run_app_worker",
    "send",
    "worker",
]

log = logging.getLogger("streamlog.worker")


def _parse_listen(value: str) -> tuple[str, int] | None:
    if value.lower() in ("", "none", "off", "no"):
        return None
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT or 'none', got {value!r}")
    return host or "127.0.0.1", int(port)


def _run_worker_command(
    load: Callable[[], App],
    state: CliState,
    *,
    broker_url: str | None,
    data_dir: str | None,
    loglevel: str | None,
    log_format: str,
    web_port: int | None,
    web_host: str | None,
    with_web: bool | None,
    listen: str,
    lag_interval: float,
    processes: int,
    restart_backoff: float,
    restart_backoff_max: float,
    max_failures: int,
    stable_after: float,
) -> None:
    from streamlog.dsl.app.logs import configure_logging

    configure_logging(normalize_loglevel(loglevel or state.loglevel or "info"), log_format)
    address = _parse_listen(listen)
    app = load()
    if processes:
        from streamlog.cli.supervisor import RestartPolicy
        from streamlog.dsl.app.worker import STOP_MARGIN

        policy = RestartPolicy(
            backoff=restart_backoff,
            backoff_max=restart_backoff_max,
            stable_after=stable_after,
            max_failures=max_failures,
            stop_timeout=app.conf.shutdown_timeout + STOP_MARGIN,
        )
        sys.exit(
            _run_supervisor(
                app,
                processes,
                policy,
                broker_url=broker_url,
                data_dir=data_dir,
                web_port=web_port,
                with_web=with_web,
                listen=address,
            )
        )
    code = run_app_worker(
        app,
        broker_url=broker_url,
        security=cli_security(),
        data_dir=data_dir,
        web_port=web_port,
        web_host=web_host,
        with_web=with_web,
        listen=address,
        lag_interval=lag_interval,
    )
    sys.exit(code)


def _run_supervisor(
    app: App,
    processes: int,
    policy: Any,
    *,
    broker_url: str | None,
    data_dir: str | None,
    web_port: int | None,
    with_web: bool | None,
    listen: tuple[str, int] | None,
) -> int:
    """``--processes N``: run N children of this same command (``sys.orig_argv``, so the
    app is named as the user named it) under a supervisor (streamlog/cli/supervisor.py)."""
    from streamlog.cli.supervisor import Supervisor, SupervisorError, child_specs, serve_file_log
    from streamlog.transport.url import parse_broker_url

    if broker_url:
        app.conf.broker = broker_url
    if data_dir:
        app.conf.datadir = data_dir
    url = parse_broker_url(app.conf.broker)
    if url.scheme == "memory" and processes > 1:
        raise click.UsageError(
            "memory:// is a log inside one process: --processes > 1 needs a log the "
            "processes share (file://DIR or kafka://HOST:PORT)"
        )
    if with_web is False:
        web_port = None
    elif web_port is None and app.conf.web_enabled:
        web_port = app.conf.web_port

    def supervise(children_url: str) -> Awaitable[int]:
        specs = child_specs(
            sys.orig_argv,
            processes,
            broker_url=children_url,
            data_dir=app.conf.app_datadir,
            web_port=web_port,
        )
        return Supervisor(specs, policy).run()

    async def run() -> int:
        if url.scheme == "file" and url.path is not None:
            async with serve_file_log(url.path, listen) as served_url:
                return await supervise(served_url)
        return await supervise(str(url))

    try:
        return asyncio.run(run())
    except SupervisorError as exc:
        raise click.ClickException(str(exc)) from None


def run_app_worker(
    app: App,
    *,
    broker_url: str | None = None,
    security: ClientSecurity | None = None,
    data_dir: str | None = None,
    web_port: int | None = None,
    web_host: str | None = None,
    with_web: bool | None = None,
    listen: tuple[str, int] | None = ("127.0.0.1", 9092),
    lag_interval: float = 30.0,
) -> int:
    """Run ``app`` as ``streamlog worker`` does, until a signal; returns the exit status.

    The overrides replace the app's settings (``broker``, ``broker_security``,
    ``datadir``, ``web_port``, ``web_host``, ``web_enabled``); ``listen`` is where a
    ``file://`` log is also served over the Kafka protocol (None: not served). Logging is
    the caller's to configure.
    """
    from streamlog.dsl.app.worker import run_worker

    if broker_url:
        app.conf.broker = broker_url
    if security is not None:
        app.conf.broker_security = security
    if data_dir:
        app.conf.datadir = data_dir
    if web_host is not None:
        app.conf.web_host = web_host
    if with_web is not None:
        app.conf.web_enabled = with_web
    if web_port is not None and with_web is not False:
        app.conf.web_port = web_port
        app.conf.web_enabled = True
    server: dict[str, Any] = {}

    async def serve_log(app: Any) -> None:
        # before the app creates topics or consumes: tools (and the benchmark's clock) see
        # the listener as soon as the log is open
        if listen is not None and app.conf.broker.startswith("file://"):
            await _start_listener(app, listen, server)

    app.transport_ready_hooks.append(serve_log)

    async def on_stopping(app: Any) -> None:
        broker = server.pop("broker", None)
        if broker is not None:
            try:
                os.unlink(server.pop("file"))
            except OSError:
                pass
            await broker.stop()

    return asyncio.run(
        run_worker(
            app,
            web_port=app.conf.web_port if app.conf.web_enabled else None,
            lag_interval=lag_interval,
            on_stopping=on_stopping,
        )
    )


class Worker:
    """Faust's ``faust.Worker``: ``Worker(app, loglevel="info").execute_from_commandline()``
    runs ``app`` as ``python app.py worker`` does (``run_app_worker``) and exits with its
    status. Faust's console, blocking detector and extra services are not here."""

    def __init__(
        self,
        app: App,
        *services: Any,
        loglevel: str | int | None = None,
        quiet: bool = False,
        debug: bool = False,
        workdir: str | None = None,
        **options: Any,
    ) -> None:
        if services:
            raise TypeError("streamlog's Worker runs one app: run a worker per app")
        self.app = app
        self.loglevel = loglevel
        self.quiet = quiet
        self.debug = debug
        self.workdir = workdir
        self.options = options  # Faust's others (logfile, blocking_timeout...): not used

    def execute_from_commandline(self) -> NoReturn:
        """Run the app until a signal and exit with the worker's status."""
        from streamlog.dsl.app.logs import configure_logging

        if self.workdir:
            os.chdir(self.workdir)
        level = self.loglevel
        if isinstance(level, int):
            level = logging.getLevelName(level)
        configure_logging(normalize_loglevel(level or ("debug" if self.debug else "info")))
        sys.exit(run_app_worker(self.app))


WORKER = BuiltinCommand(
    "worker",
    _run_worker_command,
    help="""Run the app until Ctrl-C or SIGTERM.

    Creates missing topics, runs agents, timers and tasks; on a signal it stops consuming,
    finishes the events in hand, commits and exits 0. Exit code 1: the app crashed or
    could not start; 2: stopping overran its bound; 130: a second signal cut the stop short.
    """,
    options=(
        click.option(
            "-b",
            "--broker",
            "broker_url",
            metavar="URL",
            default=None,
            help="Override the app's broker: file://PATH, memory://, kafka://HOST:PORT or "
            "kafka+ssl://HOST:PORT.",
        ),
        *SECURITY_OPTIONS,
        click.option(
            "--data-dir",
            "--datadir",
            "data_dir",
            metavar="DIR",
            default=None,
            help="Where table stores live (the app's datadir setting).",
        ),
        click.option(
            "-l",
            "--loglevel",
            default=None,
            type=loglevel_option_type(),
            help="Log level (Faust's warn and crit too).  [default: info]",
        ),
        click.option(
            "--log-format",
            default="text",
            show_default=True,
            type=click.Choice(["text", "json"]),
            help="json: one JSON object per log line (structured logs).",
        ),
        click.option(
            "-p",
            "--web-port",
            type=click.IntRange(0, 65535),
            default=None,
            metavar="N",
            help="Serve the web endpoint (the app's pages, a status page at /, /health, "
            "/stats, /metrics) on port N of the app's web_host (127.0.0.1 by default); 0 picks "
            "a free port (logged). Without it the endpoint runs on web_port (6066) when the "
            "app sets web_enabled=True or declares pages.",
        ),
        click.option(
            "--web-host",
            default=None,
            metavar="HOST",
            help="The address the web endpoint listens on (the app's web_host setting).",
        ),
        click.option(
            "--with-web/--without-web",
            default=None,
            help="Serve the web endpoint on the app's web_port, or never.  "
            "[default: the app's web_enabled setting, or on when --web-port is given]",
        ),
        click.option(
            "--listen",
            default="127.0.0.1:9092",
            show_default=True,
            metavar="HOST:PORT",
            help="On file://, also serve the app's log over the Kafka protocol here so "
            "other processes (streamlog produce/consume, kcat, Kafka clients) can use it; "
            "'none' to turn off. A busy port falls back to a free one (logged, and written "
            "to DATA_DIR/.listener).",
        ),
        click.option(
            "--lag-interval",
            type=float,
            default=30.0,
            show_default=True,
            metavar="S",
            help="Log consumer lag every S seconds (0: never).",
        ),
        click.option(
            "--processes",
            type=click.IntRange(min=0),
            default=0,
            metavar="N",
            help="Run N worker processes under a supervisor that restarts any that dies "
            "(each with DATA_DIR/proc-I and web port PORT+I). On file:// the supervisor "
            "serves the log to them over the Kafka protocol (--listen).  [default: 0: this "
            "process is the worker]",
        ),
        click.option(
            "--restart-backoff",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            metavar="S",
            help="With --processes: wait S seconds before restarting a worker, doubling "
            "with each failure in a row.",
        ),
        click.option(
            "--restart-backoff-max",
            type=click.FloatRange(min=0),
            default=30.0,
            show_default=True,
            metavar="S",
            help="With --processes: the longest wait before a restart.",
        ),
        click.option(
            "--max-failures",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            metavar="N",
            help="With --processes: give up (stop all, exit 1) when a worker fails N times "
            "in a row, each before --stable-after.",
        ),
        click.option(
            "--stable-after",
            type=click.FloatRange(min=0),
            default=60.0,
            show_default=True,
            metavar="S",
            help="With --processes: a worker that ran S seconds before exiting starts its "
            "failure count (and backoff) afresh.",
        ),
    ),
)
worker = WORKER.standalone()


async def _start_listener(app: Any, address: tuple[str, int], server: dict[str, Any]) -> None:
    """Serve the worker's own log over the Kafka protocol (the broker shares its LogManager
    and reports the worker's in-process consumer groups as they are).

    A busy port falls back to a free one. The address goes to ``DATA_DIR/.listener``,
    written whole (renamed into place) so that a tool never reads half of it.
    """
    from streamlog.broker.config import BrokerConfig
    from streamlog.broker.server import Broker
    from streamlog.cli.embedded_groups import EmbeddedGroupsView
    from streamlog.cli.shared_wakeups import SharedWakeups

    manager = app.transport.manager
    groups = EmbeddedGroupsView(app.transport.groups)
    host, port = address
    for attempt_port in (port, 0) if port else (0,):
        config = BrokerConfig(host=host, port=attempt_port, data_dir=str(manager.data_dir))
        broker = Broker(
            config,
            manager=manager,
            local_groups=groups,
            waiters=SharedWakeups(app.transport.notifier),
            transactions=app.transport.transactions.coordinator,
        )
        try:
            await broker.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            log.warning("Kafka listener: %s:%d unavailable (%s)", host, attempt_port, reason)
            continue
        path = listener_path(str(manager.data_dir))
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w") as f:
            f.write(f"{host}:{broker.port}\n")
        os.replace(partial, path)
        server["broker"], server["file"] = broker, path
        log.info("serving %s over the Kafka protocol on %s:%d", app.conf.broker, host, broker.port)
        return
    log.warning("Kafka listener not started: other processes cannot reach this app's log")


def _run_send(
    load: Callable[[], App],
    state: CliState,
    *,
    topic: str,
    value: str | None,
    key: str | None,
    partition: int | None,
    repeat: int,
    broker_url: str | None,
    create: bool,
) -> None:
    app = load()
    url = broker_url or app.conf.broker
    declared = set(app.topics)
    channel = _find_channel(app, topic)
    # A topic the app declares is created as its worker would create it; any other name
    # only with --create, so that a typo is an error instead of a new topic.
    may_create = create or channel.name in declared
    raw_key, raw_value = _encode(channel, key, _coerce(channel, _parse_value(channel, value)))

    async def run() -> list[Any]:
        if not may_create:
            check_data_dir(url, create=False)
        transport = await start_transport(url, app.conf.broker_security)
        producer = transport.producer(client_id=app.conf.id)
        try:
            admin = transport.admin()
            try:
                await require_topic(
                    admin,
                    channel.name,
                    create=may_create,
                    partitions=channel.partitions or app.conf.topic_partitions,
                    configs=channel.topic_configs(),
                    also_known=[*declared, *app.agents],
                )
            finally:
                await admin.close()
            results = []
            for _ in range(repeat):
                pending = await producer.send(
                    channel.name, raw_value, key=raw_key, partition=partition
                )
                results.append(pending)
            await producer.flush()
            return [await r for r in results]
        finally:
            await producer.close()
            await transport.close()

    from streamlog.transport import TransportError

    try:
        for md in asyncio.run(run()):
            click.echo(f"{md.topic}[{md.partition}]@{md.offset}")
    except TransportError as exc:
        raise click.ClickException(one_line(exc)) from None


SEND = BuiltinCommand(
    "send",
    _run_send,
    help="""Send VALUE to TOPIC (a topic name or an agent's name) with the app's serializers.

    For a JSON topic VALUE is parsed as JSON (a model's fields for a Record topic); text
    that is not JSON is sent as a string. Prints where each record landed.
    """,
    options=(
        click.argument("topic"),
        click.argument("value", required=False),
        click.option("-k", "--key", default=None, help="The record key."),
        click.option(
            "-p",
            "--partition",
            type=click.IntRange(min=0),
            default=None,
            metavar="P",
            help="Send to partition P (default: by key).",
        ),
        click.option(
            "-r",
            "--repeat",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            metavar="N",
            help="Send it N times.",
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
            "--create",
            is_flag=True,
            help="Create TOPIC if it exists neither on the broker nor in the app (a topic "
            "the app declares is created as its worker would).",
        ),
    ),
)
send = SEND.standalone()


def _find_channel(app: Any, name: str) -> Any:
    from streamlog.dsl import Topic

    if name in app.topics:
        return app.topics[name]
    for agent_name, agent in app.agents.items():
        if name in (agent_name, agent.short_name, f"@{agent.short_name}"):
            if isinstance(agent.channel, Topic):
                return agent.channel
            raise click.ClickException(
                f"agent {agent_name} reads an in-memory channel: nothing to send to"
            )
    return app.topic(name)


def _parse_value(channel: Any, value: str | None) -> Any:
    if value is None:
        return None
    serializer = channel.value_serializer
    if isinstance(serializer, str) and serializer.split("|")[0] in ("json", "msgpack", "pickle"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _coerce(channel: Any, payload: Any) -> Any:
    """A dict for a Record topic becomes the Record (so field types are checked here)."""
    value_type = channel.value_type
    from_data = getattr(value_type, "from_data", None)
    if isinstance(payload, dict) and from_data is not None:
        from streamlog.serde import SerdeError

        try:
            return from_data(payload)
        except (SerdeError, TypeError, ValueError) as exc:
            # a SerdeError names the model already; the others do not
            what = str(exc) if isinstance(exc, SerdeError) else f"{value_type.__name__}: {exc}"
            raise click.ClickException(f"cannot send to {channel.name}: {what}") from None
    return payload


def _encode(channel: Any, key: str | None, value: Any) -> tuple[bytes | None, bytes | None]:
    """The record's bytes, checked before anything is opened or created."""
    from streamlog.serde import SerdeError

    schema = channel.schema
    try:
        raw_key = schema.dumps_key(key)
    except SerdeError as exc:
        raise click.ClickException(f"cannot send to {channel.name}: key {key!r}: {exc}") from None
    try:
        raw_value = schema.dumps_value(value)
    except SerdeError as exc:
        raise click.ClickException(
            f"cannot send to {channel.name}: value {value!r}: {exc}"
        ) from None
    return raw_key, raw_value


def _run_agents(load: Callable[[], App], state: CliState, *, as_json: bool) -> None:
    from streamlog.cli.common import format_table

    as_json = as_json or state.json
    app = load()
    rows: list[dict[str, Any]] = []
    for name, agent in sorted(app.agents.items()):
        doc = (agent.fun.__doc__ or "").strip().splitlines()
        rows.append(
            {
                "name": name,
                "topic": getattr(agent.channel, "name", repr(agent.channel)),
                "concurrency": agent.concurrency,
                "sinks": [getattr(s, "name", getattr(s, "__name__", repr(s))) for s in agent.sinks],
                "on_error": agent.on_error,
                "help": doc[0] if doc else "",
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("(no agents)")
        return
    table = format_table(
        ("AGENT", "TOPIC", "CONCURRENCY", "SINKS", "ON ERROR", "HELP"),
        [
            (
                r["name"],
                r["topic"],
                r["concurrency"],
                ",".join(r["sinks"]) or "-",
                r["on_error"],
                r["help"],
            )
            for r in rows
        ],
    )
    for line in table:
        click.echo(line)


AGENTS = BuiltinCommand(
    "agents",
    _run_agents,
    help="List the app's agents: name, topic, concurrency, sinks and what each is for.",
    options=(click.option("--json", "as_json", is_flag=True, help="One JSON object per agent."),),
)
agents = AGENTS.standalone()
