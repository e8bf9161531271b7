"""The webhook source: JSON POSTed to an HTTP endpoint becomes records.

A request is answered only once its records are durable in the log, so a sender that got
a 2xx can forget what it sent, and a sender that got anything else (or no answer: the
worker died) sends again. The answers:

=====  =================================================================================
200    every record of the request is in the log: ``{"accepted": N, "position": P}``
400    the body is not JSON (or JSON lines), or is nested too deep
401    ``token`` is set and the request's ``Authorization: Bearer ...`` does not match it
408    the body did not arrive within ``body_timeout`` seconds
413    the body is larger than ``max_body_bytes`` or holds more than
       ``max_records_per_request`` records
415    a ``Content-Type`` other than JSON / JSON lines, or a compressed body
422    JSON that is not an object or a non-empty array of objects, or a record without
       its ``key_field``
503    (with ``Retry-After``) the source is not running, ``max_pending_records`` are
       already waiting, ``MAX_READING`` requests are being read, or the log did not
       acknowledge within ``answer_timeout``
=====  =================================================================================

A 4xx takes nothing: the request's records are not produced (fix the request, do not
retry it). A 503 never loses data either: a request refused before it was queued is not
produced; one whose records the runner already took may yet be stored, and the sender's
retry then stores them twice (at-least-once). A request taken whole or not at all: its
records go to the log in order, with consecutive positions.

The position is the number of records accepted since the first run (an int): the runner
saves it with the records it covers, and a restart numbers new records from it, so a
sender's retry of a request whose answer was lost in a crash is matched against the
records the log already holds and not stored twice (the runner's matching; see
docs/connect.md).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from streamlog.connect.base import Position, SourceRecord
from streamlog.connect.errors import ConnectorConfigError, SourceError

if TYPE_CHECKING:
    from aiohttp.web import AppRunner, Request, Response

__all__ = ["WebhookSource", "WEBHOOK_DEFAULTS"]

log = logging.getLogger(__name__)

WEBHOOK_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "path": "/",
    "key_field": None,
    "key_header": None,
    "token": None,
    "forward_headers": (),
    "max_body_bytes": 1 << 20,
    "max_records_per_request": 10_000,
    "max_pending_records": 100_000,
    "answer_timeout": 30.0,
    "body_timeout": 10.0,
    "cert_file": None,
    "key_file": None,
}
POLL_WAIT = 0.5  # seconds poll waits for a request before it returns nothing
POLL_MAX_RECORDS = 10_000  # records handed to the runner per poll (whole requests)
RETRY_AFTER = "1"  # seconds, in 503 answers
MAX_READING = 32  # requests whose bodies are read and decoded at once (memory: x max_body)
SHUTDOWN_TIMEOUT = 2.0  # seconds given to requests in flight when the source closes
_JSON_TYPES = ("application/json", "application/x-ndjson", "application/jsonl")


class _Refused(Exception):
    """A request answered without taking its records: ``status`` and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False, slots=True)
class _Request:
    """A request's records waiting for the log; ``taken`` once handed to the runner."""

    records: list[SourceRecord]
    last_position: int
    answer: asyncio.Future[int]
    taken: bool = False


@dataclass(slots=True)
class _Counters:
    records: int = 0  # acknowledged by the log
    requests: int = 0  # answered 200
    rejected: int = 0  # answered 4xx
    unavailable: int = 0  # answered 503
    last_error: str | None = None
    by_status: dict[int, int] = field(default_factory=dict)


class WebhookSource:
    """See the module docstring. ``port`` 0 picks a free port (``url`` gives it once
    started). ``key_field`` (a field of each JSON object) or ``key_header`` (a request
    header, such as a sender's delivery id) gives the records' key; ``forward_headers``
    names request headers copied onto every record of the request."""

    def __init__(
        self,
        port: int,
        *,
        host: str = WEBHOOK_DEFAULTS["host"],
        path: str = WEBHOOK_DEFAULTS["path"],
        name: str = "webhook",
        key_field: str | None = None,
        key_header: str | None = None,
        token: str | None = None,
        forward_headers: Sequence[str] = (),
        max_body_bytes: int = WEBHOOK_DEFAULTS["max_body_bytes"],
        max_records_per_request: int = WEBHOOK_DEFAULTS["max_records_per_request"],
        max_pending_records: int = WEBHOOK_DEFAULTS["max_pending_records"],
        answer_timeout: float = WEBHOOK_DEFAULTS["answer_timeout"],
        body_timeout: float = WEBHOOK_DEFAULTS["body_timeout"],
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        _check_settings(
            port=port,
            path=path,
            key_field=key_field,
            key_header=key_header,
            max_body_bytes=max_body_bytes,
            max_records_per_request=max_records_per_request,
            max_pending_records=max_pending_records,
            answer_timeout=answer_timeout,
            body_timeout=body_timeout,
        )
        self.name = name
        self.host = host
        self.port = port
        self.path = path
        self.key_field = key_field
        self.key_header = key_header
        self.forward_headers = tuple(forward_headers)
        self.max_body_bytes = max_body_bytes
        self.max_records_per_request = max_records_per_request
        self.max_pending_records = max_pending_records
        self.answer_timeout = answer_timeout
        self.body_timeout = body_timeout
        self._tls = _server_tls(cert_file, key_file)
        self.url: str | None = None
        self._token = token.encode() if token else None
        self._next_position = 0  # the position of the last record accepted
        self._acked_position: int | None = None
        self._queue: deque[_Request] = deque()  # accepted, not yet handed to the runner
        self._taken: deque[_Request] = deque()  # handed to the runner, not yet acknowledged
        self._pending_records = 0
        self._reading = 0  # requests reading their bodies now
        self._arrived = asyncio.Event()
        self._runner: AppRunner | None = None
        self._open = False
        self._counters = _Counters()

    # ------------------------------------------------------------------ the Source protocol

    async def start(self, position: Position | None) -> None:
        """Listen; new records are numbered after ``position`` (the saved count)."""
        if position is not None and (
            not isinstance(position, int) or isinstance(position, bool) or position < 0
        ):
            raise SourceError(
                f"webhook source {self.name!r}: saved position {position!r} is not a "
                "record count (it was saved by another kind of source?)"
            )
        self._next_position = position or 0
        self._acked_position = position
        from aiohttp import web

        application = web.Application(client_max_size=self.max_body_bytes)
        application.router.add_post(self.path, self._handle)
        runner = web.AppRunner(
            application, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=self._tls).start()
        except OSError as exc:
            await runner.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SourceError(
                f"webhook source {self.name!r} cannot listen on {self.host}:{self.port}: {reason}"
            ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "http" if self._tls is None else "https"
        self.url = f"{scheme}://{host}:{self.port}{self.path}"
        self._open = True
        log.info("webhook source %r listening on %s", self.name, self.url)

    async def poll(self) -> Sequence[SourceRecord]:
        """Whole requests' records, oldest first, up to ``POLL_MAX_RECORDS`` (a request
        larger than that alone); waits up to ``POLL_WAIT`` seconds for one."""
        if not self._queue:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), POLL_WAIT)
            except TimeoutError:
                return ()
        records: list[SourceRecord] = []
        queue = self._queue
        while queue and (not records or len(records) + len(queue[0].records) <= POLL_MAX_RECORDS):
            request = queue.popleft()
            request.taken = True
            self._taken.append(request)
            records.extend(request.records)
        return records

    async def acknowledged(self, position: Position) -> None:
        """The log holds every record up to ``position``: answer their requests 200."""
        if not isinstance(position, int):
            return
        self._acked_position = position
        taken = self._taken
        while taken and taken[0].last_position <= position:
            request = taken.popleft()
            self._pending_records -= len(request.records)
            self._counters.records += len(request.records)
            if not request.answer.done():
                request.answer.set_result(request.last_position)

    async def close(self) -> None:
        """Stop listening; requests still waiting are answered 503 (their senders retry)."""
        self._open = False
        for request in (*self._queue, *self._taken):
            if not request.answer.done():
                request.answer.set_exception(_Refused(503, "the webhook source is stopping"))
        self._queue.clear()
        self._taken.clear()
        self._pending_records = 0
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def status(self) -> dict[str, Any]:
        counters = self._counters
        return {
            "name": self.name,
            "kind": "source",
            "type": "webhook",
            "url": self.url,
            "records": counters.records,
            "errors": counters.rejected + counters.unavailable,
            "last_error": counters.last_error,
            "position": self._acked_position,
            "requests": counters.requests,
            "rejected": counters.rejected,
            "unavailable": counters.unavailable,
            "refusals": {str(status): n for status, n in sorted(counters.by_status.items())},
            "pending": self._pending_records,
            "reading": self._reading,
        }

    # ------------------------------------------------------------------ requests

    async def _handle(self, request: Request) -> Response:
        from aiohttp import web

        try:
            pending = await self._accept(request)
            position = await self._wait_for_log(pending)
        except _Refused as refused:
            return self._refusal(refused)
        self._counters.requests += 1
        return web.json_response({"accepted": len(pending.records), "position": position})

    async def _accept(self, request: Request) -> _Request:
        """Check the request and queue its records (``_Refused`` says why not)."""
        from aiohttp import web

        if self._token is not None:
            given = request.headers.get("Authorization", "")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credential.strip().encode(), self._token
            ):
                raise _Refused(401, "missing or wrong bearer token")
        if not self._open:
            raise _Refused(503, "the webhook source is not running")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refused(415, f"Content-Encoding {encoding!r} is not accepted: send plain JSON")
        content_type = request.content_type
        lines = content_type in ("application/x-ndjson", "application/jsonl")
        if not (
            content_type in _JSON_TYPES
            or (content_type.startswith("application/") and content_type.endswith("+json"))
            or content_type == "application/octet-stream"  # aiohttp's default: none given
        ):
            raise _Refused(415, f"Content-Type {content_type!r} is not JSON")
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise _Refused(413, f"body of {length} bytes exceeds {self.max_body_bytes}")
        if self._pending_records >= self.max_pending_records:
            raise _Refused(503, f"{self._pending_records} records already wait for the log")
        if self._reading >= MAX_READING:  # bodies in memory at once: MAX_READING at most
            raise _Refused(503, f"{MAX_READING} requests are being read already")
        self._reading += 1
        try:
            # a sender trickling its body would hold the request (and its memory) forever
            body = await asyncio.wait_for(request.read(), self.body_timeout)
            values = self._decode(body, lines)
            del body
            records = self._records(values, request)
        except TimeoutError:
            raise _Refused(408, f"the body did not arrive within {self.body_timeout:g} s") from None
        except web.HTTPRequestEntityTooLarge:  # a chunked body ran over
            raise _Refused(413, f"body exceeds {self.max_body_bytes} bytes") from None
        except ConnectionError:  # nobody to answer; counted as an incomplete request
            raise _Refused(400, "the sender hung up before its body arrived") from None
        finally:
            self._reading -= 1
        if not self._open:
            raise _Refused(503, "the webhook source is stopping")
        if self._pending_records + len(records) > self.max_pending_records:
            raise _Refused(503, f"{self._pending_records} records already wait for the log")
        pending = _Request(records, self._next_position, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._pending_records += len(records)
        self._arrived.set()
        return pending

    def _decode(self, body: bytes, lines: bool) -> list[Any]:
        try:
            if lines:
                values = [msgspec.json.decode(line) for line in body.splitlines() if line.strip()]
            else:
                decoded = msgspec.json.decode(body)
                values = decoded if isinstance(decoded, list) else [decoded]
        except (msgspec.DecodeError, RecursionError) as exc:
            raise _Refused(400, f"body is not JSON{' lines' if lines else ''}: {exc}") from None
        if not values:
            raise _Refused(422, "no records: send an object or a non-empty array of objects")
        if len(values) > self.max_records_per_request:
            raise _Refused(
                413, f"{len(values)} records exceed {self.max_records_per_request} per request"
            )
        for index, value in enumerate(values):
            if not isinstance(value, dict):
                raise _Refused(
                    422, f"record {index} is a JSON {type(value).__name__}, not an object"
                )
        return values

    def _records(self, values: list[dict[str, Any]], request: Request) -> list[SourceRecord]:
        """The request's records, numbered after the last accepted one."""
        # aiohttp hands header bytes that are not UTF-8 over as surrogate escapes: copied
        # back byte for byte, and refused as a key (a key must encode as text)
        headers = tuple(
            (name, request.headers[name].encode("utf-8", "surrogateescape"))
            for name in self.forward_headers
            if name in request.headers
        )
        key: str | None = None
        if self.key_header is not None:
            key = request.headers.get(self.key_header)
            if key is None:
                raise _Refused(422, f"header {self.key_header!r} (the records' key) is missing")
            try:
                key.encode()
            except UnicodeEncodeError:
                raise _Refused(422, f"header {self.key_header!r} is not UTF-8") from None
        keys = [key] * len(values)
        if self.key_field is not None:
            field_name = self.key_field
            for index, value in enumerate(values):
                found = value.get(field_name)
                if isinstance(found, bool) or not isinstance(found, str | int):
                    raise _Refused(
                        422, f"record {index} has no string or integer {field_name!r} (its key)"
                    )
                keys[index] = str(found)
        position = self._next_position
        records = []
        for value, record_key in zip(values, keys, strict=True):
            position += 1
            records.append(
                SourceRecord(value=value, position=position, key=record_key, headers=headers)
            )
        self._next_position = position
        return records

    async def _wait_for_log(self, pending: _Request) -> int:
        """The request's last position once the log holds its records; ``_Refused`` (503)
        after ``answer_timeout`` (withdrawn first when the runner has not taken it)."""
        try:
            return await asyncio.wait_for(asyncio.shield(pending.answer), self.answer_timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            self._withdraw(pending)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _Refused(
                503, f"the log did not acknowledge the records within {self.answer_timeout} s"
            ) from None

    def _withdraw(self, pending: _Request) -> None:
        """Take a request the runner has not taken off the queue (it is not produced)."""
        if not pending.taken and pending in self._queue:
            self._queue.remove(pending)
            self._pending_records -= len(pending.records)

    def _refusal(self, refused: _Refused) -> Response:
        from aiohttp import web

        counters = self._counters
        counters.by_status[refused.status] = counters.by_status.get(refused.status, 0) + 1
        counters.last_error = f"{refused.status}: {refused.reason}"
        headers = {}
        if refused.status == 503:
            counters.unavailable += 1
            headers["Retry-After"] = RETRY_AFTER
        else:
            counters.rejected += 1
        return web.json_response({"error": refused.reason}, status=refused.status, headers=headers)


def _check_settings(
    *,
    port: int,
    path: str,
    key_field: str | None,
    key_header: str | None,
    max_body_bytes: int,
    max_records_per_request: int,
    max_pending_records: int,
    answer_timeout: float,
    body_timeout: float,
) -> None:
    """``ConnectorConfigError`` naming the first setting that cannot work."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConnectorConfigError(f"port: {port!r} is not a TCP port (0-65535)")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConnectorConfigError(f"path: {path!r} must start with '/'")
    if key_field is not None and key_header is not None:
        raise ConnectorConfigError("key_field and key_header: give one of them, not both")
    positive = {
        "max_body_bytes": max_body_bytes,
        "max_records_per_request": max_records_per_request,
        "max_pending_records": max_pending_records,
    }
    for key, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConnectorConfigError(f"{key}: {value!r} is not a positive integer")
    if max_records_per_request > max_pending_records:
        raise ConnectorConfigError(
            "max_records_per_request: larger than max_pending_records, so such a request "
            "could never be taken"
        )
    for key, seconds in (("answer_timeout", answer_timeout), ("body_timeout", body_timeout)):
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ConnectorConfigError(f"{key}: {seconds!r} is not positive seconds")


def _server_tls(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    """HTTPS with ``cert_file``/``key_file``; None: plain HTTP."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ConnectorConfigError("cert_file: give cert_file and key_file together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorConfigError(f"cert_file: cannot load: {exc}") from None
    return context


def webhook_from_config(name: str, config: Mapping[str, Any]) -> WebhookSource:
    """A webhook source from its TOML table (``port`` required; ``token_env`` names an
    environment variable holding the token, to keep it out of the file)."""
    settings = dict(config)
    unknown = set(settings) - set(WEBHOOK_DEFAULTS) - {"port", "token_env"}
    if unknown:
        raise ConnectorConfigError(f"{sorted(unknown)[0]}: not a setting of a webhook source")
    if "port" not in settings:
        raise ConnectorConfigError("port: required for a webhook source")
    token_env = settings.pop("token_env", None)
    if token_env is not None:
        if "token" in settings:
            raise ConnectorConfigError("token_env: give token or token_env, not both")
        token = os.environ.get(str(token_env))
        if not token:
            raise ConnectorConfigError(f"token_env: environment variable {token_env!r} is unset")
        settings["token"] = token
    forward = settings.get("forward_headers", ())
    if not isinstance(forward, list | tuple) or not all(isinstance(h, str) for h in forward):
        raise ConnectorConfigError("forward_headers: must be a list of header names")
    for key in ("host", "path", "key_field", "key_header", "token", "cert_file", "key_file"):
        value = settings.get(key)
        if value is not None and not isinstance(value, str):
            raise ConnectorConfigError(f"{key}: {value!r} is not a string")
    port = settings.pop("port")
    return WebhookSource(port, name=name, **settings)
