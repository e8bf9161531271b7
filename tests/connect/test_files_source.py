"""FileSource against real files: read once, resumed at every position, followed through
appends, rename and copytruncate rotations, deletion, restarts; bad lines."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from streamlog.connect import ConnectorConfigError, SourceError, SourceRecord
from streamlog.connect.files import FileSource, source_from_config

FAST = {"poll_interval": 0.01}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def read_all(source: FileSource, position: Any = None) -> list[SourceRecord]:
    """Everything a source read once yields, to its end."""
    await source.start(position)
    out: list[SourceRecord] = []
    try:
        while True:
            out.extend(await source.poll())
    except StopAsyncIteration:
        pass
    await source.close()
    return out


async def poll_until(source: FileSource, count: int, timeout: float = 10.0) -> list[SourceRecord]:
    """Poll a following source until it has given ``count`` records (bounded)."""
    out: list[SourceRecord] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(out)} of {count} records: {out[-3:]}")
        out.extend(await source.poll())
    return out


async def poll_quiet(source: FileSource, polls: int = 5) -> list[SourceRecord]:
    """What a following source gives in a few more polls (nothing, when all was read)."""
    out: list[SourceRecord] = []
    for _ in range(polls):
        out.extend(await source.poll())
    return out


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)


def jsonl(start: int, stop: int) -> str:
    return "".join(json.dumps({"n": n, "s": f"v{n}"}) + "\n" for n in range(start, stop))


def numbers(records: list[SourceRecord]) -> list[int]:
    return [int(r.value["n"]) for r in records]


# -- read once -----------------------------------------------------------------------------


def test_jsonl_read_once_counts_every_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(0, 2500) + "\n  \nnot json\n" + '{"n": 2500, "s": "last"}')
    source = FileSource(path, batch_size=700)
    records = run(read_all(source))
    assert numbers(records) == list(range(2501))
    assert records[-1].value == {"n": 2500, "s": "last"}  # no newline at the end: a record
    offsets = [r.position["offset"] for r in records]
    assert offsets == sorted(set(offsets)) and offsets[-1] == path.stat().st_size
    status = source.status()
    assert (status["records"], status["errors"]) == (2501, 1)
    bad_at = path.read_bytes().index(b"not json")
    assert status["last_error"].startswith(f"{path} at byte {bad_at}: not JSON")
    assert status["position"] == records[-1].position


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resuming_at_any_position_gives_exactly_the_rest(tmp_path, fmt):
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        path.write_text(jsonl(0, 300))
    else:
        rows = "".join(f'{n},"v{n}\nline two, ""quoted"""\r\n' for n in range(300))
        path.write_text("n,s\n" + rows)
    everything = run(read_all(FileSource(path, format=fmt, batch_size=64)))
    assert numbers(everything) == list(range(300))
    if fmt == "csv":
        assert everything[7].value == {"n": "7", "s": 'v7\nline two, "quoted"'}
    for cut in (0, 1, 63, 64, 150, 298, 299):
        rest = run(read_all(FileSource(path, format=fmt, batch_size=64), everything[cut].position))
        assert [r.value for r in rest] == [r.value for r in everything[cut + 1 :]]
        assert [r.position for r in rest] == [r.position for r in everything[cut + 1 :]]


def test_csv_header_columns_key_field_and_bad_rows(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id;name\n1;a\n2;b;extra\n\n3;c\n4;"d\n')
    source = FileSource(path, format="csv", delimiter=";", key_field="id")
    records = run(read_all(source))
    assert [(r.key, r.value) for r in records] == [
        ("1", {"id": "1", "name": "a"}),
        ("3", {"id": "3", "name": "c"}),
    ]
    status = source.status()
    assert status["errors"] == 2  # 3 fields; a quote never closed at the end of the file
    assert "bad CSV" in status["last_error"]


def test_csv_without_header_takes_the_given_columns(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("1,a\n2,b\n")
    source = FileSource(path, format="csv", header=False, columns=["id", "name"])
    assert [r.value for r in run(read_all(source))] == [
        {"id": "1", "name": "a"},
        {"id": "2", "name": "b"},
    ]
    with pytest.raises(ConnectorConfigError, match="columns"):
        FileSource(path, format="csv", header=False)


def test_key_field_missing_is_a_bad_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 7, "v": 1}\n{"v": 2}\n[1, 2]\n{"id": "x"}\n{"id": true}\n')
    source = FileSource(path, key_field="id")
    assert [r.key for r in run(read_all(source))] == ["7", "x", "true"]
    assert source.status()["errors"] == 2


def test_a_too_long_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(0, 2) + '{"big": "' + "x" * 700_000 + '"}\n' + jsonl(2, 4))
    source = FileSource(path, max_record_bytes=1000)
    assert numbers(run(read_all(source))) == [0, 1, 2, 3]
    assert "longer than max_record_bytes" in source.status()["last_error"]


def test_on_error_fail_stops_before_the_bad_line_and_resumes_once_fixed(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(0, 3) + "oops\n" + jsonl(3, 5))

    async def scenario() -> tuple[list[int], Any]:
        source = FileSource(path, on_error="fail")
        await source.start(None)
        got = list(await source.poll())
        with pytest.raises(SourceError, match="at byte .*not JSON"):
            await source.poll()
        await source.close()
        return numbers(got), got[-1].position

    got, position = run(scenario())
    assert got == [0, 1, 2]
    path.write_text(jsonl(0, 3) + '{"n": 99, "s": "fixed"}\n' + jsonl(3, 5))
    assert numbers(run(read_all(FileSource(path, on_error="fail"), position))) == [99, 3, 4]


def test_read_once_needs_a_regular_file(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        run(read_all(FileSource(tmp_path / "missing.jsonl")))
    with pytest.raises(SourceError, match="not a regular file"):
        run(read_all(FileSource(tmp_path)))


def test_a_saved_position_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(0, 1))
    with pytest.raises(SourceError, match="not a file source's position"):
        run(read_all(FileSource(path), {"offset": 3}))


# -- follow --------------------------------------------------------------------------------


def test_follow_reads_appends_and_waits_for_a_line_to_end(tmp_path):
    path = tmp_path / "in.jsonl"

    async def scenario() -> None:
        source = FileSource(path, follow=True, **FAST)
        await source.start(None)  # the file does not exist yet: waits for it
        assert await poll_quiet(source, 2) == []
        path.write_text(jsonl(0, 3) + '{"n": 3, "s": ')
        assert numbers(await poll_until(source, 3)) == [0, 1, 2]
        assert await poll_quiet(source) == []  # half a line: not yet
        append(path, '"v3"}\n')
        assert numbers(await poll_until(source, 1)) == [3]
        await source.close()

    run(scenario())


def test_follow_through_rename_rotations(tmp_path):
    path = tmp_path / "app.log"

    async def scenario() -> list[int]:
        source = FileSource(path, follow=True, **FAST)
        await source.start(None)
        got: list[SourceRecord] = []
        path.write_text(jsonl(0, 100))
        got += await poll_until(source, 50)
        append(path, jsonl(100, 120) + '{"n": 120, "s": "no newline"}')  # read after rotation
        os.rename(path, tmp_path / "app.log.1")
        path.write_text(jsonl(121, 200))
        got += await poll_until(source, 200 - len(got))
        os.rename(path, tmp_path / "app.log.2")
        path.write_text(jsonl(200, 210))
        got += await poll_until(source, 210 - len(got))
        got += await poll_quiet(source)
        await source.close()
        return numbers(got)

    assert run(scenario()) == list(range(210))


def test_follow_after_copytruncate_and_delete_recreate(tmp_path):
    path = tmp_path / "app.log"

    async def scenario() -> list[int]:
        source = FileSource(path, follow=True, **FAST)
        await source.start(None)
        path.write_text(jsonl(0, 50))
        got = await poll_until(source, 50)
        with open(path, "r+") as f:  # copytruncate: then the writer goes on from 0
            f.truncate(0)
        append(path, jsonl(50, 55))
        got += await poll_until(source, 5)
        # truncated and written again past the old end before the source looked: the
        # first bytes differ, so it is read again from its start
        path.write_text(jsonl(1000, 1100))
        got += await poll_until(source, 100)
        path.unlink()  # deleted and created again (often with the same inode)
        path.write_text(jsonl(2000, 2003))
        got += await poll_until(source, 3)
        got += await poll_quiet(source)
        await source.close()
        return numbers(got)

    expected = [*range(55), *range(1000, 1100), *range(2000, 2003)]
    assert run(scenario()) == expected


def test_restart_finds_the_file_rotated_away_meanwhile(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(jsonl(0, 40))

    async def first_run() -> Any:
        source = FileSource(path, follow=True, batch_size=25, **FAST)
        await source.start(None)
        got = await source.poll()
        await source.close()
        assert numbers(list(got)) == list(range(25))
        return got[-1].position

    position = run(first_run())
    append(path, jsonl(40, 45))
    os.rename(path, tmp_path / "app.log-20261206")  # rotated while the source was down
    path.write_text(jsonl(45, 60))
    (tmp_path / "unrelated.log").write_text(jsonl(900, 901))

    async def second_run() -> list[int]:
        source = FileSource(path, follow=True, **FAST)
        await source.start(position)
        got = await poll_until(source, 35)
        got += await poll_quiet(source)
        await source.close()
        return numbers(got)

    assert run(second_run()) == list(range(25, 60))


def test_restart_after_two_rotations_reads_every_file_in_order(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(jsonl(0, 30))
    position = run(read_all(FileSource(path, batch_size=10), None))[9].position
    append(path, jsonl(30, 35))
    os.rename(path, tmp_path / "app.log.1")  # rotated twice while the source was down
    path.write_text(jsonl(35, 50))
    os.rename(path, tmp_path / "app.log-2")
    path.write_text(jsonl(50, 60))
    (tmp_path / "app.log.0.gz").write_bytes(b"\x1f\x8b compressed: never read")
    (tmp_path / "app.logger").write_text(jsonl(900, 901))  # another file's name

    async def second_run() -> list[int]:
        source = FileSource(path, follow=True, **FAST)
        await source.start(position)
        got = await poll_until(source, 50)
        got += await poll_quiet(source)
        await source.close()
        return numbers(got)

    assert run(second_run()) == list(range(10, 60))


def test_restart_on_a_replaced_file_reads_it_from_its_start(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(jsonl(0, 10))
    position = run(read_all(FileSource(path)))[-1].position
    path.unlink()
    path.write_text(jsonl(100, 120))  # same inode, likely; different first bytes
    assert numbers(run(read_all(FileSource(path), position))) == list(range(100, 120))


def test_start_at_end_skips_what_is_there(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(jsonl(0, 10) + '{"n": 10')

    async def scenario() -> list[int]:
        source = FileSource(path, follow=True, start_at="end", **FAST)
        await source.start(None)
        assert await poll_quiet(source) == []
        append(path, ', "s": "x"}\n' + jsonl(11, 13))
        got = await poll_until(source, 3)
        await source.close()
        return numbers(got)

    assert run(scenario()) == [10, 11, 12]


# -- config --------------------------------------------------------------------------------


def test_source_from_config(tmp_path):
    source = source_from_config(
        "orders-in", {"path": str(tmp_path / "x.csv"), "format": "csv", "follow": True}
    )
    assert (source.name, source.format, source.follow) == ("orders-in", "csv", True)
    with pytest.raises(ConnectorConfigError, match="unknown key 'folow'"):
        source_from_config("s", {"path": "x", "folow": True})
    with pytest.raises(ConnectorConfigError, match="follow: 'yes' is not a bool"):
        source_from_config("s", {"path": "x", "follow": "yes"})
    with pytest.raises(ConnectorConfigError, match="batch_size: True is not a int"):
        source_from_config("s", {"path": "x", "batch_size": True})
    with pytest.raises(ConnectorConfigError, match="path: missing"):
        source_from_config("s", {})
    with pytest.raises(ConnectorConfigError, match="format: 'xml'"):
        source_from_config("s", {"path": "x", "format": "xml"})
