"""The ``streamlog`` commands that work on an app, each written once and built two ways.

``worker``, ``send``, ``agents``, ``tables`` and ``topology`` take an app. As ``streamlog``
subcommands the app is their first argument (``streamlog worker app.py -l info``); on an
app's own command line the app is already there (``python app.py worker -l info``, from
``app.main()``, or ``streamlog app.py worker -l info``). A ``BuiltinCommand`` holds the
options and the body once and makes either click command:

* ``standalone()``: ``APP`` first, loaded (``app_loader.load_app``) when the body asks;
* ``bound_to(app)``: no ``APP``; the body gets the app and the global options the app's
  command line was given before the command name (``CliState``).

The body is ``run(load, state, **options)``: ``load()`` returns the app (the worker
configures logging before it imports the app, so import-time warnings are formatted).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from streamlog.cli.commands import CliState

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["BuiltinCommand", "load_app_or_exit"]

Decorator = Callable[[Any], Any]
AppLoader = Callable[[], "App"]


def load_app_or_exit(spec: str) -> App:
    """The app of ``spec``; a one-line error (exit code 1) when there is none."""
    from streamlog.cli.app_loader import load_app
    from streamlog.dsl import AppNotFoundError

    try:
        return load_app(spec)
    except AppNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@dataclass(frozen=True)
class BuiltinCommand:
    """A command over an app: its ``name``, ``help`` (written for the bound form: "the
    app"), the click ``options`` in order (fresh parameters are made for each build) and
    the body ``run(load, state, **options)``."""

    name: str
    run: Callable[..., None]
    help: str
    options: Sequence[Decorator] = field(default_factory=tuple)

    def standalone(self) -> click.Command:
        """``NAME APP [OPTIONS]``: the ``streamlog`` subcommand."""

        def callback(app_spec: str, **options: Any) -> None:
            loaded: list[App] = []

            def load() -> App:
                if not loaded:
                    loaded.append(load_app_or_exit(app_spec))
                return loaded[0]

            self.run(load, CliState(), **options)

        command = self._build(callback, click.argument("app_spec", metavar="APP"))
        command.help = (
            f"{inspect.cleandoc(self.help)}\n\nAPP: app.py, path/to/app.py:attr, "
            "package.module or package.module:attr."
        )
        return command

    def bound_to(self, app: App) -> click.Command:
        """``NAME [OPTIONS]`` on ``app``'s own command line."""

        @click.pass_context
        def callback(ctx: click.Context, **options: Any) -> None:
            state = ctx.find_object(CliState) or CliState(app=app)
            self.run(lambda: app, state, **options)

        return self._build(callback)

    def _build(self, callback: Callable[..., None], *first: Decorator) -> click.Command:
        fun: Any = callback
        for decorator in reversed([*first, *self.options]):
            fun = decorator(fun)
        return click.command(self.name, help=inspect.cleandoc(self.help))(fun)
