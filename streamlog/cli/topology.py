"""``streamlog topology APP``: print what an app reads, computes, stores and writes.

The graph comes from ``streamlog.dsl.topology.graph.build_topology``: the app is imported, not
started, and no broker is contacted. The text goes to standard output; ``--dot FILE``
also writes Graphviz DOT (``--dot -``: DOT on standard output instead of the text) and
``--png FILE`` renders a PNG with Graphviz's ``dot`` when it is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from streamlog.cli.builtin import BuiltinCommand, load_app_or_exit
from streamlog.cli.commands import CliState

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["TOPOLOGY", "topology", "load_app_or_exit"]


def _run_topology(
    load: Callable[[], App], state: CliState, *, dot_path: str | None, png_path: str | None
) -> None:
    from streamlog.dsl.errors import StreamlogError
    from streamlog.dsl.topology.graph import build_topology

    app = load()
    graph = build_topology(app)
    if dot_path == "-":
        click.echo(graph.to_dot(), nl=False)
    else:
        click.echo(graph.to_text(), nl=False)
        if dot_path is not None:
            try:
                with open(dot_path, "w") as f:
                    f.write(graph.to_dot())
            except OSError as exc:
                raise click.ClickException(f"cannot write {dot_path}: {exc.strerror}") from None
            click.echo(f"wrote DOT to {dot_path}", err=True)
    if png_path is not None:
        try:
            graph.write_png(png_path)
        except StreamlogError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote PNG to {png_path}", err=True)


TOPOLOGY = BuiltinCommand(
    "topology",
    _run_topology,
    help="Print the app's topology: sources, agents and DSL nodes, tables, changelogs, sinks.",
    options=(
        click.option(
            "--dot",
            "dot_path",
            metavar="FILE",
            default=None,
            help="Also write the graph as Graphviz DOT to FILE ('-': DOT instead of the text).",
        ),
        click.option(
            "--png",
            "png_path",
            metavar="FILE",
            default=None,
            help="Also render the graph to a PNG (needs Graphviz's 'dot' program).",
        ),
    ),
)
topology = TOPOLOGY.standalone()
