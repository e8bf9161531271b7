"""``streamlog migrate APP --to URL [--from URL]``: move an app to another log.

The work is ``streamlog.mirror.migrate``'s; this command loads the app, says what it
moved (topics, records, the group's offsets source -> target, the table stores and their
changelog offsets before -> after) and turns a refusal (the app runs, stores in the way)
or a failure into one line and exit code 1. As with ``streamlog mirror``, the usual
``--sasl-*``/``--ssl-*`` options are the target's login and ``--from-*`` the source's
(default: the app's own ``broker_credentials`` when the source is its broker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from streamlog.cli.builtin import BuiltinCommand
from streamlog.cli.commands import CliState
from streamlog.cli.common import (
    FROM_SECURITY_OPTIONS,
    SECURITY_OPTIONS,
    cli_security,
    format_table,
    from_security,
    one_line,
    run_interruptibly,
)
from streamlog.cli.errors import Interrupted

if TYPE_CHECKING:
    from streamlog.dsl import App
    from streamlog.mirror.migrate import MigrationResult

__all__ = ["MIGRATE", "migrate", "report_lines"]


def report_lines(result: MigrationResult) -> list[str]:
    """What a migration did, for people: one block each for topics, group, stores."""
    footprint = result.footprint
    mirror = result.mirror
    out = [
        f"migrated app {footprint.app_id} from {result.source_url} to {result.target_url} "
        f"in {mirror.elapsed_s:.1f} s",
        f"topics: {len(result.topics)} ({', '.join(result.topics)}); "
        f"{mirror.records} records, {mirror.bytes} bytes copied",
    ]
    if result.absent:
        out.append(f"not on the source, not copied: {', '.join(result.absent)}")
    if result.group_offsets:
        out.append(f"group {footprint.group_id}: committed offsets, source -> target")
        rows = [
            (tp.topic, tp.partition, source, "-" if target is None else target)
            for tp, (source, target) in result.group_offsets.items()
        ]
        headers = ("TOPIC", "PARTITION", "SOURCE", "TARGET")
        out += ["  " + line for line in format_table(headers, rows)]
    else:
        out.append(f"group {footprint.group_id}: no committed offsets on the source")
    if result.rewritten:
        moved = (
            f"in place ({result.stores.source})"
            if result.stores.shared
            else f"{result.stores.source} -> {result.stores.target}"
        )
        out.append(f"table stores: {moved}; changelog offset, source -> target")
        rows2 = [
            (
                r.table,
                r.partition,
                "-" if r.source_offset is None else r.source_offset,
                "-" if r.target_offset is None else r.target_offset,
                f"wiped: {r.wiped}" if r.wiped else "",
            )
            for r in result.rewritten
        ]
        out += [
            "  " + line
            for line in format_table(("TABLE", "PARTITION", "SOURCE", "TARGET", ""), rows2)
        ]
        wiped = sum(1 for r in result.rewritten if r.wiped)
        if wiped:
            out.append(
                f"{wiped} store partition(s) wiped: they recover from their changelogs on the "
                "target when the worker starts"
            )
    else:
        out.append("table stores: none on disk here (tables recover from their changelogs)")
    return out


def _run_migrate(
    load: Callable[[], App],
    state: CliState,
    *,
    target_url: str,
    source_url: str | None,
    data_dir: str | None,
    **source_login: str | None,
) -> None:
    import sys

    from streamlog.errors import StreamlogError
    from streamlog.mirror.footprint import app_footprint
    from streamlog.mirror.migrate import migrate
    from streamlog.mirror.progress import ProgressDisplay
    from streamlog.mirror.table_stores import store_locations
    from streamlog.transport.security import ClientSecurity

    app = load()
    if data_dir:
        app.conf.datadir = data_dir  # the worker's --data-dir: the same on both logs
    source = source_url or app.conf.broker
    footprint = app_footprint(app)
    where = store_locations(app, source, target_url)
    # the source's login: --from-*, else the app's own when the source is its broker
    given = from_security(**source_login)
    if given != ClientSecurity():
        source_security: ClientSecurity | None = given
    elif source == app.conf.broker:
        source_security = app.conf.broker_security
    else:
        source_security = None  # STREAMLOG_SASL_*/STREAMLOG_SSL_* variables, if any
    display = ProgressDisplay(sys.stderr, interactive=sys.stderr.isatty())
    try:
        result = run_interruptibly(
            lambda: migrate(
                footprint,
                source,
                target_url,
                where,
                source_security=source_security,
                target_security=cli_security(),
                on_progress=display,
            )
        )
    except Interrupted:
        raise click.ClickException(
            "interrupted while copying: the table stores were not moved; run the same "
            "command again to resume the copy"
        ) from None
    except StreamlogError as exc:
        raise click.ClickException(one_line(exc)) from None
    for line in report_lines(result):
        click.echo(line)


MIGRATE = BuiltinCommand(
    "migrate",
    _run_migrate,
    help="""Move the app to another log: its topics, its group's committed offsets and its
    table stores, so that a worker started with --broker TO resumes where it stopped.

    The app must be stopped. The source is left as it was (migrating copies).
    """,
    options=(
        click.option(
            "--to",
            "target_url",
            metavar="URL",
            required=True,
            help="The log to move to: kafka://HOST:PORT or file://PATH.",
        ),
        click.option(
            "--from",
            "source_url",
            metavar="URL",
            default=None,
            help="The log the app ran on.  [default: the app's broker setting]",
        ),
        click.option(
            "--data-dir",
            "--datadir",
            "data_dir",
            metavar="DIR",
            default=None,
            help="The worker's --data-dir, if it is given one (the stores then stay in it).  "
            "[default: the app's datadir, which follows the broker unless set]",
        ),
        *FROM_SECURITY_OPTIONS,
        *SECURITY_OPTIONS,
    ),
)
migrate = MIGRATE.standalone()
