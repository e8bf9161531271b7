"""An app's own command line: what ``app.main()`` runs and ``streamlog APP ...`` reaches.

``python app.py worker -l info`` (the program ends with ``app.main()``) and
``streamlog app.py worker -l info`` run the same group, made by ``app_cli`` for an app
that is already built (so agents a program registers in its ``main()`` before calling
``app.main()`` are there; nothing is imported again):

* the ``streamlog`` commands that take an app, bound to it (``builtin.BuiltinCommand``):
  ``worker``, ``send``, ``agents``, ``tables``, ``topology``;
* the app's ``@app.command``s (``commands.AppCommand``), which win over a built-in of the
  same name, as in Faust;
* Faust's global options, given before the command: ``-l/--loglevel``, ``--json``,
  ``-q/--quiet``, ``--debug``, ``-D/--datadir``, ``-W/--workdir``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from streamlog.cli.builtin import BuiltinCommand
from streamlog.cli.commands import AppCommand, CliState
from streamlog.cli.common import loglevel_option_type
from streamlog.cli.tables import TABLES
from streamlog.cli.topology import TOPOLOGY
from streamlog.cli.worker import AGENTS, SEND, WORKER

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["BUILTINS", "app_cli", "command_class", "run_main"]

#: The ``streamlog`` commands that take an app (bound to it on its command line).
BUILTINS: tuple[BuiltinCommand, ...] = (WORKER, SEND, AGENTS, TABLES, TOPOLOGY)


def run_main(app: App, argv: Sequence[str] | None = None) -> NoReturn:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command on ``app`` and exit."""
    prog_name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else app.conf.id
    app_cli(app).main(args=None if argv is None else list(argv), prog_name=prog_name)
    sys.exit(0)  # click's main exits by itself; this is for type checkers


def command_class(
    fun: Callable[..., Awaitable[Any]],
    options: Sequence[Any],
    *,
    base: type | None = None,
    attrs: dict[str, Any] | None = None,
) -> type[AppCommand]:
    """The command class ``@app.command(*options, base=, **attrs)`` makes of ``fun``."""
    cls = AppCommand if base is None else base
    if not (isinstance(cls, type) and issubclass(cls, AppCommand)):
        raise TypeError(f"@app.command(base=...) must be an AppCommand subclass, not {cls!r}")
    return cls.from_handler(*options, **(attrs or {}))(fun)


def app_cli(app: App, name: str | None = None) -> click.Group:
    """The click group of ``app``'s command line (see the module docstring)."""

    @click.pass_context
    def setup(
        ctx: click.Context,
        loglevel: str | None,
        as_json: bool,
        quiet: bool,
        debug: bool,
        datadir: str | None,
        workdir: str | None,
    ) -> None:
        if workdir:
            os.chdir(workdir)
        if datadir:
            app.conf.datadir = datadir
        ctx.obj = CliState(
            app=app,
            loglevel=loglevel,
            json=as_json,
            quiet=quiet,
            debug=debug,
            datadir=datadir,
            workdir=workdir,
        )

    params: list[click.Parameter] = [
        click.Option(
            ["-l", "--loglevel"],
            type=loglevel_option_type(),
            default=None,
            help="Log level of the command (worker: info, others: warn, when not given).",
        ),
        click.Option(["--json", "as_json"], is_flag=True, help="Machine-readable JSON output."),
        click.Option(["-q", "--quiet/--no-quiet"], default=False, help="Silence self.say()."),
        click.Option(["--debug/--no-debug"], default=False, help="Print self.carp() output."),
        click.Option(
            ["-D", "--datadir"], metavar="DIR", default=None, help="The app's data directory."
        ),
        click.Option(["-W", "--workdir"], metavar="DIR", default=None, help="Change to DIR first."),
    ]
    group = click.Group(
        name=name or app.conf.id,
        params=params,
        callback=setup,
        context_settings={"help_option_names": ["-h", "--help"]},
        help=f"The command line of app {app.conf.id}: 'worker' runs it; its own commands "
        "are listed with the built-in ones.",
    )
    for builtin in BUILTINS:
        group.add_command(builtin.bound_to(app))
    for command in app.commands.values():
        group.add_command(command.as_click_command())
    return group
