"""The ``streamlog`` command. Subcommands import what they need when they run, so that
``streamlog --help`` stays fast.

A first argument that is not a command but names an app (``app.py``, ``path/app.py:attr``,
``package.module[:attr]``) opens that app's own command line (``app_main.app_cli``):
``streamlog app.py mycommand --n 3`` runs the app's ``@app.command``, and
``streamlog app.py worker`` is ``streamlog worker app.py``.
"""

from __future__ import annotations

import importlib.util
import os

import click

from streamlog import __version__
from streamlog.cli.broker import broker
from streamlog.cli.connect import connect
from streamlog.cli.console import consume, produce
from streamlog.cli.dump_log import dump_log
from streamlog.cli.groups import groups
from streamlog.cli.migrate import migrate
from streamlog.cli.mirror import mirror
from streamlog.cli.tables import tables
from streamlog.cli.topics import topics
from streamlog.cli.topology import topology
from streamlog.cli.worker import agents, send, worker

__all__ = ["main", "cli"]


class StreamlogGroup(click.Group):
    """The ``streamlog`` group: its commands, or an app's command line (module docstring)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and self.get_command(ctx, name) is None and _names_an_app(name):
            from streamlog.cli.app_main import app_cli
            from streamlog.cli.builtin import load_app_or_exit

            return name, app_cli(load_app_or_exit(name), name=name), args[1:]
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_usage(ctx, formatter)
        formatter.write_usage(ctx.command_path, "APP COMMAND [ARGS]...", prefix="   or: ")


def _names_an_app(name: str) -> bool:
    """Whether ``name`` (not a command) is meant as an app: a ``.py`` file, a path, a
    ``module:attr``, or a module importable from the current directory."""
    if name.startswith("-"):
        return False
    if name.endswith(".py") or ":" in name or os.sep in name:
        return True
    if not all(part.isidentifier() for part in name.split(".")):
        return False
    if os.path.isfile(name.replace(".", os.sep) + ".py") or os.path.isfile(
        os.path.join(name.replace(".", os.sep), "__init__.py")
    ):
        return True
    try:
        return "." in name and importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@click.group(cls=StreamlogGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamlog")
def cli() -> None:
    """streamlog: stream processing on a bundled, Kafka-compatible log.

    streamlog APP COMMAND runs a command of APP's own command line (app.py,
    path/to/app.py:attr, package.module[:attr]): its @app.command functions, and worker,
    send, agents, tables and topology without repeating APP.
    """


cli.add_command(broker)
cli.add_command(dump_log)
cli.add_command(mirror)
cli.add_command(topics)
cli.add_command(groups)
cli.add_command(produce)
cli.add_command(consume)
cli.add_command(worker)
cli.add_command(send)
cli.add_command(agents)
cli.add_command(topology)
cli.add_command(tables)
cli.add_command(connect)
cli.add_command(migrate)


def main() -> None:
    cli(prog_name="streamlog")
