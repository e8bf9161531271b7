"""The HTTP sink: a topic's records POSTed to a URL in batches, with retries and backoff.

HTTP has no transaction to leave open until the app commits: the receiver's 2xx is the
only acknowledgement it has, and once given it cannot be taken back. So ``write`` sends
its records at once, ``batch_size`` a request, and returns when every request was
answered 2xx; ``flush`` (the app's commit step) then has nothing left to send, and the
app commits the records' offsets only after it: an offset is never committed before the
receiver has its record. Records a 2xx covered are remembered until the next ``flush``,
so when the runner writes them again after a failure (it discards and writes everything
since the last flush) they are not sent twice.

What an answer means:

* 2xx: delivered.
* a connection error, a timeout, 408, 429 or 5xx: the receiver may recover; retried
  ``retries`` times with exponential backoff (``backoff`` doubling up to ``backoff_max``,
  or the receiver's ``Retry-After`` when shorter than that), then
  ``SinkUnavailableError`` (the runner retries for its ``retry_for``).
* 400, 413, 422: the receiver refuses the data. The request is split in halves until the
  first record it refuses is alone; every record before it is delivered, and
  ``BadRecordError`` names it (``record``), with the receiver's status and answer: the
  runner sends it to the dead-letter topic and writes the records after it again.
* anything else (3xx, 401, 403, 404, ...), or a certificate not trusted: the endpoint is
  wrong or refuses this client; ``SinkUnavailableError`` at once, without retries.

Bodies: ``body = "values"`` sends the records' values (a tombstone, which has no value,
is skipped and counted); ``body = "records"`` sends ``{"topic", "partition", "offset",
"timestamp", "key", "value"}`` objects (tombstones included, value null), which let a
receiver drop the duplicates an at-least-once redelivery brings (by topic, partition and
offset). ``format = "json"`` sends a JSON array, ``"jsonl"`` one JSON document a line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from streamlog.connect.base import SinkRecord
from streamlog.connect.errors import BadRecordError, ConnectorConfigError, SinkUnavailableError

if TYPE_CHECKING:
    from aiohttp import ClientSession

__all__ = ["HttpSink", "HTTP_SINK_DEFAULTS"]

log = logging.getLogger(__name__)

HTTP_SINK_DEFAULTS: dict[str, Any] = {
    "method": "POST",
    "body": "values",
    "format": "json",
    "batch_size": 500,
    "headers": {},
    "token": None,
    "timeout": 30.0,
    "retries": 3,
    "backoff": 0.1,
    "backoff_max": 10.0,
    "ca_file": None,
    "cert_file": None,
    "key_file": None,
}
_RETRIED = frozenset({408, 429})  # and every 5xx
_REFUSED = frozenset({400, 413, 422})  # the data, not the endpoint
_ERROR_BODY = 200  # characters of a refusal's body kept for the error message
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


_Encoded = tuple[SinkRecord, bytes]  # a record and its JSON (a tuple: built per record)


class _Refusal(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Unavailable(Exception):
    def __init__(self, reason: str, retry: bool, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.wait = wait


class HttpSink:
    """See the module docstring. ``headers`` are sent with every request; ``token`` as
    ``Authorization: Bearer ...``."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "http",
        method: str = HTTP_SINK_DEFAULTS["method"],
        body: str = HTTP_SINK_DEFAULTS["body"],
        format: str = HTTP_SINK_DEFAULTS["format"],
        batch_size: int = HTTP_SINK_DEFAULTS["batch_size"],
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        timeout: float = HTTP_SINK_DEFAULTS["timeout"],
        retries: int = HTTP_SINK_DEFAULTS["retries"],
        backoff: float = HTTP_SINK_DEFAULTS["backoff"],
        backoff_max: float = HTTP_SINK_DEFAULTS["backoff_max"],
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        _check_settings(url, method, body, format, batch_size, timeout, retries, backoff)
        if backoff_max < backoff:
            raise ConnectorConfigError(f"backoff_max: {backoff_max!r} is less than backoff")
        if (cert_file is None) != (key_file is None):
            raise ConnectorConfigError("cert_file: give cert_file and key_file together")
        self._ssl = _client_tls(url, ca_file, cert_file, key_file)
        self.name = name
        self.url = url
        self.method = method.upper()
        self.body = body
        self.format = format
        self.batch_size = batch_size
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        content_type = "application/json" if format == "json" else "application/x-ndjson"
        self._headers = {"Content-Type": content_type, **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._delivered: set[tuple[str, int, int]] = set()  # since the last flush
        self._session: ClientSession | None = None
        self._flushed = 0
        self._requests = 0
        self._skipped = 0
        self._rejected = 0
        self._errors = 0
        self._last_error: str | None = None

    # ------------------------------------------------------------------ the Sink protocol

    async def start(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, TCPConnector

        self._session = ClientSession(
            timeout=ClientTimeout(total=self.timeout),
            connector=TCPConnector(ssl=self._ssl if self._ssl is not None else True),
        )

    async def write(self, records: Sequence[SinkRecord]) -> None:
        """Send ``records``, ``batch_size`` a request; returns once all were answered 2xx
        (what each answer does: the module docstring). ``BadRecordError`` names the first
        record that cannot be sent or that the receiver refuses: the records before it
        were delivered, none after it was sent."""
        session = self._session
        if session is None:
            raise SinkUnavailableError(f"http sink {self.name!r} is not started")
        delivered = self._delivered
        batch: list[_Encoded] = []
        for record in records:
            if (record.topic, record.partition, record.offset) in delivered:
                continue  # written again by the runner after a failure: already sent
            try:
                item = self._encode(record)
            except BadRecordError as exc:
                self._errors += 1
                self._last_error = str(exc)
                await self._send(session, batch)
                raise
            if item is None:
                continue
            batch.append(item)
            if len(batch) >= self.batch_size:
                await self._send(session, batch)
                batch = []
        await self._send(session, batch)

    async def flush(self) -> None:
        """Nothing is left to send (``write`` returns once its records are delivered):
        forget which records were delivered, as the app commits their offsets now."""
        self._delivered.clear()

    async def discard(self) -> None:
        """What was sent cannot be taken back: the records come again after the rewind
        and those a 2xx covered since the last flush are not sent again."""

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "http",
            "url": self.url,
            "records": self._flushed,
            "errors": self._errors,
            "last_error": self._last_error,
            "flushed": self._flushed,
            "pending": 0,
            "requests": self._requests,
            "skipped_tombstones": self._skipped,
            "rejected": self._rejected,
        }

    # ------------------------------------------------------------------ encoding

    def _encode(self, record: SinkRecord) -> _Encoded | None:
        value = record.value
        if isinstance(value, bytes | bytearray | memoryview | str):
            try:
                value = _DECODER.decode(value)
            except msgspec.DecodeError as exc:
                raise BadRecordError(
                    f"http sink {self.name!r}: {_where(record)} value is not JSON: {exc}",
                    record,
                ) from None
        if self.body == "values":
            if value is None:
                self._skipped += 1
                return None
            document: Any = value
        else:
            key = record.key
            if isinstance(key, bytes | bytearray | memoryview):
                try:
                    key = bytes(key).decode()
                except UnicodeDecodeError:
                    raise BadRecordError(
                        f"http sink {self.name!r}: {_where(record)} key is not UTF-8", record
                    ) from None
            document = {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp_ms,
                "key": key,
                "value": value,
            }
        try:
            return record, _ENCODER.encode(document)
        except (TypeError, msgspec.EncodeError) as exc:
            raise BadRecordError(
                f"http sink {self.name!r}: {_where(record)} cannot be sent as JSON: {exc}",
                record,
            ) from None

    def _body(self, batch: Sequence[_Encoded]) -> bytes:
        if self.format == "json":
            return b"[" + b",".join([item[1] for item in batch]) + b"]"
        return b"".join([item[1] + b"\n" for item in batch])

    # ------------------------------------------------------------------ sending

    async def _send(self, session: ClientSession, batch: list[_Encoded]) -> None:
        """Deliver ``batch``; ``BadRecordError`` naming the first record refused."""
        if not batch:
            return
        try:
            refused = await self._first_refused(session, batch)
        except SinkUnavailableError:
            self._errors += 1
            raise
        if refused is None:
            return
        (record, _), status, text = refused
        self._rejected += 1
        self._errors += 1
        message = (
            f"http sink {self.name!r}: {self.url} refused {_where(record)} with {status}: {text}"
        )
        self._last_error = message
        raise BadRecordError(message, record)

    async def _first_refused(
        self, session: ClientSession, batch: list[_Encoded]
    ) -> tuple[_Encoded, int, str] | None:
        """Send ``batch``, split in halves while refused; the first record refused alone
        (those before it delivered, none after it sent), or None: all delivered."""
        try:
            await self._send_retried(session, batch)
        except _Refusal as refusal:
            if len(batch) == 1:
                return batch[0], refusal.status, refusal.text
            middle = len(batch) // 2
            found = await self._first_refused(session, batch[:middle])
            if found is None:
                found = await self._first_refused(session, batch[middle:])
            return found
        delivered = self._delivered
        for record, _ in batch:
            delivered.add((record.topic, record.partition, record.offset))
        self._flushed += len(batch)
        return None

    async def _send_retried(self, session: ClientSession, batch: list[_Encoded]) -> None:
        delay = self.backoff
        attempt = 0
        while True:
            try:
                await self._request(session, batch)
                return
            except _Unavailable as away:
                self._last_error = away.reason
                if not away.retry or attempt >= self.retries:
                    raise SinkUnavailableError(
                        f"http sink {self.name!r}: {self.url}: {away.reason}"
                        + (f" (after {attempt + 1} attempts)" if attempt else "")
                    ) from None
                wait = delay if away.wait is None else min(away.wait, self.backoff_max)
                # jitter spreads the retries of several workers hitting one receiver
                wait *= 0.5 + random.random() / 2
                log.info(
                    "http sink %r: %s; retry %d of %d in %.2f s",
                    self.name,
                    away.reason,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.backoff_max)
                attempt += 1

    async def _request(self, session: ClientSession, batch: list[_Encoded]) -> None:
        """One request: returns on 2xx, else ``_Refusal`` or ``_Unavailable``."""
        from aiohttp import ClientConnectorCertificateError, ClientError, ClientSSLError

        self._requests += 1
        try:
            async with session.request(
                self.method,
                self.url,
                data=self._body(batch),
                headers=self._headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    await response.read()
                    return
                text = (await response.text(errors="replace"))[:_ERROR_BODY]
                retry_after = response.headers.get("Retry-After")
        except (ClientConnectorCertificateError, ClientSSLError) as exc:
            # a certificate the sink does not trust: waiting will not change it
            raise _Unavailable(f"{type(exc).__name__}: {exc}", retry=False) from None
        except (ClientError, TimeoutError, OSError) as exc:
            raise _Unavailable(f"{type(exc).__name__}: {exc}", retry=True) from None
        if status in _REFUSED:
            raise _Refusal(status, text)
        reason = f"answered {status}: {text}" if text else f"answered {status}"
        retry = status >= 500 or status in _RETRIED
        raise _Unavailable(reason, retry=retry, wait=_seconds(retry_after))


def _client_tls(
    url: str, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext | None:
    """The TLS settings for an https:// URL: the system's trusted CAs, or ``ca_file``'s;
    a client certificate when the receiver asks for one. None: aiohttp's default."""
    if ca_file is None and cert_file is None:
        return None
    if not url.startswith("https://"):
        raise ConnectorConfigError("ca_file: TLS settings need an https:// url")
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        key = "ca_file" if cert_file is None else "cert_file"
        raise ConnectorConfigError(f"{key}: cannot load: {exc}") from None
    return context


def _seconds(retry_after: str | None) -> float | None:
    """``Retry-After`` in seconds (its HTTP-date form is ignored: our own backoff then)."""
    if retry_after is None:
        return None
    try:
        seconds = float(retry_after)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _where(record: SinkRecord) -> str:
    return f"record {record.topic}[{record.partition}]@{record.offset}"


def _check_settings(
    url: Any,
    method: Any,
    body: Any,
    format: Any,
    batch_size: Any,
    timeout: Any,
    retries: Any,
    backoff: Any,
) -> None:
    """``ConnectorConfigError`` naming the first setting that cannot work."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConnectorConfigError(f"url: {url!r} is not an http:// or https:// URL")
    if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "PATCH"):
        raise ConnectorConfigError(f"method: {method!r} is not POST, PUT or PATCH")
    if body not in ("values", "records"):
        raise ConnectorConfigError(f"body: {body!r} is not 'values' or 'records'")
    if format not in ("json", "jsonl"):
        raise ConnectorConfigError(f"format: {format!r} is not 'json' or 'jsonl'")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConnectorConfigError(f"batch_size: {batch_size!r} is not a positive integer")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConnectorConfigError(f"retries: {retries!r} is not a count (0 or more)")
    for key, value in (("timeout", timeout), ("backoff", backoff)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConnectorConfigError(f"{key}: {value!r} is not positive seconds")


def http_sink_from_config(name: str, config: Mapping[str, Any]) -> HttpSink:
    """An HTTP sink from its TOML table (``url`` required; ``token_env`` names an
    environment variable holding the bearer token)."""
    settings = dict(config)
    unknown = set(settings) - set(HTTP_SINK_DEFAULTS) - {"url", "token_env"}
    if unknown:
        raise ConnectorConfigError(f"{sorted(unknown)[0]}: not a setting of an http sink")
    if "url" not in settings:
        raise ConnectorConfigError("url: required for an http sink")
    token_env = settings.pop("token_env", None)
    if token_env is not None:
        if "token" in settings:
            raise ConnectorConfigError("token_env: give token or token_env, not both")
        token = os.environ.get(str(token_env))
        if not token:
            raise ConnectorConfigError(f"token_env: environment variable {token_env!r} is unset")
        settings["token"] = token
    for key in ("ca_file", "cert_file", "key_file", "token", "method", "body", "format"):
        value = settings.get(key)
        if value is not None and not isinstance(value, str):
            raise ConnectorConfigError(f"{key}: {value!r} is not a string")
    headers = settings.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConnectorConfigError("headers: must be a table of header names to strings")
    if "backoff_max" in settings:
        value = settings["backoff_max"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConnectorConfigError(f"backoff_max: {value!r} is not positive seconds")
    url = settings.pop("url")
    return HttpSink(url, name=name, **settings)
