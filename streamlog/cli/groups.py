"""``streamlog groups``: list consumer groups and check their offsets and lag.

``groups describe`` is the offset checker (kafka-consumer-groups --describe): per
partition the group has committed to or been assigned, the committed offset, the log end
offset, the lag and the member that owns it; members owning no partition get a row too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from streamlog.cli.common import broker_option, format_table, run_with_transport, unknown_name

if TYPE_CHECKING:
    from streamlog.transport.base import Transport
    from streamlog.transport.types import GroupInfo

__all__ = ["groups", "describe_lines"]

NONE = "-"


@click.group("groups")
def groups() -> None:
    """List consumer groups; show their committed offsets and lag."""


@groups.command("list")
@broker_option
def list_(broker_url: str | None) -> None:
    """List the consumer groups, one per line."""

    async def run(transport: Transport) -> list[str]:
        return await transport.admin().list_groups()

    for name in run_with_transport(broker_url, run) or []:
        click.echo(name)


def describe_lines(info: GroupInfo) -> list[str]:
    """What ``groups describe`` prints for ``info``."""
    members = {m.member_id: m for m in info.members}
    header = f"Group: {info.group_id}  State: {info.state or NONE}  Members: {len(members)}"
    if info.protocol:
        header += f"  Assignor: {info.protocol}"
    rows: list[tuple[object, ...]] = []
    owning: set[str] = set()
    for p in info.partitions:
        member = members.get(p.member_id) if p.member_id else None
        if member is not None:
            owning.add(member.member_id)
        known_end = p.log_end_offset >= 0
        rows.append(
            (
                p.topic,
                p.partition,
                p.committed_offset if p.committed_offset >= 0 else NONE,
                p.log_end_offset if known_end else NONE,
                p.lag if known_end else NONE,
                member.member_id if member else (p.member_id or NONE),
                member.host if member else NONE,
                member.client_id if member else NONE,
            )
        )
    for member in info.members:
        if member.member_id not in owning:
            rows.append(
                (NONE,) * 5 + (member.member_id, member.host or NONE, member.client_id or NONE)
            )
    table = format_table(
        (
            "TOPIC",
            "PARTITION",
            "COMMITTED-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "MEMBER-ID",
            "HOST",
            "CLIENT-ID",
        ),
        rows,
    )
    return [header, "", *table]


@groups.command("describe")
@click.argument("group")
@broker_option
def describe(group: str, broker_url: str | None) -> None:
    """Committed offset, log end offset, lag and owner of each partition of GROUP."""

    async def run(transport: Transport) -> GroupInfo:
        admin = transport.admin()
        info = await admin.describe_group(group)
        if not info.members and not info.partitions and info.state in ("Dead", ""):
            known = await admin.list_groups()
            raise click.ClickException(unknown_name("consumer group", group, known))
        return info

    info = run_with_transport(broker_url, run)
    if info is None:
        return
    for line in describe_lines(info):
        click.echo(line)
