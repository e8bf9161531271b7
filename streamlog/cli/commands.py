"""An app's own commands: ``@app.command(option(...), argument(...))`` as Faust has them.

``App.command`` turns ``async def fun`` into a subclass of ``AppCommand`` whose ``run`` is
``fun`` (``AppCommand.from_handler``); the app's command line (``python app.py NAME``,
``streamlog app.py NAME``) adds it as a click command named after the function
(``add_item`` -> ``add-item``). The calling convention is Faust's:

* a function that takes parameters gets the command instance first (``self``: with
  ``self.app``, ``self.say``, ``self.ctx``...), then the options and arguments as keywords;
  a function that takes none is called with nothing;
* the command runs in its own event loop, with the app started as a client
  (``App.start_client``: the transport, the producer and the app's missing topics; no
  agent and no consumer), so ``await topic.send(...)`` and ``await agent.ask(...)`` work;
  ``on_stop`` flushes and closes it;
* it exits 0 when ``run`` returns; when ``run`` raises it prints the traceback and exits
  1; Ctrl-C or SIGTERM cancels it (exit 130). ``daemon=True`` keeps it running after
  ``run`` returns, until a signal.

``option`` is ``click.option`` with ``show_default=True`` (Faust's default); ``argument``
is ``click.argument``. Both keep what they were given (``args``, ``kwargs``) for reprs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar, NoReturn

import click

from streamlog.cli.common import (
    Interrupted,
    format_table,
    normalize_loglevel,
    one_line,
    run_interruptibly,
)

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["AppCommand", "CliState", "Command", "argument", "option"]

Decorator = Callable[[Any], Any]


class argument:  # noqa: N801 - Faust's spelling (faust.cli.argument)
    """A positional command-line argument (``click.argument``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.argument: Decorator = click.argument(*args, **kwargs)

    def __call__(self, fun: Any) -> Any:
        return self.argument(fun)

    def __repr__(self) -> str:
        return _reprcall(type(self).__name__, self.args, self.kwargs)


class option:  # noqa: N801 - Faust's spelling (faust.cli.option)
    """A command-line option (``click.option``, showing its default in ``--help``)."""

    def __init__(self, *args: Any, show_default: bool = True, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.option: Decorator = click.option(*args, show_default=show_default, **kwargs)

    def __call__(self, fun: Any) -> Any:
        return self.option(fun)

    def __repr__(self) -> str:
        return _reprcall(type(self).__name__, self.args, self.kwargs)


def _reprcall(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


@dataclass
class CliState:
    """What the app's command line was given before the command name (``python app.py
    --json -l info agents``): the app and Faust's global options. It is the click
    context's object; commands read it through ``ctx.find_object(CliState)``."""

    app: App | None = None
    loglevel: str | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    datadir: str | None = None
    workdir: str | None = None


class Command:
    """A command of the app's command line (Faust's ``faust.cli.Command``).

    Subclasses define ``async def run(self, *args, **kwargs)``. ``__call__`` runs it to
    the end in a new event loop and exits the process (see the module docstring).
    """

    UsageError: ClassVar[type[Exception]] = click.UsageError
    options: ClassVar[Sequence[Decorator] | None] = None
    daemon: ClassVar[bool] = False

    def __init__(self, ctx: click.Context, *args: Any, **kwargs: Any) -> None:
        self.ctx = ctx
        self.state = ctx.find_object(CliState) or CliState()
        self.debug = self.state.debug
        self.quiet = self.state.quiet
        self.json = self.state.json
        self.workdir = self.state.workdir
        self.datadir = self.state.datadir
        self.loglevel = self.state.loglevel or "warning"
        self.stdout: IO[str] = sys.stdout
        self.stderr: IO[str] = sys.stderr
        self.args = args
        self.kwargs = kwargs
        self.prog_name = ctx.find_root().command_path

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        """What the command does (subclasses and ``@app.command`` functions)."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """``run``, then ``on_stop`` whatever happened."""
        try:
            return await self.run(*args, **kwargs)
        finally:
            await self.on_stop()

    async def on_stop(self) -> None:  # noqa: B027 - a hook, empty by default (Faust's)
        """Called after ``run`` (also when it raised)."""

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Run the command to its end and exit: 0 when it returned, 1 when it raised
        (with the traceback on stderr), 130 when a signal stopped it."""
        from streamlog.dsl.app.logs import configure_logging
        from streamlog.transport import TransportError

        configure_logging(normalize_loglevel(self.loglevel))
        args = self.args + args
        kwargs = {**self.kwargs, **kwargs}

        async def main() -> None:
            await self.execute(*args, **kwargs)
            if self.daemon:
                await asyncio.Event().wait()  # until a signal cancels it

        try:
            run_interruptibly(main)
        except (Interrupted, KeyboardInterrupt):
            sys.exit(130)
        except click.ClickException:
            raise
        except TransportError as exc:
            raise click.ClickException(one_line(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the command's own failure: say what, exit 1
            print(f"Command raised exception: {exc!r}", file=self.stderr)
            traceback.print_exception(exc, file=self.stderr)
            sys.exit(1)
        sys.exit(0)

    # ------------------------------------------------------------------ output helpers

    def say(
        self, message: Any, file: IO[str] | None = None, err: bool = False, **kwargs: Any
    ) -> None:
        """Print ``message`` (to stderr with ``err=True``), unless ``--quiet``."""
        if not self.quiet:
            click.echo(message, file=file or (self.stderr if err else self.stdout), **kwargs)

    def carp(self, message: Any, **kwargs: Any) -> None:
        """Print ``#-- message`` when ``--debug`` is on."""
        if self.debug:
            self.say(f"#-- {message}", **kwargs)

    def dumps(self, obj: Any) -> str:
        """``obj`` as JSON."""
        return json.dumps(obj)

    def tabulate(
        self,
        data: Sequence[Sequence[Any]],
        headers: Sequence[str] | None = None,
        wrap_last_row: bool = True,
        title: str = "",
        **kwargs: Any,
    ) -> str:
        """Rows as aligned text (``title`` above them), or as JSON with ``--json``."""
        if self.json:
            if headers:
                return json.dumps([dict(zip(headers, row, strict=False)) for row in data])
            return json.dumps([list(row) for row in data])
        head = list(headers) if headers else [""] * max((len(r) for r in data), default=0)
        lines = format_table(head, data)
        if not headers:
            lines = lines[1:]
        return "\n".join(([title] if title else []) + lines)


class AppCommand(Command):
    """A command that works on the app (Faust's ``faust.cli.AppCommand``): ``self.app``.

    ``execute`` starts the app as a client (``App.start_client``) around ``run``;
    ``on_stop`` stops it (and the app, if ``run`` started it).
    """

    def __init__(
        self,
        ctx: click.Context,
        *args: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ctx, *args, **kwargs)
        app = self.state.app
        if app is None:
            raise self.UsageError(
                "no app: run it as python app.py COMMAND or streamlog APP COMMAND"
            )
        self.app = app
        self.key_serializer = key_serializer or app.conf.key_serializer
        self.value_serializer = value_serializer or app.conf.value_serializer

    @classmethod
    def from_handler(
        cls, *options: Decorator, **attrs: Any
    ) -> Callable[[Callable[..., Awaitable[Any]]], type[AppCommand]]:
        """A subclass whose ``run`` is the decorated function (what ``@app.command`` makes).

        A function that takes no parameters becomes a static method: it is called with
        nothing. ``attrs`` become class attributes (``daemon=True``).
        """

        def decorate(fun: Callable[..., Awaitable[Any]]) -> type[AppCommand]:
            target: Any = fun
            if not inspect.signature(fun).parameters:
                target = staticmethod(fun)
            fields = {
                "run": target,
                "__doc__": fun.__doc__,
                "__qualname__": fun.__qualname__,
                "__module__": fun.__module__,
                "__wrapped__": fun,
                "options": options,
            }
            return type(fun.__name__, (cls,), {**fields, **attrs})

        return decorate

    @classmethod
    def as_click_command(cls) -> click.Command:
        """The click command that makes an instance from the parsed arguments and calls it."""

        @click.pass_context
        def invoke(ctx: click.Context, **kwargs: Any) -> None:
            cls(ctx, **kwargs)()

        invoke.__name__ = cls.__name__
        fun: Any = invoke
        for decorator in reversed(list(cls.options or ())):
            fun = decorator(fun)
        return click.command(help=inspect.cleandoc(cls.__doc__) if cls.__doc__ else None)(fun)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Start the app as a client, ``run``, then ``on_stop``."""
        from streamlog.cli.common import start_transport

        transport = await start_transport(self.app.conf.broker, self.app.conf.broker_security)
        await self.app.start_client(transport)
        return await super().execute(*args, **kwargs)

    async def on_stop(self) -> None:
        """Stop what ``execute`` started (flushing everything sent)."""
        await super().on_stop()
        if self.app.started:
            await self.app.stop()
        await self.app.stop_client()

    def to_topic(self, entity: str) -> Any:
        """The topic a command-line name means: ``@agent`` is the agent's, else ``app.topic``."""
        if not entity:
            raise self.UsageError("Missing topic/@agent name")
        if entity.startswith("@"):
            name = entity[1:]
            for agent_name, agent in self.app.agents.items():
                if name in (agent_name, agent.short_name):
                    return agent.channel
            raise self.UsageError(f"no agent named {name!r}")
        return self.app.topic(entity)
