"""What the client tools (``topics``, ``groups``, ``produce``, ``consume``) share.

* ``broker_option``: ``--broker URL`` and the SASL/TLS options (``security_options``),
  defaulting to ``$STREAMLOG_BROKER``, else the app
  next to the tool (``file://./.streamlog`` when that directory exists: an app's own
  default log, reached through its worker's listener while a worker holds it), else
  ``kafka://127.0.0.1:9092``. A tool that chose the broker itself says which, in one line
  on stderr, so that it never talks to another process on 9092 without saying so.
* ``security_options``: ``--sasl-mechanism``, ``--sasl-username``, ``--sasl-password``,
  ``--ssl-cafile``, ``--ssl-certfile``, ``--ssl-keyfile``, ``--ssl-key-password``,
  ``--no-ssl-check-hostname``,
  each also read from its ``STREAMLOG_*`` variable. They are not passed to the command
  function: they are kept in the click context, and every transport a tool opens
  (``run_with_transport``, ``start_transport``) uses them, so no tool handles them itself.
* A tool never creates a ``file://`` data directory unless it was told to create
  something (``topics create``, ``--create``): a mistyped path is an error, not a new log.
* ``require_topic`` and ``unknown_name``: a tool writes only to a topic that exists (or
  creates it when given ``--create``); an unknown name is an error listing near matches.
* ``run_with_transport``: run one coroutine with a started transport, close it whatever
  happens, and turn a ``TransportError`` (an unreachable broker, an unknown topic...)
  into a one-line ``click.ClickException``: exit code 1, never a traceback.
  Ctrl-C (SIGINT) or SIGTERM cancels the coroutine once; the tools stop cleanly then
  (``run_interruptibly`` does that part, for commands that open their own transport).
* ``format_table``: the aligned, space-separated tables the tools print.

Only ``click`` and the lightweight ``streamlog.transport.url`` are imported at module
level, so that ``streamlog --help`` stays fast; the transports load when a tool runs.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from streamlog.cli.errors import Interrupted
from streamlog.transport.security import SASL_MECHANISMS, SECURITY_ENV, ClientSecurity
from streamlog.transport.url import BROKER_ENV, DEFAULT_BROKER_URL

if TYPE_CHECKING:
    from streamlog.transport.base import Admin, Transport

__all__ = [
    "APP_DATA_DIR",
    "broker_option",
    "security_options",
    "SECURITY_OPTIONS",
    "cli_security",
    "FROM_SECURITY_OPTIONS",
    "from_security_options",
    "from_security",
    "check_data_dir",
    "default_broker_url",
    "require_topic",
    "unknown_name",
    "run_with_transport",
    "run_interruptibly",
    "format_table",
    "one_line",
    "Interrupted",
    "LOGLEVELS",
    "loglevel_option_type",
    "normalize_loglevel",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


#: An app's default log directory (``streamlog.dsl.settings.DEFAULT_BROKER``; not imported
#: from there because the DSL is slow to import and the tools' ``--help`` must stay fast).
APP_DATA_DIR = "./.streamlog"


def broker_option(f: F) -> F:
    """The ``--broker URL`` option every client tool takes (None: not given; see
    ``default_broker_url``), with the SASL and TLS options (``security_options``)."""
    f = security_options(f)
    return click.option(
        "-b",
        "--broker",
        "broker_url",
        envvar=BROKER_ENV,
        default=None,
        show_envvar=True,
        metavar="URL",
        help="kafka://HOST:PORT[,HOST:PORT...], kafka+ssl://HOST:PORT (TLS), file://PATH or "
        f"memory://.  [default: file://{APP_DATA_DIR} if that directory exists, else "
        f"{DEFAULT_BROKER_URL}]",
    )(f)


_SECURITY_META = "streamlog.security"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a security option in the context (shared with sub-contexts), not in kwargs."""
    if param.name is not None:
        ctx.meta.setdefault(_SECURITY_META, {})[param.name] = value
    return value


def _security_option(name: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(
        *decls,
        name,
        envvar=SECURITY_ENV[name],
        show_envvar=True,
        expose_value=False,
        callback=_remember,
        **kwargs,
    )


#: The SASL and TLS options, each a click decorator (for commands declaring options as a
#: list, such as ``streamlog worker``); ``security_options`` applies them all.
SECURITY_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    _security_option(
        "sasl_mechanism",
        "--sasl-mechanism",
        type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
        default=None,
        help="Log in to a Kafka broker with SASL (over TLS with kafka+ssl://).",
    ),
    _security_option("sasl_username", "--sasl-username", default=None, metavar="USER"),
    _security_option(
        "sasl_password",
        "--sasl-password",
        default=None,
        metavar="PASSWORD",
        help="Prefer the environment variable: a command line is visible to other users.",
    ),
    _security_option(
        "ssl_cafile",
        "--ssl-cafile",
        type=click.Path(dir_okay=False),
        default=None,
        help="CA certificates (PEM) to verify the broker with (kafka+ssl://).  "
        "[default: the system's]",
    ),
    _security_option(
        "ssl_certfile",
        "--ssl-certfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="Client certificate (PEM), for brokers that require one.",
    ),
    _security_option(
        "ssl_keyfile",
        "--ssl-keyfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="The client certificate's key (PEM).  [default: in --ssl-certfile]",
    ),
    _security_option(
        "ssl_key_password",
        "--ssl-key-password",
        default=None,
        metavar="PASSWORD",
        help="Password of an encrypted --ssl-keyfile (prefer the environment variable).",
    ),
    _security_option(
        "ssl_check_hostname",
        "--ssl-check-hostname/--no-ssl-check-hostname",
        default=True,
        help="Check that the broker's certificate names the host connected to.  "
        "Turning it off is insecure: any certificate from a trusted CA is then accepted.",
    ),
)


#: The source's login for the commands that read one log and write another (``mirror``,
#: ``migrate``), whose ``SECURITY_OPTIONS`` are the target's: ``--from-sasl-*`` and
#: ``--from-ssl-cafile``, each also read from its ``STREAMLOG_FROM_*`` variable, passed to
#: the command function (``from_security`` makes them a ``ClientSecurity``).
FROM_SECURITY_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option(
        "--from-sasl-mechanism",
        envvar="STREAMLOG_FROM_SASL_MECHANISM",
        type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
        default=None,
        help="SASL login to the source (the --sasl-* options are the target's).",
    ),
    click.option("--from-sasl-username", envvar="STREAMLOG_FROM_SASL_USERNAME", default=None),
    click.option(
        "--from-sasl-password",
        envvar="STREAMLOG_FROM_SASL_PASSWORD",
        default=None,
        help="Prefer the environment variable: a command line is visible to other users.",
    ),
    click.option(
        "--from-ssl-cafile",
        envvar="STREAMLOG_FROM_SSL_CAFILE",
        type=click.Path(dir_okay=False),
        default=None,
    ),
)


def from_security_options(f: F) -> F:
    """Add the ``FROM_SECURITY_OPTIONS`` to a command."""
    for option in reversed(FROM_SECURITY_OPTIONS):
        f = option(f)
    return f


def from_security(
    from_sasl_mechanism: str | None = None,
    from_sasl_username: str | None = None,
    from_sasl_password: str | None = None,
    from_ssl_cafile: str | None = None,
) -> ClientSecurity:
    """The source's ``ClientSecurity`` from the ``FROM_SECURITY_OPTIONS`` values."""
    return ClientSecurity(
        sasl_mechanism=from_sasl_mechanism,
        sasl_username=from_sasl_username,
        sasl_password=from_sasl_password,
        ssl_cafile=from_ssl_cafile,
    )


def security_options(f: F) -> F:
    """Add the ``SECURITY_OPTIONS`` to a command (see ``cli_security``)."""
    for option in reversed(SECURITY_OPTIONS):
        f = option(f)
    return f


def cli_security() -> ClientSecurity | None:
    """The SASL/TLS settings given to the running command (options or ``STREAMLOG_*``
    variables), or None when none were: the app's own settings then apply, if any.

    Outside a command with ``security_options``, the environment alone.
    """
    ctx = click.get_current_context(silent=True)
    given = ctx.meta.get(_SECURITY_META) if ctx is not None else None
    security = ClientSecurity(**given) if given else ClientSecurity.from_env()
    return None if security == ClientSecurity() else security


def default_broker_url() -> str:
    """The broker a tool uses when given none: the app next to it when ``./.streamlog``
    exists (what ``streamlog worker`` uses by default), else the usual Kafka address."""
    if os.path.isdir(APP_DATA_DIR):
        return f"file://{APP_DATA_DIR}"
    return DEFAULT_BROKER_URL


def check_data_dir(url: str, *, create: bool) -> None:
    """A ``file://`` directory must exist unless the command is there to create things."""
    from streamlog.transport.url import parse_broker_url

    parsed = parse_broker_url(url)
    if create or parsed.scheme != "file" or parsed.path is None:
        return
    if not os.path.isdir(parsed.path):
        what = "is not a directory" if os.path.exists(parsed.path) else "does not exist"
        raise click.ClickException(
            f"{url}: directory {parsed.path} {what} (tools create a data directory only "
            "when told to create something: topics create, --create)"
        )


NEAR_MATCH_CUTOFF = 0.75


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> str:
    """``KIND 'NAME' does not exist (did you mean: A, B?); HINT``, the near matches found
    by ``difflib`` among ``known``.

    The cutoff is 0.75, not difflib's 0.6: generated names (``t-`` plus random hex) pass
    0.6 against each other by chance, and a suggestion that shares only a prefix with the
    typo misleads more than it helps."""
    message = f"{kind} {name!r} does not exist"
    matches = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=NEAR_MATCH_CUTOFF)
    if matches:
        message += f" (did you mean: {', '.join(matches)}?)"
    return message + (f"; {hint}" if hint else "")


async def require_topic(
    admin: Admin,
    name: str,
    *,
    create: bool = False,
    partitions: int = 1,
    configs: dict[str, str] | None = None,
    also_known: Iterable[str] = (),
    hint: str = "pass --create to create it",
) -> bool:
    """Make sure topic ``name`` exists before a tool uses it; returns whether it was created.

    A missing topic is created only when ``create`` (the tool's ``--create``), so that a
    mistyped name is an error naming its near matches (among the broker's topics and
    ``also_known``), followed by ``hint``, rather than a new topic quietly holding the
    records.
    """
    from streamlog.transport.errors import TopicExistsError

    existing = await admin.list_topics(include_internal=True)
    if name in existing:
        return False
    if not create:
        raise click.ClickException(unknown_name("topic", name, [*existing, *also_known], hint))
    try:
        await admin.create_topic(name, partitions, configs)
    except TopicExistsError:  # created meanwhile by someone else: as good
        return False
    return True


#: ``-l``/``--loglevel`` values: streamlog's names and Faust's (``warn``, ``crit``).
LOGLEVELS = ("debug", "info", "warning", "warn", "error", "critical", "crit")
_LOGLEVEL_ALIASES = {"warn": "warning", "crit": "critical"}


def loglevel_option_type() -> click.Choice:
    """The type of a ``--loglevel`` option: any of ``LOGLEVELS``, in any case."""
    return click.Choice(LOGLEVELS, case_sensitive=False)


def normalize_loglevel(level: str) -> str:
    """``level`` as a ``logging`` level name (Faust's ``WARN`` is ``warning``)."""
    lowered = level.lower()
    return _LOGLEVEL_ALIASES.get(lowered, lowered)


def one_line(exc: BaseException) -> str:
    """The error's message on one line (a transport error may span several)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def run_with_transport(
    url: str | None,
    main: Callable[[Transport], Awaitable[T]],
    *,
    interruptible: bool = False,
    create: bool = False,
) -> T | None:
    """Run ``main(transport)`` with the transport of ``url`` started, then close it.

    ``url`` None: the tool was given no broker; ``default_broker_url`` picks one and one
    line on stderr says which. A ``file://`` directory that does not exist is an error
    unless ``create`` (the command creates things: the directory comes with them).

    Returns what ``main`` returns. Ctrl-C or SIGTERM cancels ``main``; it may catch the
    ``asyncio.CancelledError`` to finish its work (a last commit) and return normally.
    If it does not, the command exits with code 130, or returns None when
    ``interruptible`` (a consumer or producer stopped by the user has done its job).
    Transport errors become a one-line ``click.ClickException`` (exit code 1).
    """
    from streamlog.transport import TransportError

    chosen = not url
    broker_url = url or default_broker_url()
    # A file:// log's line waits for the start (a worker's listener may stand in for it);
    # another's comes first, so that it still shows if the broker does not answer.
    said = chosen and not broker_url.startswith("file://")
    if said:
        click.echo(_chosen_line(broker_url, None), err=True)

    async def with_transport() -> T:
        check_data_dir(broker_url, create=create)
        transport, listener = await _start_transport(broker_url)
        if chosen and not said:
            click.echo(_chosen_line(broker_url, listener), err=True)
        elif listener is not None:
            click.echo(_listener_line(broker_url, listener), err=True)
        try:
            return await main(transport)
        finally:
            await transport.close()

    try:
        return run_interruptibly(with_transport)
    except Interrupted:
        if interruptible:
            return None
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except TransportError as exc:
        raise click.ClickException(one_line(exc)) from None


def run_interruptibly(main: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(main())``, where the first Ctrl-C or SIGTERM cancels ``main``.

    ``main`` may catch the ``asyncio.CancelledError`` to finish its work and return
    normally; if it lets it through, ``Interrupted`` is raised. A second signal falls back
    to Python's ``KeyboardInterrupt`` (for when the clean stop itself hangs).
    """

    async def run() -> T:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            for sig in signals:
                loop.remove_signal_handler(sig)
            task.cancel()

        for sig in signals:
            loop.add_signal_handler(sig, interrupt)
        try:
            return await task
        except asyncio.CancelledError:
            if not interrupted:
                raise
            raise Interrupted() from None
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    return asyncio.run(run())


def _chosen_line(url: str, listener: str | None) -> str:
    """What a tool given no broker says about the one it used."""
    if listener is not None:
        return f"using {url} (worker listener {listener})"
    if url.startswith("file://"):
        return f"using {url} (no worker running: the directory itself)"
    return f"using {url} (the default: no {APP_DATA_DIR} here)"


def _listener_line(url: str, listener: str) -> str:
    return f"{url} is in use by a worker; using its listener kafka://{listener}"


async def start_transport(url: str, security: ClientSecurity | None = None) -> Transport:
    """Open and start the transport of ``url`` (``_start_transport``), saying on stderr
    when a worker's listener stands in for a ``file://`` directory.

    ``security``: an app's own SASL/TLS settings, used when the command was given none."""
    transport, listener = await _start_transport(url, security)
    if listener is not None:
        click.echo(_listener_line(url, listener), err=True)
    return transport


async def _start_transport(
    url: str, security: ClientSecurity | None = None
) -> tuple[Transport, str | None]:
    """The started transport of ``url``, and the worker listener used instead, if one was
    (``streamlog.transport.connect``: the tools talk to a worker that holds a ``file://``
    directory through its Kafka listener)."""
    from streamlog.transport.connect import connect_noting_listener

    return await connect_noting_listener(url, cli_security() or security or ClientSecurity())


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Left-aligned columns two spaces apart, without trailing blanks."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
