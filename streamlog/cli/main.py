"""The ``streamlog`` command. Subcommands import what they need when they run, so that
``streamlog --help`` stays fast."""

from __future__ import annotations

import click

from streamlog import __version__
from streamlog.cli.broker import broker
from streamlog.cli.console import consume, produce
from streamlog.cli.dump_log import dump_log
from streamlog.cli.groups import groups
from streamlog.cli.tables import tables
from streamlog.cli.topics import topics
from streamlog.cli.topology import topology
from streamlog.cli.worker import agents, send, worker

__all__ = ["main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamlog")
def cli() -> None:
    """streamlog: stream processing on a bundled, Kafka-compatible log."""


cli.add_command(broker)
cli.add_command(dump_log)
cli.add_command(topics)
cli.add_command(groups)
cli.add_command(produce)
cli.add_command(consume)
cli.add_command(worker)
cli.add_command(send)
cli.add_command(agents)
cli.add_command(topology)
cli.add_command(tables)


def main() -> None:
    cli(prog_name="streamlog")
