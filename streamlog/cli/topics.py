"""``streamlog topics``: create, list, describe, grow and delete topics (as kafka-topics)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from streamlog.cli.common import broker_option, format_table, run_with_transport, unknown_name

if TYPE_CHECKING:
    from streamlog.transport.base import Admin, Transport
    from streamlog.transport.types import TopicInfo

T = TypeVar("T")

__all__ = ["topics", "describe_lines"]


@click.group("topics")
def topics() -> None:
    """Create, list, describe, grow and delete topics."""


async def _on_topic(transport: Transport, name: str, action: Callable[[Admin], Awaitable[T]]) -> T:
    """``action(admin)`` on topic ``name``; an unknown topic is an error naming near matches."""
    from streamlog.transport.errors import UnknownTopicError

    admin = transport.admin()
    try:
        return await action(admin)
    except UnknownTopicError:
        known = await admin.list_topics(include_internal=True)
        raise click.ClickException(unknown_name("topic", name, known)) from None


def _parse_configs(values: tuple[str, ...]) -> dict[str, str]:
    configs: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="--config")
        configs[key.strip()] = setting.strip()
    return configs


@topics.command("create")
@click.argument("name")
@click.option(
    "-p", "--partitions", default=1, show_default=True, type=click.IntRange(min=1), metavar="N"
)
@click.option(
    "-c",
    "--config",
    "config_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="A topic config, e.g. cleanup.policy=compact (repeatable).",
)
@broker_option
def create(
    name: str, partitions: int, config_values: tuple[str, ...], broker_url: str | None
) -> None:
    """Create topic NAME."""
    configs = _parse_configs(config_values)

    async def run(transport: Transport) -> None:
        await transport.admin().create_topic(name, partitions, configs)

    run_with_transport(broker_url, run, create=True)
    click.echo(f"Created topic {name}.")


@topics.command("list")
@click.option("--internal", is_flag=True, help="Also list internal topics (__consumer_offsets).")
@broker_option
def list_(internal: bool, broker_url: str | None) -> None:
    """List the topics, one per line."""

    async def run(transport: Transport) -> list[str]:
        return await transport.admin().list_topics(include_internal=internal)

    for name in run_with_transport(broker_url, run) or []:
        click.echo(name)


def describe_lines(info: TopicInfo) -> list[str]:
    """What ``topics describe`` prints for ``info``."""
    replication = max((len(p.replicas) for p in info.partitions), default=0)
    lines = [
        f"Topic: {info.name}  Partitions: {len(info.partitions)}  "
        f"Replication factor: {replication}" + ("  Internal: yes" if info.internal else ""),
    ]
    if info.configs:
        lines.append("Configs:")
        lines += [f"  {key}={info.configs[key]}" for key in sorted(info.configs)]
    else:
        lines.append("Configs: (none)")
    lines += format_table(
        ("PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START-OFFSET", "LOG-END-OFFSET"),
        (
            (
                p.partition,
                p.leader,
                _node_list(p.replicas),
                _node_list(p.isr),
                _offset(p.log_start_offset),
                _offset(p.log_end_offset),
            )
            for p in info.partitions
        ),
    )
    return lines


def _node_list(nodes: tuple[int, ...]) -> str:
    return "[" + ",".join(str(n) for n in nodes) + "]"


def _offset(offset: int) -> str:
    return str(offset) if offset >= 0 else "-"


@topics.command("describe")
@click.argument("name")
@broker_option
def describe(name: str, broker_url: str | None) -> None:
    """Partitions of topic NAME (leader, replicas, in-sync replicas, offsets) and configs."""

    async def run(transport: Transport) -> TopicInfo:
        return await _on_topic(transport, name, lambda admin: admin.describe_topic(name))

    info = run_with_transport(broker_url, run)
    if info is not None:
        for line in describe_lines(info):
            click.echo(line)


@topics.command("add-partitions")
@click.argument("name")
@click.option(
    "-p",
    "--partitions",
    required=True,
    type=click.IntRange(min=1),
    metavar="TOTAL",
    help="The partition count to grow the topic to.",
)
@broker_option
def add_partitions(name: str, partitions: int, broker_url: str | None) -> None:
    """Grow topic NAME to TOTAL partitions (keyed records may change partition)."""

    async def run(transport: Transport) -> None:
        await _on_topic(transport, name, lambda admin: admin.add_partitions(name, partitions))

    run_with_transport(broker_url, run)
    click.echo(f"Topic {name} now has {partitions} partitions.")


@topics.command("delete")
@click.argument("name")
@broker_option
def delete(name: str, broker_url: str | None) -> None:
    """Delete topic NAME and its records."""

    async def run(transport: Transport) -> None:
        await _on_topic(transport, name, lambda admin: admin.delete_topic(name))

    run_with_transport(broker_url, run)
    click.echo(f"Deleted topic {name}.")
