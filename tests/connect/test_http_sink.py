"""The HTTP sink against a real HTTP receiver on loopback (an aiohttp server the test
scripts: answers 2xx, fails for a while, refuses some records, goes away and comes back).
Every record sent is counted at the receiver: delivered once, or named as refused. The
runner's part (dead-lettering a named record, writing again after a failure) is played by
the test in a few lines; through a real app in test_http_app.py."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from streamlog.connect import (
    BadRecordError,
    ConnectorConfigError,
    SinkRecord,
    SinkUnavailableError,
)
from streamlog.connect.http import HttpSink, sink_from_config
from tests.tlscerts import HAVE_OPENSSL, make_pki

pytestmark = pytest.mark.timeout(60)


@dataclass
class Receiver:
    """A real HTTP endpoint. ``fail`` answers the next requests with those statuses
    (200: taken as usual; then 200 for all); a request holding a record with
    ``"bad": true`` is answered 422."""

    fail: list[int] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.method, dict(request.headers), body))
        status = self.fail.pop(0) if self.fail else 200
        if status != 200:
            return web.Response(status=status, text=f"scripted {status}")
        if request.content_type == "application/x-ndjson":
            items = [json.loads(line) for line in body.splitlines()]
        else:
            items = json.loads(body)
        if any(
            isinstance(i, dict) and (i.get("bad") or (i.get("value") or {}).get("bad"))
            for i in items
        ):
            return web.Response(status=422, text="a bad record")
        self.received.extend(items)
        return web.json_response({"ok": len(items)})

    async def start(self, port: int = 0) -> None:
        application = web.Application(client_max_size=64 << 20)
        application.router.add_route("*", "/in", self.handle)
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port or self.port).start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/in"


def with_receiver(body: Callable[[Receiver], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(body)
    def test() -> None:
        async def run() -> None:
            receiver = Receiver()
            await receiver.start()
            try:
                await body(receiver)
            finally:
                await receiver.stop()

        asyncio.run(asyncio.wait_for(run(), 50))

    del test.__wrapped__
    return test


def records(n: int, start: int = 0, bad: set[int] = frozenset()) -> list[SinkRecord]:  # type: ignore[assignment]
    return [
        SinkRecord(
            topic="orders",
            partition=i % 2,
            offset=i,
            timestamp_ms=1_700_000_000_000 + i,
            key=f"k{i}",
            value={"n": i, "bad": True} if i in bad else {"n": i},
        )
        for i in range(start, start + n)
    ]


async def started(url: str, **settings: Any) -> HttpSink:
    sink = HttpSink(url, backoff=0.01, backoff_max=0.05, **settings)
    await sink.start()
    return sink


async def write_all(sink: HttpSink, batch: list[SinkRecord]) -> list[BadRecordError]:
    """What the runner does with a ``BadRecordError`` naming its record: dead-letter it
    (here: keep it) and write the records after it again."""
    bad: list[BadRecordError] = []
    while batch:
        try:
            await sink.write(batch)
        except BadRecordError as exc:
            record = exc.record
            bad.append(exc)
            batch = batch[batch.index(record) + 1 :]
        else:
            batch = []
    return bad


@with_receiver
async def test_records_go_in_batches_and_write_returns_once_every_batch_got_its_2xx(
    receiver: Receiver,
) -> None:
    sink = await started(receiver.url, batch_size=100, headers={"X-Source": "t"}, token="k")
    try:
        await sink.write(records(600))
        assert len(receiver.requests) == 6
        await sink.write(records(634, start=600))
        await sink.flush()
        assert receiver.received == [{"n": i} for i in range(1234)]
        assert len(receiver.requests) == 13
        method, headers, _ = receiver.requests[0]
        assert (method, headers["Content-Type"]) == ("POST", "application/json")
        assert (headers["X-Source"], headers["Authorization"]) == ("t", "Bearer k")
        status = sink.status()
        assert (status["flushed"], status["pending"], status["requests"]) == (1234, 0, 13)
        assert (status["errors"], status["kind"], status["type"]) == (0, "sink", "http")
        await sink.flush()  # nothing left: nothing sent
        assert len(receiver.requests) == 13
    finally:
        await sink.close()


@with_receiver
async def test_transient_failures_are_retried_and_a_rewrite_sends_only_what_had_no_2xx(
    receiver: Receiver,
) -> None:
    sink = await started(receiver.url, batch_size=10, retries=2)
    try:
        receiver.fail = [503, 429]  # the first request: two failures, then 200
        await sink.write(records(30))
        assert receiver.received == [{"n": i} for i in range(30)]
        assert len(receiver.requests) == 5
        await sink.flush()

        receiver.received.clear()
        receiver.fail = [200, 500, 502, 504]  # the second request fails all three attempts
        with pytest.raises(SinkUnavailableError, match="answered 504: scripted 504"):
            await sink.write(records(30, start=30))
        assert receiver.received == [{"n": i} for i in range(30, 40)]
        assert sink.status()["errors"] == 1
        # the runner discards and writes the same records again: 30-39 had their 2xx
        await sink.discard()
        await sink.write(records(30, start=30))
        assert receiver.received == [{"n": i} for i in range(30, 60)]
        await sink.flush()
        # after the commit, records that come again (a rewind) are sent again
        await sink.write(records(1, start=59))
        assert receiver.received[-2:] == [{"n": 59}, {"n": 59}]
    finally:
        await sink.close()


@with_receiver
async def test_a_receiver_away_is_unavailable_until_it_is_back(receiver: Receiver) -> None:
    sink = await started(receiver.url, batch_size=50, retries=1)
    await receiver.stop()
    try:
        with pytest.raises(SinkUnavailableError, match="ClientConnectorError"):
            await sink.write(records(120))
        await receiver.start(receiver.port)
        await sink.write(records(120))
        assert receiver.received == [{"n": i} for i in range(120)]
    finally:
        await sink.close()


@with_receiver
async def test_an_endpoint_that_refuses_the_client_is_unavailable_at_once(
    receiver: Receiver,
) -> None:
    sink = await started(receiver.url, retries=5)
    try:
        for status in (404, 401, 301):
            receiver.fail = [status]
            with pytest.raises(SinkUnavailableError, match=f"answered {status}"):
                await sink.write(records(5))
        assert len(receiver.requests) == 3  # not retried: waiting will not help
        assert receiver.received == []
        await sink.write(records(5))
        assert receiver.received == [{"n": i} for i in range(5)]
    finally:
        await sink.close()


@with_receiver
async def test_refused_records_are_isolated_named_and_every_other_record_delivered_once(
    receiver: Receiver,
) -> None:
    sink = await started(receiver.url, batch_size=64)
    bad = {5, 77, 78, 150}
    try:
        errors = await write_all(sink, records(200, bad=bad))
        assert all(type(e) is BadRecordError and "with 422" in str(e) for e in errors)
        assert [e.record.offset for e in errors] == sorted(bad)
        assert "orders[1]@5 with 422: a bad record" in str(errors[0])
        assert [i["n"] for i in receiver.received] == [i for i in range(200) if i not in bad]
        status = sink.status()
        assert (status["rejected"], status["flushed"], status["errors"]) == (4, 196, 4)
    finally:
        await sink.close()


@with_receiver
async def test_record_bodies_carry_tombstones_and_coordinates_and_values_skip_them(
    receiver: Receiver,
) -> None:
    tombstone = SinkRecord("orders", 0, 9, 1_700_000_000_009, b"k9", None)
    as_bytes = SinkRecord("orders", 1, 10, 1_700_000_000_010, None, b'{"n": 10}')
    sink = await started(receiver.url, body="records", format="jsonl", method="PUT")
    try:
        await sink.write([*records(1), tombstone, as_bytes])
        assert receiver.requests[0][0] == "PUT"
        assert receiver.requests[0][1]["Content-Type"] == "application/x-ndjson"
        assert receiver.received == [
            {"topic": "orders", "partition": 0, "offset": 0, "timestamp": 1_700_000_000_000,
             "key": "k0", "value": {"n": 0}},
            {"topic": "orders", "partition": 0, "offset": 9, "timestamp": 1_700_000_000_009,
             "key": "k9", "value": None},
            {"topic": "orders", "partition": 1, "offset": 10, "timestamp": 1_700_000_000_010,
             "key": None, "value": {"n": 10}},
        ]  # fmt: skip
    finally:
        await sink.close()
    values = await started(receiver.url)
    try:
        await values.write([tombstone, as_bytes, SinkRecord("orders", 0, 11, 0, None, '"s"')])
        assert receiver.received[3:] == [{"n": 10}, "s"]
        assert values.status()["skipped_tombstones"] == 1
    finally:
        await values.close()


@with_receiver
async def test_a_value_that_is_not_json_is_named_after_the_records_before_it_are_sent(
    receiver: Receiver,
) -> None:
    sink = await started(receiver.url)
    try:
        broken = SinkRecord("orders", 0, 3, 0, None, b"{not json")
        with pytest.raises(BadRecordError, match=r"orders\[0\]@3 value is not JSON") as caught:
            await sink.write([*records(2), broken, *records(1, start=4)])
        assert caught.value.record is broken
        assert receiver.received == [{"n": 0}, {"n": 1}]
        assert "orders[0]@3 value is not JSON" in sink.status()["last_error"]
        with pytest.raises(BadRecordError, match="cannot be sent as JSON"):
            await sink.write([SinkRecord("orders", 0, 5, 0, None, {"when": object()})])
        assert len(receiver.requests) == 1
    finally:
        await sink.close()


def test_config_names_the_key_that_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = sink_from_config(
        "out", {"url": "https://example.invalid/x", "batch_size": 10, "headers": {"A": "b"}}
    )
    assert isinstance(sink, HttpSink) and (sink.name, sink.batch_size) == ("out", 10)
    monkeypatch.setenv("SINK_TOKEN", "zz")
    with_token = sink_from_config("out", {"url": "http://h/", "token_env": "SINK_TOKEN"})
    assert with_token.status()["url"] == "http://h/"
    for config, key in [
        ({"url": "http://h/", "colour": 1}, "colour"),
        ({}, "url"),
        ({"url": "ftp://h/"}, "url"),
        ({"url": "http://h/", "method": "GET"}, "method"),
        ({"url": "http://h/", "body": "keys"}, "body"),
        ({"url": "http://h/", "format": "xml"}, "format"),
        ({"url": "http://h/", "batch_size": 0}, "batch_size"),
        ({"url": "http://h/", "retries": -1}, "retries"),
        ({"url": "http://h/", "timeout": 0}, "timeout"),
        ({"url": "http://h/", "backoff": 1, "backoff_max": 0.5}, "backoff_max"),
        ({"url": "http://h/", "headers": {"A": 1}}, "headers"),
        ({"url": "http://h/", "token": "a", "token_env": "SINK_TOKEN"}, "token_env"),
    ]:
        with pytest.raises(ConnectorConfigError, match=f"^{key}"):
            sink_from_config("out", config)


def test_write_before_start_is_unavailable_not_a_crash() -> None:
    async def run() -> None:
        sink = HttpSink("http://127.0.0.1:9/")
        with pytest.raises(SinkUnavailableError, match="not started"):
            await sink.write(records(1))

    asyncio.run(run())


@pytest.mark.skipif(not HAVE_OPENSSL, reason="needs the openssl command to make certificates")
def test_https_with_a_private_ca_and_a_refused_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pki = make_pki(str(tmp_path))

    async def run() -> None:
        receiver = Receiver()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        application = web.Application()
        application.router.add_route("*", "/in", receiver.handle)
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/in"
        try:
            trusted = await started(url, ca_file=pki.ca)
            untrusting = await started(url, ca_file=pki.other_ca, retries=5)
            try:
                await trusted.write(records(3))
                assert receiver.received == [{"n": 0}, {"n": 1}, {"n": 2}]
                with pytest.raises(SinkUnavailableError, match="[Cc]ertificate"):
                    await untrusting.write(records(1, start=3))
                assert len(receiver.requests) == 1  # the untrusted one never got through
            finally:
                await trusted.close()
                await untrusting.close()
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(run(), 30))
    with pytest.raises(ConnectorConfigError, match="^ca_file: TLS settings need an https"):
        HttpSink("http://127.0.0.1/", ca_file=pki.ca)
    with pytest.raises(ConnectorConfigError, match="^ca_file: cannot load"):
        HttpSink("https://127.0.0.1/", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConnectorConfigError, match="^cert_file: give cert_file and key_file"):
        HttpSink("https://127.0.0.1/", cert_file=pki.client_cert)
