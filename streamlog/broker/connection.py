"""One client connection: frames in, one request at a time, responses out in order.

Kafka processes a connection's requests strictly in order and so does this loop: a
long-polling Fetch holds back the requests behind it on the same socket (clients open
separate connections for the group coordinator). Bad input never takes the broker down:
an oversized or garbage frame, an unknown API, an unsupported version of anything but
ApiVersions, or a body that does not parse closes this connection after one log line;
an exception inside a handler is answered with UNKNOWN_SERVER_ERROR.
"""

from __future__ import annotations

import asyncio
import logging

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


class _Close(Exception):
    """Stop serving this connection (after a log line saying why)."""


class Connection:
    def __init__(
        self,
        ctx: BrokerContext,
        handlers: dict[ApiKey, Handler],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.session = Session(peer=f"{peer[0]}:{peer[1]}" if peer else "unknown")
        auth = ctx.config.authentication_required
        self.session.authenticated = not auth
        limit = ctx.config.max_preauth_frame_bytes if auth else ctx.config.max_frame_bytes
        self.decoder = FrameDecoder(max_frame_size=limit)

    async def run(self) -> None:
        idle = self.ctx.config.idle_timeout_ms / 1000
        try:
            while True:
                try:
                    data = await asyncio.wait_for(self.reader.read(_READ_SIZE), idle)
                except TimeoutError:
                    log.info("closing idle connection from %s", self.session.peer)
                    return
                if not data:
                    return
                for frame in self.decoder.feed(data):
                    response = await self._serve(frame)
                    if response is not None:
                        self.writer.write(response)
                    sasl = self.session.sasl
                    if sasl is not None and sasl.failed:
                        # Kafka closes the connection after a failed authentication.
                        await self.writer.drain()
                        return
                await self.writer.drain()
        except FrameTooLargeError as exc:
            self._warn(f"refused frame: {exc}")
        except _Close as exc:
            self._warn(str(exc))
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
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _serve(self, frame: bytes) -> bytes | None:
        session = self.session
        if session.sasl is not None and session.sasl.expects_raw_token:
            # After SaslHandshake v0 the client sends bare SASL tokens, not requests.
            reply = handle_raw_sasl_token(session, bytes(frame))
            if reply is None:
                raise _Close("SASL authentication failed")
            if session.authenticated:
                self.decoder.max_frame_size = self.ctx.config.max_frame_bytes
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
            self.decoder.max_frame_size = self.ctx.config.max_frame_bytes
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
