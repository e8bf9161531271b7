"""``streamlog topology APP``: print what an app reads, computes, stores and writes.

The graph comes from ``streamlog.dsl.topology.graph.build_topology``: the app is imported, not
started, and no broker is contacted. The text goes to standard output; ``--dot FILE``
also writes Graphviz DOT (``--dot -``: DOT on standard output instead of the text) and
``--png FILE`` renders a PNG with Graphviz's ``dot`` when it is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["topology", "load_app_or_exit"]


def load_app_or_exit(spec: str) -> App:
    """The app of ``spec``; a one-line error (exit code 1) when there is none."""
    from streamlog.cli.app_loader import load_app
    from streamlog.dsl import AppNotFoundError

    try:
        return load_app(spec)
    except AppNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("topology")
@click.argument("app_spec", metavar="APP")
@click.option(
    "--dot",
    "dot_path",
    metavar="FILE",
    default=None,
    help="Also write the graph as Graphviz DOT to FILE ('-': DOT instead of the text).",
)
@click.option(
    "--png",
    "png_path",
    metavar="FILE",
    default=None,
    help="Also render the graph to a PNG (needs Graphviz's 'dot' program).",
)
def topology(app_spec: str, dot_path: str | None, png_path: str | None) -> None:
    """Print APP's topology: sources, agents and DSL nodes, tables, changelogs, sinks."""
    from streamlog.dsl.errors import StreamlogError
    from streamlog.dsl.topology.graph import build_topology

    app = load_app_or_exit(app_spec)
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
