"""``streamlog mirror``: copy topics and consumer-group offsets from one log to another.

``--from`` and ``--to`` take the URLs every tool takes (``file://PATH``, ``kafka://...``).
The usual SASL/TLS options (``--sasl-mechanism``...) are the target's; the source's have a
``--from-`` prefix (and ``STREAMLOG_FROM_*`` variables). The engine is
``streamlog.mirror.Mirror``; this module parses options, draws progress and prints the
summary.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

from streamlog.cli.common import (
    cli_security,
    format_table,
    from_security,
    from_security_options,
    one_line,
    run_interruptibly,
    security_options,
)
from streamlog.cli.errors import Interrupted
from streamlog.transport.security import ClientSecurity

if TYPE_CHECKING:
    from streamlog.mirror import MirrorSummary

__all__ = ["mirror", "summary_lines", "start_pair"]


@click.command("mirror")
@click.option("--from", "source_url", required=True, metavar="URL", help="The log to copy from.")
@click.option("--to", "target_url", required=True, metavar="URL", help="The log to copy into.")
@click.option(
    "--topics",
    default=".*",
    show_default=True,
    metavar="REGEX",
    help="Topics to copy: a regular expression matching whole names (internal topics never).",
)
@click.option(
    "--groups",
    default=None,
    metavar="REGEX",
    help="Consumer groups whose committed offsets are translated onto the target.",
)
@click.option("--once", is_flag=True, help="Copy what the source holds now, then exit.")
@click.option(
    "--name",
    default="default",
    show_default=True,
    help="The mirror's name: keys its checkpoints on the target (one per source).",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often progress is made durable on the target.",
)
@click.option(
    "--group-sync-interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
)
@click.option(
    "--retry-for",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to keep retrying while either side is unreachable (0: stop at once).",
)
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]),
    default="none",
    show_default=True,
    help="Compression of the batches written to the target.",
)
@from_security_options
@security_options
def mirror(
    source_url: str,
    target_url: str,
    topics: str,
    groups: str | None,
    once: bool,
    name: str,
    checkpoint_interval: float,
    group_sync_interval: float,
    retry_for: float,
    compression: str,
    from_sasl_mechanism: str | None,
    from_sasl_username: str | None,
    from_sasl_password: str | None,
    from_ssl_cafile: str | None,
) -> None:
    """Copy topics (records with their keys, headers and timestamps, into the same
    partitions) and consumer groups' offsets from one log to another.

    Runs until stopped (Ctrl-C), following new records and topics, or with --once copies
    what exists and exits. Progress is kept on the target: a restart resumes where it
    stopped, without writing any record twice.
    """
    import re

    from streamlog.mirror import Mirror, MirrorError, MirrorOptions
    from streamlog.mirror.progress import ProgressDisplay
    from streamlog.transport import TransportError

    for label, pattern in (("--topics", topics), ("--groups", groups)):
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise click.BadParameter(
                    f"not a regular expression: {exc}", param_hint=label
                ) from None
    source_security = from_security(
        from_sasl_mechanism, from_sasl_username, from_sasl_password, from_ssl_cafile
    )
    options = MirrorOptions(
        topics=topics,
        groups=groups,
        once=once,
        name=name,
        checkpoint_interval_s=checkpoint_interval,
        group_sync_interval_s=group_sync_interval,
        retry_for_s=retry_for,
        compression=compression,
    )
    display = ProgressDisplay(sys.stderr, interactive=sys.stderr.isatty())
    result: dict[str, Any] = {}

    async def main() -> None:
        source, target = await start_pair(source_url, target_url, source_security)
        engine = Mirror(source, target, options, on_progress=display)
        result["engine"] = engine
        try:
            await engine.run()
        except asyncio.CancelledError:
            pass  # Ctrl-C: the engine recorded a last checkpoint; say what was done
        finally:
            await source.close()
            await target.close()

    try:
        run_interruptibly(main)
    except Interrupted:
        pass
    except (MirrorError, TransportError) as exc:
        raise click.ClickException(one_line(exc)) from None
    engine = result.get("engine")
    if engine is not None:
        for line in summary_lines(engine.summary, source_url, target_url):
            click.echo(line)


async def start_pair(
    source_url: str, target_url: str, source_security: ClientSecurity
) -> tuple[Any, Any]:
    """The started source and target transports. The target's SASL/TLS are the command's
    usual options; the source's are given apart (``--from-*``). A ``file://`` directory
    held by a worker is reached through its listener, on either side."""
    from streamlog.cli.common import check_data_dir
    from streamlog.transport.connect import connect_noting_listener

    check_data_dir(source_url, create=False)
    source, _ = await connect_noting_listener(source_url, source_security)
    try:
        target, _ = await connect_noting_listener(target_url, cli_security() or ClientSecurity())
    except BaseException:
        await source.close()
        raise
    return source, target


def summary_lines(summary: MirrorSummary, source: str, target: str) -> list[str]:
    """The closing report: totals, then per topic, per partition and per group."""
    lines = [
        f"mirrored {summary.records:,} records ({summary.bytes / 1e6:,.2f} MB) from {source} "
        f"to {target} in {summary.elapsed_s:.1f} s: {summary.records_per_s:,.0f} records/s, "
        f"{summary.mb_per_s:,.2f} MB/s"
    ]
    if summary.matched:
        lines.append(
            f"{summary.matched:,} records were on the target already (written before a "
            "restart): matched, not copied again"
        )
    for name, topic in sorted(summary.topics.items()):
        configs = ", ".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))
        made = "created" if topic.created else "existed"
        lines.append(
            f"topic {name}: {topic.partitions} partition(s), {made} on the target"
            + (f" ({configs})" if configs else "")
        )
    rows = [
        (
            tp.topic,
            tp.partition,
            p.copied,
            p.source_next,
            p.target_next,
            "-" if p.lag is None else p.lag,
        )
        for tp, p in sorted(summary.partitions.items())
    ]
    if rows:
        lines += format_table(
            ("TOPIC", "PARTITION", "COPIED", "SOURCE-NEXT", "TARGET-NEXT", "LAG"), rows
        )
    group_rows = [
        (group, tp.topic, tp.partition, source_offset, target_offset)
        for group, offsets in sorted(summary.groups.items())
        for tp, (source_offset, target_offset) in sorted(offsets.items())
    ]
    if group_rows:
        lines.append(f"group offsets translated onto the target: {len(summary.groups)} group(s)")
        lines += format_table(
            ("GROUP", "TOPIC", "PARTITION", "SOURCE-OFFSET", "TARGET-OFFSET"), group_rows
        )
    return lines
