"""One TCP connection to one Kafka-protocol node: pipelined requests, responses by correlation id.

A ``Connection`` opens (over TLS when given an ``ssl.SSLContext``) with ApiVersions, logs
in with SASL when given a mechanism (SaslHandshake v1, then SaslAuthenticate per token,
see ``sasl.py``), and keeps, per API key, the highest version both sides support;
``build`` makes a request of that version from plain values. ``send`` writes a request
at once and returns a future for its response, so any number of requests may be in
flight (a Kafka broker answers them in order, one at a time per connection: a
long-polling Fetch holds back everything sent after it, which is why each client keeps
separate connections per purpose, see ``Cluster.connection``).

Every request has a deadline. A request that misses it, a broker that closes the socket
or bytes that do not decode fail the pending futures with ``BrokerUnavailableError`` (or
``TransportError`` for undecodable responses) and close the connection: after a lost
response the stream cannot be trusted. A closed connection is never reopened; the owner
makes a new one.

Not thread-safe: one event loop owns it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

from streamlog.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    ErrorCode,
    FrameDecoder,
    ProtocolError,
    VersionRange,
    build_message,
    decode_response,
    encode_request,
    negotiate_all,
    peek_correlation_id,
    request_class,
)
from streamlog.transport.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    TlsError,
    TransportClosedError,
    TransportError,
    UnsupportedBrokerFeatureError,
)
from streamlog.transport.kafka.sasl import sasl_client
from streamlog.transport.security import ClientSecurity

__all__ = ["Connection", "CLIENT_SOFTWARE_NAME", "CLIENT_SOFTWARE_VERSION"]

CLIENT_SOFTWARE_NAME = "streamlog"
CLIENT_SOFTWARE_VERSION = "0.1.0"

_MAX_UNANSWERED = 10_000

# A pending request: api key, version, future, timer handle.
_Pending = tuple[int, int, "asyncio.Future[Any]", asyncio.TimerHandle | None]


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return f"API key {api_key}"


class Connection:
    """A connection to ``host:port``; ``await open()`` before use.

    Invariant: ``_pending`` holds exactly the requests written and not yet answered, in
    correlation-id order; once ``closed`` it is empty and stays empty.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "streamlog",
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        node_id: int | None = None,
        security: ClientSecurity | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``security``: SASL credentials (and whether TLS is expected); ``ssl_context``:
        the TLS context to connect with (``ClientSecurity.ssl_context``, made once per
        client rather than per connection)."""
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.versions: dict[int, int] = {}
        self._transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder()
        self._pending: dict[int, _Pending] = {}
        self._unanswered: dict[int, None] = {}
        self._next_correlation_id = 1
        self._closed_reason: str | None = None
        self.security = security or ClientSecurity()
        self._ssl_context = ssl_context
        if self.security.tls and ssl_context is None:
            raise ValueError("TLS security settings need an ssl_context")
        # What the connection was doing when the broker closed it, to explain the close.
        self._phase = "connecting"

    def __repr__(self) -> str:
        return f"Connection({self.address}, node={self.node_id})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> Connection:
        """Connect and negotiate API versions.

        :raises BrokerUnavailableError: refused, unreachable, timed out or closed early.
        """
        loop = asyncio.get_running_loop()
        tls = self._ssl_context
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(self),
                    self.host,
                    self.port,
                    ssl=tls,
                    server_hostname=self.host if tls is not None else None,
                    ssl_handshake_timeout=self.connect_timeout if tls is not None else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise BrokerUnavailableError(
                f"{self.address}: no connection within {self.connect_timeout:g} s"
            ) from None
        except ssl.SSLCertVerificationError as e:
            raise TlsError(
                f"{self.address}: the broker's TLS certificate is not accepted "
                f"({e.verify_message or e.reason}); check --ssl-cafile and the host name"
            ) from None
        except ssl.SSLError as e:
            raise BrokerUnavailableError(
                f"{self.address}: TLS handshake failed ({e.reason or e}); is it a TLS "
                "listener, and does it accept this client's certificate?"
            ) from None
        except socket.gaierror as e:
            # getaddrinfo's errors are EAI_* codes, not errno values: os.strerror(-2) is
            # "Unknown error -2", so say what failed in words.
            raise BrokerUnavailableError(
                f"{self.address}: host name {self.host!r} did not resolve ({e.strerror})"
            ) from None
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e) or type(e).__name__
            if tls is not None and isinstance(e, ConnectionResetError):
                reason += " during the TLS handshake: is it a TLS listener?"
            raise BrokerUnavailableError(f"{self.address}: cannot connect ({reason})") from None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                # closed by the broker as soon as it was accepted (a broker at its
                # connection limit does that): an unavailable broker, retried as such
                transport.abort()
                raise BrokerUnavailableError(
                    f"{self.address}: the broker closed the connection as it opened (at its "
                    "connection limit?)"
                ) from None
        self._transport = transport
        try:
            self._phase = "negotiating"
            await self._negotiate()
            if self.security.sasl_mechanism:
                self._phase = "authenticating"
                await self._authenticate()
            self._phase = "first request"
        except BaseException:
            self.close("opening failed")
            raise
        return self

    async def _negotiate(self) -> None:
        ours = SUPPORTED_VERSIONS[ApiKey.API_VERSIONS]
        version = ours.max
        for _ in range(2):
            response: Any = await self.request(
                build_message(
                    request_class(ApiKey.API_VERSIONS, version),
                    client_software_name=CLIENT_SOFTWARE_NAME,
                    client_software_version=CLIENT_SOFTWARE_VERSION,
                ),
                api_version=version,
            )
            theirs = {
                int(k.api_key): VersionRange(int(k.min_version), int(k.max_version))
                for k in response.api_keys
            }
            if response.error_code == ErrorCode.UNSUPPORTED_VERSION:
                their_range = theirs.get(ApiKey.API_VERSIONS, VersionRange(0, 0))
                version = max(ours.min, min(ours.max, their_range.max))
                continue
            if response.error_code != ErrorCode.NONE:
                raise TransportError(
                    f"{self.address}: ApiVersions failed ({ErrorCode(response.error_code).name})"
                )
            self.versions = negotiate_all(theirs)
            return
        raise TransportError(f"{self.address}: no ApiVersions version in common")

    async def _authenticate(self) -> None:
        """SASL login: SaslHandshake v1 then SaslAuthenticate per token (KIP-152).

        :raises AuthenticationError: the broker does not offer the mechanism or SASL at
            all, refused the credentials (its message is kept), or answered something
            the mechanism does not accept.
        """
        security = self.security
        mechanism = security.sasl_mechanism or ""
        who = f"{self.address}: SASL {mechanism} login as {security.sasl_username!r}"
        if not self.supports(ApiKey.SASL_HANDSHAKE) or not self.supports(ApiKey.SASL_AUTHENTICATE):
            raise AuthenticationError(
                f"{who} impossible: the broker offers no SaslHandshake v1 and "
                "SaslAuthenticate (Kafka 1.0 or later needed)"
            )
        response: Any = await self.request(
            build_message(request_class(ApiKey.SASL_HANDSHAKE, 1), mechanism=mechanism),
            api_version=1,
        )
        code = int(response.error_code)
        if code == ErrorCode.UNSUPPORTED_SASL_MECHANISM:
            offered = ", ".join(response.mechanisms) or "none"
            raise AuthenticationError(
                f"{who} failed: the broker does not offer {mechanism} (it offers: {offered})"
            )
        if code == ErrorCode.ILLEGAL_SASL_STATE:
            raise AuthenticationError(
                f"{who} failed: the broker takes no SASL login on this listener "
                "(ILLEGAL_SASL_STATE: a PLAINTEXT or SSL listener?)"
            )
        if code != ErrorCode.NONE:
            raise AuthenticationError(f"{who} failed: SaslHandshake {_error_name(code)}")
        client = sasl_client(mechanism, security.sasl_username or "", security.sasl_password or "")
        version = self.version(ApiKey.SASL_AUTHENTICATE)
        token: bytes | None = client.first()
        while token is not None:
            answer: Any = await self.request(
                self.build(ApiKey.SASL_AUTHENTICATE, auth_bytes=token), api_version=version
            )
            code = int(answer.error_code)
            if code != ErrorCode.NONE:
                message = answer.error_message or _error_name(code)
                raise AuthenticationError(f"{who} failed: {message}")
            try:
                token = client.respond(bytes(answer.auth_bytes or b""))
            except AuthenticationError as e:
                raise AuthenticationError(f"{who} failed: {e}") from None

    def close(self, reason: str = "closed") -> None:
        """Close the socket and fail whatever is pending (idempotent)."""
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        if self._transport is not None:
            self._transport.close()
        self._fail_all(TransportClosedError(f"{self.address}: connection closed"))

    # ------------------------------------------------------------------ requests

    def supports(self, api_key: int) -> bool:
        return api_key in self.versions

    def version(self, api_key: int) -> int:
        """The negotiated version of ``api_key``.

        :raises TransportError: the broker does not serve it in a version we know.
        """
        try:
            return self.versions[api_key]
        except KeyError:
            raise UnsupportedBrokerFeatureError(
                f"{self.address}: the broker does not support {_api_name(api_key)}"
            ) from None

    def build(self, api_key: int, /, **values: Any) -> Any:
        """A request of ``api_key`` at the negotiated version, from plain values."""
        return build_message(request_class(api_key, self.version(api_key)), **values)

    def send(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        expect_response: bool = True,
        api_version: int | None = None,
    ) -> asyncio.Future[Any]:
        """Write ``request`` now; the future resolves to its decoded response.

        With ``expect_response=False`` (Produce with acks=0) the future is already done.
        The future fails with ``BrokerUnavailableError`` if no response arrives within
        ``timeout`` seconds (default: the connection's request timeout).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed_reason is not None or self._transport is None:
            future.set_exception(
                BrokerUnavailableError(f"{self.address}: connection {self._closed_reason}")
            )
            return future
        request_type = type(request)
        api_key = int(request_type.__api_key__)
        version = int(request_type.__version__) if api_version is None else api_version
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) & 0x7FFFFFFF
        frame = encode_request(request, correlation_id=correlation_id, client_id=self.client_id)
        if expect_response:
            seconds = self.request_timeout if timeout is None else timeout
            timer = loop.call_later(seconds, self._on_timeout, correlation_id, seconds)
            self._pending[correlation_id] = (api_key, version, future, timer)
        else:
            future.set_result(None)
            # Some brokers (Tansu) answer acks=0 produces anyway: remember the id so
            # that such an answer is skipped rather than taken for a stream error.
            unanswered = self._unanswered
            unanswered[correlation_id] = None
            if len(unanswered) > _MAX_UNANSWERED:
                del unanswered[next(iter(unanswered))]
        self._transport.write(frame)
        return future

    async def request(
        self, request: Any, *, timeout: float | None = None, api_version: int | None = None
    ) -> Any:
        """``send`` and wait for the response."""
        return await self.send(request, timeout=timeout, api_version=api_version)

    # ------------------------------------------------------------------ protocol side

    def _on_timeout(self, correlation_id: int, seconds: float) -> None:
        entry = self._pending.pop(correlation_id, None)
        if entry is None:
            return
        api_key, _, future, _ = entry
        error = BrokerUnavailableError(
            f"{self.address}: no response to {_api_name(api_key)} within {seconds:g} s"
        )
        if not future.done():
            future.set_exception(error)
        # Responses come in order: everything sent later is lost with this one.
        self._lost(f"request timed out after {seconds:g} s")

    def _on_data(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as e:
            self._lost(f"bad response frame: {e}")
            return
        pending = self._pending
        for frame in frames:
            try:
                correlation_id = peek_correlation_id(frame)
            except ProtocolError as e:
                self._lost(str(e))
                return
            entry = pending.pop(correlation_id, None)
            if entry is None:
                if self._unanswered.pop(correlation_id, False) is None:
                    continue
                self._lost(f"response to unknown correlation id {correlation_id}")
                return
            api_key, version, future, timer = entry
            if self._phase == "first request":
                self._phase = "open"
            if timer is not None:
                timer.cancel()
            if future.done():  # cancelled by its waiter
                continue
            try:
                _, response = decode_response(frame, api_key, version)
            except (ProtocolError, LookupError) as e:
                future.set_exception(
                    TransportError(f"{self.address}: undecodable {_api_name(api_key)}: {e}")
                )
                continue
            future.set_result(response)

    def _closed_by_broker(self, exc: Exception | None) -> None:
        """The socket closed under us: say why it may have, from what we were doing."""
        if exc is not None:
            self._lost(f"connection lost ({exc})")
            return
        reason = "closed by the broker"
        if self._phase == "negotiating" and self._ssl_context is None:
            reason += (
                " before answering ApiVersions (a TLS listener closes plaintext "
                "connections: for TLS use kafka+ssl://HOST:PORT)"
            )
        elif self._phase == "negotiating":
            reason += (
                " before answering ApiVersions (a TLS listener does that when it requires a "
                "client certificate it was not given or does not trust: --ssl-certfile and "
                "--ssl-keyfile)"
            )
        elif self._phase == "authenticating":
            reason += f" during the SASL {self.security.sasl_mechanism} login"
        elif self._phase == "first request" and not self.security.sasl_mechanism:
            reason += (
                " before answering any request after ApiVersions (a broker that requires "
                "SASL closes connections that do not log in: give --sasl-mechanism, "
                "--sasl-username and --sasl-password, or STREAMLOG_SASL_*)"
            )
        self._lost(reason)

    def _lost(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = f"lost: {reason}"
        if self._transport is not None:
            self._transport.abort()
        self._fail_all(BrokerUnavailableError(f"{self.address}: {reason}"))

    def _fail_all(self, error: TransportError) -> None:
        pending = list(self._pending.values())
        self._pending.clear()
        for _, _, future, timer in pending:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_exception(error)
                # Nobody may be waiting (a pipelined request whose owner went away).
                future.exception()


class _Protocol(asyncio.Protocol):
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def data_received(self, data: bytes) -> None:
        self._conn._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._closed_by_broker(exc)
