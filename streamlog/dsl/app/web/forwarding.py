"""Sending a request on to the worker that holds its key, and handing its answer back.

A forwarded request keeps its method, path, query, headers and body; it gains the header
``X-Streamlog-Routed-By`` (the forwarding worker's URL). A worker that receives a routed
request for a key it does not hold either answers 503 instead of forwarding it again, so
two workers whose directories disagree during a rebalance never bounce a request between
them. The answer comes back with its status, headers and body as the owner gave them,
plus ``X-Streamlog-Served-By`` naming the owner.

Bounds: the owner must accept the connection within ``CONNECT_TIMEOUT`` and answer whole
within ``FORWARD_TIMEOUT`` (else 504), and its body may be at most ``MAX_FORWARDED_BODY``
bytes (else 502); an owner that cannot be reached answers 503 naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlog.dsl.app.web.directory import WebWorker
from streamlog.dsl.app.web.errors import BadGateway, GatewayTimeout, ServiceUnavailable

if TYPE_CHECKING:
    from aiohttp import ClientResponse, ClientSession
    from aiohttp.web import Request, Response

__all__ = [
    "Forwarder",
    "ROUTED_HEADER",
    "SERVED_HEADER",
    "FORWARD_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_FORWARDED_BODY",
]

ROUTED_HEADER = "X-Streamlog-Routed-By"
SERVED_HEADER = "X-Streamlog-Served-By"
FORWARD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
MAX_FORWARDED_BODY = 16 << 20

# Headers about one connection (RFC 9110 7.6.1) or recomputed for the new message.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class Forwarder:
    """The forwarding side of one running web server: its HTTP client and its own URL."""

    def __init__(self, session: ClientSession, own_url: str, worker_id: str) -> None:
        self.session = session
        self.url = own_url
        self.worker_id = worker_id

    @staticmethod
    def already_routed(request: Request) -> str | None:
        """The worker that forwarded ``request`` here, if one did."""
        return request.headers.get(ROUTED_HEADER)

    async def forward(self, target: WebWorker, request: Request, what: str) -> Response:
        """``request`` as ``target`` answers it (see the module docstring); ``what``
        names the key for error messages."""
        from aiohttp import ClientError
        from multidict import CIMultiDict

        routed_by = self.already_routed(request)
        if routed_by is not None:
            raise ServiceUnavailable(
                f"{what} is not held here; the worker at {routed_by} sent this request here "
                "and this worker's view of the group says otherwise (a rebalance is under "
                "way): try again"
            )
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _NOT_FORWARDED
        )
        headers[ROUTED_HEADER] = self.url
        body = await request.read() if request.body_exists else None
        url = target.url + str(request.rel_url)
        try:
            async with self.session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as answer:
                return await self._pass_back(answer, target)
        except TimeoutError:
            raise GatewayTimeout(
                f"{what} is held by the worker at {target.url}, which did not answer within "
                f"{FORWARD_TIMEOUT:.0f} s"
            ) from None
        except ClientError as exc:
            raise ServiceUnavailable(
                f"{what} is held by the worker at {target.url}, which cannot be reached: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    async def _pass_back(self, answer: ClientResponse, target: WebWorker) -> Response:
        from aiohttp import web
        from multidict import CIMultiDict

        chunks = []
        size = 0
        async for chunk in answer.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > MAX_FORWARDED_BODY:
                raise BadGateway(
                    f"the worker at {target.url} answered more than {MAX_FORWARDED_BODY} bytes"
                )
            chunks.append(chunk)
        headers = CIMultiDict(
            (name, value)
            for name, value in answer.headers.items()
            if name.lower() not in _NOT_FORWARDED
        )
        headers[SERVED_HEADER] = target.url
        return web.Response(
            body=b"".join(chunks), status=answer.status, reason=answer.reason, headers=headers
        )
