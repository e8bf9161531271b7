"""One client connection: frames in, one request at a time, responses out in order.

Kafka processes a connection's requests strictly in order and so does this loop: a
long-polling Fetch holds back the requests behind it on the same socket (clients open
separate connections for the group coordinator). Bad input never takes the broker down:
an oversized or garbage frame, an unknown API, an unsupported version of anything but
ApiVersions, or a body that does not parse closes this connection after one log line;
an exception inside a handler is answered with UNKNOWN_SERVER_ERROR.

Time limits, each ending the connection with one log line:

* idle (``idle_timeout_ms``, Kafka's connections.max.idle.ms): no request for that long;
* a frame (``frame_timeout_ms``): from its first byte to its last. Bytes of an unfinished
  frame do not count as activity, so a client trickling a byte at a time is closed when
  this runs out, not kept forever;
* authentication (``authentication_timeout_ms``, with SASL): from connecting to being
  authenticated, whatever the client sends meanwhile;
* a response (``frame_timeout_ms`` too): once more than ``_DRAIN_AT`` bytes of responses
  wait in the socket's buffer, the client must take them within that time. Responses
  are drained as they are written, not once per read, so a read of many pipelined
  Fetch requests cannot pile up their responses in memory.

A failed authentication is answered after ``failed_authentication_delay_ms`` (Kafka's
connection.failed.authentication.delay.ms), then the connection is closed; the wait is
this connection's own, the event loop serves every other client meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.handlers import Handler
from streamlog.broker.handlers.sasl import handle_raw_sasl_token
from streamlog.protocol import (
    ApiKey,
    ErrorCode,
    FrameDecoder,
    FrameTooLargeError,
    MalformedRequestError,
    UnsupportedApiError,
    UnsupportedVersionError,
    decode_request,
    encode_frame,
    encode_response,
    error_response_for,
)

__all__ = ["Connection"]

log = logging.getLogger("streamlog.broker")

_PRE_AUTH_APIS = frozenset({ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})
_READ_SIZE = 256 * 1024
_DRAIN_AT = 1024 * 1024  # bytes of unsent responses before waiting for the client


class _Close(Exception):
    """Stop serving this connection (after a log line saying why)."""


class Connection:
    def __init__(
        self,
        ctx: BrokerContext,
        handlers: dict[ApiKey, Handler],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_authenticated: Callable[[Connection], None] | None = None,
    ) -> None:
        """``on_authenticated`` is called once, when a SASL client has authenticated."""
        self.ctx = ctx
        self.handlers = handlers
        self.reader = reader
        self.writer = writer
        self._on_authenticated = on_authenticated
        peer = writer.get_extra_info("peername")
        self.address: str = str(peer[0]) if peer else "unknown"
        self.session = Session(peer=f"{peer[0]}:{peer[1]}" if peer else "unknown")
        auth = ctx.config.authentication_required
        self.session.authenticated = not auth
        limit = ctx.config.max_preauth_frame_bytes if auth else ctx.config.max_frame_bytes
        self.decoder = FrameDecoder(max_frame_size=limit)

    def abort(self) -> None:
        """Close the socket now (the broker needs the slot); ``run`` then ends quietly."""
        self.session.warned = True  # the broker logged why
        self.writer.transport.abort()

    async def run(self) -> None:
        cfg = self.ctx.config
        loop = asyncio.get_running_loop()
        idle = cfg.idle_timeout_ms / 1000
        frame_timeout = cfg.frame_timeout_ms / 1000
        connected = loop.time()
        auth_deadline = connected + cfg.authentication_timeout_ms / 1000
        last_request = connected  # when the last request was served
        frame_started = connected  # when the first byte of the unfinished frame came
        try:
            while True:
                if self.decoder.buffered:
                    deadline = frame_started + frame_timeout
                    why = f"a request frame was not complete after {cfg.frame_timeout_ms} ms"
                else:
                    deadline = last_request + idle
                    why = f"idle for {cfg.idle_timeout_ms} ms"
                if not self.session.authenticated and auth_deadline < deadline:
                    deadline = auth_deadline
                    why = f"not authenticated after {cfg.authentication_timeout_ms} ms"
                try:
                    data = await asyncio.wait_for(
                        self.reader.read(_READ_SIZE), max(deadline - loop.time(), 0)
                    )
                except TimeoutError:
                    log.info("closing connection from %s: %s", self.session.peer, why)
                    return
                if not data:
                    return
                was_partial = self.decoder.buffered > 0
                frames = self.decoder.feed(data)
                if self.decoder.buffered and (frames or not was_partial):
                    frame_started = loop.time()  # a new frame began in this read
                for frame in frames:
                    if self.writer.transport.is_closing():
                        return  # the client is gone: serve none of its pipelined requests
                    response = await self._serve(frame)
                    sasl = self.session.sasl
                    if sasl is not None and sasl.failed:
                        # Kafka answers a failed authentication late, then closes.
                        await self._delay_failed_authentication()
                        if response is not None:
                            self.writer.write(response)
                        await self._drain()
                        return
                    if response is not None:
                        self.writer.write(response)
                        if self.writer.transport.get_write_buffer_size() > _DRAIN_AT:
                            await self._drain()
                await self._drain()
                if frames:
                    last_request = loop.time()
        except FrameTooLargeError as exc:
            self._warn(f"refused frame: {exc}")
        except _Close as exc:
            self._warn(str(exc))
            sasl = self.session.sasl
            if sasl is not None and sasl.failed:
                await self._delay_failed_authentication()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the broker is stopping; end this connection quietly
        except Exception as exc:
            # A bug on this connection's path must end this connection with one line, not
            # escape to asyncio ("Unhandled exception in client_connected_cb") with a
            # traceback per request; the traceback is kept for debug logging.
            log.error(
                "closing connection from %s (client %s) after an internal error: %r",
                self.session.peer,
                self.session.client_id,
                exc,
            )
            log.debug("internal error on a connection", exc_info=True)
        finally:
            self.writer.close()
            try:
                # a close flushes what is buffered first: a client that stopped reading
                # would keep this task, its buffers and its connection slot for ever
                await asyncio.wait_for(self.writer.wait_closed(), frame_timeout)
            except TimeoutError:
                self.writer.transport.abort()
            except (ConnectionError, OSError):
                pass

    async def _drain(self) -> None:
        """Wait until the client has taken our responses, for ``frame_timeout_ms`` at most."""
        if not self.writer.transport.get_write_buffer_size():
            return  # the kernel took everything: the common case, with no timer to set
        timeout_ms = self.ctx.config.frame_timeout_ms
        try:
            await asyncio.wait_for(self.writer.drain(), timeout_ms / 1000)
        except TimeoutError:
            raise _Close(f"the client did not read its responses for {timeout_ms} ms") from None

    async def _delay_failed_authentication(self) -> None:
        delay_ms = self.ctx.config.failed_authentication_delay_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

    def _authenticated(self) -> None:
        self.decoder.max_frame_size = self.ctx.config.max_frame_bytes
        if self._on_authenticated is not None:
            self._on_authenticated(self)

    async def _serve(self, frame: bytes) -> bytes | None:
        session = self.session
        if session.sasl is not None and session.sasl.expects_raw_token:
            # After SaslHandshake v0 the client sends bare SASL tokens, not requests.
            reply = handle_raw_sasl_token(session, bytes(frame))
            if reply is None:
                raise _Close("SASL authentication failed")
            if session.authenticated:
                self._authenticated()
            return encode_frame(reply)
        try:
            request = decode_request(frame)
        except UnsupportedVersionError as exc:
            if exc.api_key == ApiKey.API_VERSIONS:
                # Kafka answers with ApiVersions v0 listing what it supports.
                return encode_response(exc, error_response_for(exc, ErrorCode.UNSUPPORTED_VERSION))
            raise _Close(f"unsupported request: {exc}") from None
        except UnsupportedApiError as exc:
            raise _Close(f"unsupported request: {exc}") from None
        except MalformedRequestError as exc:
            raise _Close(f"malformed request: {exc}") from None
        session.requests += 1
        if request.client_id is not None:
            session.client_id = request.client_id
        if not session.authenticated and request.api_key not in _PRE_AUTH_APIS:
            raise _Close(f"{request.api_key.name} request before authentication; SASL is required")
        handler = self.handlers.get(request.api_key)
        if handler is None:
            raise _Close(f"no handler for {request.api_key.name}")
        was_authenticated = session.authenticated
        try:
            response = await handler(self.ctx, session, request)
        except Exception:
            log.exception(
                "%s v%d from %s (%s) failed",
                request.api_key.name,
                request.api_version,
                session.peer,
                session.client_id,
            )
            try:
                response = error_response_for(request, ErrorCode.UNKNOWN_SERVER_ERROR)
            except Exception as exc:
                raise _Close(
                    f"{request.api_key.name} failed and cannot be answered: {exc!r}"
                ) from None
        if session.authenticated and not was_authenticated:
            self._authenticated()
        if response is None:
            return None
        try:
            return encode_response(request, response)
        except Exception as exc:
            raise _Close(
                f"the {request.api_key.name} response cannot be encoded: {exc!r}"
            ) from None

    def _warn(self, message: str) -> None:
        if not self.session.warned:
            self.session.warned = True
            log.warning(
                "closing connection from %s (client %s): %s",
                self.session.peer,
                self.session.client_id,
                message,
            )
