"""``streamlog dump-log``: print the batches of segment files, as kafka-dump-log does.

For looking inside a data directory by hand: which offsets a segment holds, whether every
batch's CRC is valid, and (with ``--records``) the records themselves.
"""

from __future__ import annotations

import os

import click

__all__ = ["dump_log"]


@click.command("dump-log")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--records", is_flag=True, help="Also print every record (key, value, headers).")
def dump_log(paths: tuple[str, ...], records: bool) -> None:
    """Print the record batches in segment .log files or partition directories."""
    from streamlog.log.batch_header import HEADER_SIZE, parse_header, validate_batch
    from streamlog.log.errors import LogError
    from streamlog.log.records import decode_batch

    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".log"))
        else:
            files.append(path)
    bad = 0
    for file in files:
        click.echo(f"Dumping {file}")
        with open(file, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            if len(data) - pos < HEADER_SIZE:
                click.echo(f"  position {pos}: {len(data) - pos} trailing bytes (torn write)")
                bad += 1
                break
            try:
                header = validate_batch(data, pos)
                valid = "valid"
            except LogError as exc:
                try:
                    header = parse_header(data, pos)
                except LogError:
                    click.echo(f"  position {pos}: unreadable batch: {exc}")
                    bad += 1
                    break
                valid = f"INVALID ({exc})"
                bad += 1
            click.echo(
                f"  baseOffset: {header.base_offset} lastOffset: {header.last_offset} "
                f"count: {header.record_count} position: {pos} size: {header.size} "
                f"maxTimestamp: {header.max_timestamp} compression: {header.compression} "
                f"producerId: {header.producer_id} sequence: {header.base_sequence} "
                f"transactional: {header.is_transactional} control: {header.is_control} "
                f"crc: {header.crc} {valid}"
            )
            if records and valid == "valid":
                for r in decode_batch(data[pos : pos + header.size]).records:
                    click.echo(
                        f"    | offset: {r.offset} timestamp: {r.timestamp} "
                        f"key: {r.key!r} value: {r.value!r} headers: {list(r.headers)}"
                    )
            if pos + header.size > len(data):
                break
            pos += header.size
    if bad:
        raise SystemExit(1)
