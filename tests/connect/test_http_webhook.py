"""The webhook source over real HTTP on loopback, with a bundled log (``file://``) behind
it: a small loop stands in for the runner (poll, produce, flush, ``acknowledged``), so
what a sender is told can be checked against what the log holds. Every bad request gets
its 4xx, takes nothing, and the source goes on serving the good ones."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamlog.connect import ConnectorConfigError, SourceError
from streamlog.connect.http import WebhookSource, source_from_config
from streamlog.connect.webhook import MAX_READING
from streamlog.transport import open_transport
from streamlog.transport.base import Transport
from streamlog.transport.types import ConsumerRecord, TopicPartition
from tests.tlscerts import HAVE_OPENSSL, make_pki

pytestmark = pytest.mark.timeout(60)
TOPIC = "hooks"


async def read_all(transport: Transport, topic: str) -> list[ConsumerRecord]:
    info = await transport.admin().describe_topic(topic)
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    consumer = transport.consumer()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    out: list[ConsumerRecord] = []
    try:
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += records
    finally:
        await consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


@contextlib.asynccontextmanager
async def pumping(source: WebhookSource, transport: Transport) -> AsyncIterator[list[int]]:
    """What the runner does for a source with ``acknowledged``: every poll's records to
    the log, flushed, then acknowledged. Yields the positions acknowledged."""
    producer = transport.producer()
    acked: list[int] = []

    async def pump() -> None:
        while True:
            records = await source.poll()
            if not records:
                continue
            for record in records:
                await producer.send(
                    TOPIC,
                    json.dumps(record.value).encode(),
                    key=None if record.key is None else record.key.encode(),
                    headers=record.headers,
                )
            await producer.flush()
            acked.append(records[-1].position)
            await source.acknowledged(records[-1].position)

    task = asyncio.create_task(pump())
    try:
        yield acked
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.close()


Body = Callable[[Transport, aiohttp.ClientSession], Awaitable[None]]


def with_log(body: Body) -> Callable[[Path], None]:
    @functools.wraps(body)
    def test(tmp_path: Path) -> None:
        async def run() -> None:
            transport = open_transport(f"file://{tmp_path / 'log'}")
            await transport.start()
            await transport.admin().create_topic(TOPIC, 1)
            try:
                async with aiohttp.ClientSession() as http:
                    await body(transport, http)
            finally:
                await transport.close()

        asyncio.run(asyncio.wait_for(run(), 50))

    del test.__wrapped__
    return test


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, dict[str, Any], Any]:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    async with http.post(url, data=data, headers=headers, **kwargs) as response:
        return response.status, dict(response.headers), await response.json()


@with_log
async def test_posted_objects_arrays_and_lines_become_records_answered_once_in_the_log(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, name="orders-in", key_field="id", forward_headers=["X-Event"])
    await source.start(None)
    try:
        assert source.url is not None
        async with pumping(source, transport) as acked:
            one = await post(http, source.url, {"id": 1, "sku": "a"}, headers={"X-Event": "new"})
            many = await post(http, source.url, [{"id": "2", "n": [1, 2]}, {"id": 3}])
            lines = b'{"id": 4}\n\n{"id": 5, "s": "x\\ny"}\n'
            async with http.post(
                source.url, data=lines, headers={"Content-Type": "application/x-ndjson"}
            ) as response:
                jsonl = response.status, await response.json()
        assert one[0] == 200 and one[2] == {"accepted": 1, "position": 1}
        assert many[0] == 200 and many[2] == {"accepted": 2, "position": 3}
        assert jsonl == (200, {"accepted": 2, "position": 5})
        assert acked[-1] == 5
        records = await read_all(transport, TOPIC)
        assert [(r.key, json.loads(r.value)) for r in records] == [
            (b"1", {"id": 1, "sku": "a"}),
            (b"2", {"id": "2", "n": [1, 2]}),
            (b"3", {"id": 3}),
            (b"4", {"id": 4}),
            (b"5", {"id": 5, "s": "x\ny"}),
        ]
        assert list(records[0].headers) == [("X-Event", b"new")]
        assert list(records[1].headers) == []
        status = source.status()
        assert (status["records"], status["requests"], status["position"]) == (5, 3, 5)
        assert (status["errors"], status["pending"], status["kind"]) == (0, 0, "source")
    finally:
        await source.close()


@with_log
async def test_every_bad_request_gets_its_4xx_takes_nothing_and_the_good_ones_go_on(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(
        0, key_field="id", token="s3cret", max_body_bytes=4096, max_records_per_request=10
    )
    await source.start(None)
    auth = {"Authorization": "Bearer s3cret"}
    url = source.url
    assert url is not None
    try:
        async with pumping(source, transport):
            bad: list[tuple[int, Any]] = []
            for body, headers in [
                (b'{"id": 1,', auth),  # truncated JSON
                (b"[" * 5000 + b"]" * 5000, auth),  # over max_body_bytes
                (b"[" * 2000 + b"]" * 2000, auth),  # nested far too deep
                ({"id": 1}, {}),  # no token
                ({"id": 1}, {"Authorization": "Bearer wrong"}),
                ("42", auth),  # not an object
                ([{"id": 1}, "x"], auth),  # an array holding a non-object
                ([], auth),
                ({"sku": "no id"}, auth),  # without its key field
                ({"id": True}, auth),  # a key that is not a string or number
                ([{"id": i} for i in range(11)], auth),  # more records than allowed
                ({"id": 1, "pad": "x" * 5000}, auth),  # larger than max_body_bytes
            ]:
                status, _, answer = await post(http, url, body, headers=headers)
                bad.append((status, answer["error"][:40]))
            async with http.post(
                url, data="id=1", headers={**auth, "Content-Type": "text/plain"}
            ) as response:
                wrong_type = response.status
            async with http.post(
                url,
                data=gzip.compress(b'{"id": 1}'),
                headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
            ) as response:
                compressed = response.status
            async with http.get(url, headers=auth) as response:
                got = response.status
            good = await post(http, url, [{"id": 7}, {"id": 8}], headers=auth)
        assert [s for s, _ in bad] == [400, 413, 400, 401, 401, 422, 422, 422, 422, 422, 413, 413]
        assert bad[0][1].startswith("body is not JSON")
        assert (wrong_type, compressed, got) == (415, 415, 405)
        assert good[0] == 200 and good[2] == {"accepted": 2, "position": 2}
        records = await read_all(transport, TOPIC)
        assert [json.loads(r.value) for r in records] == [{"id": 7}, {"id": 8}]
        status = source.status()
        assert (status["rejected"], status["records"], status["requests"]) == (14, 2, 1)
        assert status["last_error"].startswith("415")
        assert status["refusals"] == {"400": 2, "401": 2, "413": 3, "415": 2, "422": 5}
    finally:
        await source.close()


@with_log
async def test_the_answer_waits_for_the_log_and_a_request_never_taken_is_withdrawn(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, answer_timeout=0.3)
    await source.start(None)
    assert source.url is not None
    try:
        # nothing polls: the log never gets the record, the sender gets 503 and the
        # request is withdrawn, so a later poll does not produce it behind the 503
        status, headers, answer = await post(http, source.url, {"n": 1})
        assert status == 503 and headers["Retry-After"] == "1"
        assert "did not acknowledge" in answer["error"]
        assert source.status()["pending"] == 0
        assert list(await source.poll()) == []

        # taken by the runner but not yet acknowledged: the sender still waits
        source.answer_timeout = 30.0
        request = asyncio.create_task(post(http, source.url, [{"n": 2}, {"n": 3}]))
        records = await source.poll()
        assert [(r.value, r.position) for r in records] == [({"n": 2}, 2), ({"n": 3}, 3)]
        await source.acknowledged(2)  # half the request: not answered yet
        assert not request.done() and source.status()["pending"] == 2
        await source.acknowledged(3)
        assert (await request)[:3:2] == (200, {"accepted": 2, "position": 3})
    finally:
        await source.close()


@with_log
async def test_a_full_queue_answers_503_without_taking_and_closing_answers_the_waiting(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, max_pending_records=3, max_records_per_request=3)
    await source.start(None)
    url = source.url
    assert url is not None
    try:
        first = asyncio.create_task(post(http, url, [{"n": 1}, {"n": 2}]))
        while source.status()["pending"] < 2:
            await asyncio.sleep(0.01)
        status, headers, _ = await post(http, url, [{"n": 3}, {"n": 4}])
        assert status == 503 and headers["Retry-After"] == "1"
        assert source.status()["pending"] == 2
        taken = await source.poll()
        assert [r.value for r in taken] == [{"n": 1}, {"n": 2}]
    finally:
        await source.close()
    status, _, answer = await first
    assert status == 503 and "stopping" in answer["error"]
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, url, {"n": 5})


@with_log
async def test_a_restart_numbers_records_after_the_saved_position(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, key_header="X-Delivery")
    await source.start(41)
    assert source.url is not None
    try:
        async with pumping(source, transport):
            answer = await post(http, source.url, {"a": 1}, headers={"X-Delivery": "d-9"})
            missing = await post(http, source.url, {"a": 2})
        assert answer[2] == {"accepted": 1, "position": 42}
        assert missing[0] == 422 and "X-Delivery" in missing[2]["error"]
        assert [r.key for r in await read_all(transport, TOPIC)] == [b"d-9"]
    finally:
        await source.close()
    for saved in ("a file offset", -1, {"offset": 3}):
        with pytest.raises(SourceError, match="not a record count"):
            await WebhookSource(0).start(saved)


def test_config_names_the_key_that_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    source = source_from_config("in", {"port": 0, "path": "/hooks", "key_field": "id"})
    assert isinstance(source, WebhookSource)
    assert (source.name, source.path, source.key_field) == ("in", "/hooks", "id")
    monkeypatch.setenv("HOOK_TOKEN", "t0k")
    assert source_from_config("in", {"port": 1, "token_env": "HOOK_TOKEN"})._token == b"t0k"
    for config, key in [
        ({"port": 0, "colour": "red"}, "colour"),
        ({}, "port"),
        ({"port": 70000}, "port"),
        ({"port": 0, "path": "hooks"}, "path"),
        ({"port": 0, "key_field": "id", "key_header": "X-Id"}, "key_field"),
        ({"port": 0, "max_body_bytes": 0}, "max_body_bytes"),
        ({"port": 0, "answer_timeout": -1}, "answer_timeout"),
        ({"port": 0, "body_timeout": 0}, "body_timeout"),
        ({"port": 0, "forward_headers": "X-A"}, "forward_headers"),
        ({"port": 0, "token_env": "NO_SUCH_VARIABLE_HERE"}, "token_env"),
        ({"port": 0, "max_records_per_request": 10, "max_pending_records": 5}, "max_records"),
    ]:
        with pytest.raises(ConnectorConfigError, match=f"^{key}"):
            source_from_config("in", config)


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    async def run() -> None:
        first = WebhookSource(0)
        await first.start(None)
        try:
            with pytest.raises(SourceError, match=f"cannot listen on 127.0.0.1:{first.port}"):
                await WebhookSource(first.port).start(None)
        finally:
            await first.close()

    asyncio.run(run())


@with_log
async def test_a_chunked_body_running_over_and_a_trickled_body_are_refused(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, max_body_bytes=1000, body_timeout=0.3)
    await source.start(None)
    assert source.url is not None
    try:

        async def chunks() -> AsyncIterator[bytes]:
            yield b'[{"pad": "'
            for _ in range(20):
                yield b"x" * 100
            yield b'"}]'

        async with http.post(
            source.url, data=chunks(), headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 413
            assert "exceeds 1000 bytes" in (await response.json())["error"]

        # a sender announcing 100 bytes and sending 10 holds its request no longer than
        # body_timeout, then gets 408
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"a": 1, "'
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 408")
        assert source.status()["pending"] == 0 and list(await source.poll()) == []
    finally:
        await source.close()


@pytest.mark.skipif(not HAVE_OPENSSL, reason="needs the openssl command to make certificates")
def test_the_webhook_over_https(tmp_path: Path) -> None:
    pki = make_pki(str(tmp_path))

    async def run() -> None:
        source = WebhookSource(0, cert_file=pki.server_cert, key_file=pki.server_key)
        await source.start(None)
        assert source.url is not None and source.url.startswith("https://127.0.0.1:")
        try:
            context = ssl.create_default_context(cafile=pki.ca)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
                request = asyncio.create_task(post(http, source.url, {"over": "tls"}))
                taken = await source.poll()
                await source.acknowledged(taken[-1].position)
                assert (await request)[2] == {"accepted": 1, "position": 1}
                assert [r.value for r in taken] == [{"over": "tls"}]
        finally:
            await source.close()

    asyncio.run(asyncio.wait_for(run(), 30))
    with pytest.raises(ConnectorConfigError, match="^cert_file: give cert_file and key_file"):
        WebhookSource(0, cert_file=pki.server_cert)
    with pytest.raises(ConnectorConfigError, match="^cert_file: cannot load"):
        WebhookSource(0, cert_file=pki.server_key, key_file=pki.server_key)


@with_log
async def test_header_bytes_that_are_not_utf8_are_copied_as_sent_and_refused_as_a_key(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, key_header="X-Id", forward_headers=["X-Raw"])
    await source.start(None)
    try:

        async def raw_post(headers: bytes) -> tuple[bytes, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            body = b'{"a": 1}'
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + headers
                + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            head, _, rest = answer.partition(b"\r\n\r\n")
            return head.split(b"\r\n")[0], rest

        async with pumping(source, transport):
            refused = await raw_post(b"X-Id: caf\xe9\r\n")
            taken = await raw_post(b"X-Id: id-1\r\nX-Raw: caf\xe9\r\n")
        assert refused[0].startswith(b"HTTP/1.1 422") and b"not UTF-8" in refused[1]
        assert taken[0].startswith(b"HTTP/1.1 200")
        [record] = await read_all(transport, TOPIC)
        assert record.key == b"id-1" and list(record.headers) == [("X-Raw", b"caf\xe9")]
    finally:
        await source.close()


@with_log
async def test_bodies_read_at_once_are_bounded_and_a_sender_hanging_up_frees_its_slot(
    transport: Transport, http: aiohttp.ClientSession
) -> None:
    source = WebhookSource(0, body_timeout=30.0)
    await source.start(None)
    assert source.url is not None
    trickling = []
    try:
        for _ in range(MAX_READING):  # each announces 100 bytes and sends 10
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b'{"a": 1, "'
            )
            await writer.drain()
            trickling.append(writer)
        while source.status()["reading"] < MAX_READING:
            await asyncio.sleep(0.01)
        status, headers, answer = await post(http, source.url, {"n": 1})
        assert status == 503 and "being read already" in answer["error"]
        assert headers["Retry-After"] == "1"
        for writer in trickling:
            writer.close()
        while source.status()["reading"] > 0:
            await asyncio.sleep(0.01)
        async with pumping(source, transport):
            status, _, answer = await post(http, source.url, {"n": 2})
        assert (status, answer) == (200, {"accepted": 1, "position": 1})
        assert [json.loads(r.value) for r in await read_all(transport, TOPIC)] == [{"n": 2}]
        assert source.status()["refusals"] == {"400": MAX_READING, "503": 1}
    finally:
        for writer in trickling:
            writer.close()
        await source.close()
