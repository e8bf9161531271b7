"""A small HTTP endpoint in the worker's event loop: health, stats and Prometheus metrics.

No web framework: three read-only GET routes over ``asyncio.start_server``, bound to
loopback by default. ``/health`` answers 200 while the app runs (503 while starting or
stopping), ``/stats`` the app's counters as JSON, ``/metrics`` the same counters in the
Prometheus text format. Port 0 picks a free port; ``port`` holds the bound one after
``start`` (and the log line says it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

from streamlog.dsl.errors import WebServerError

if TYPE_CHECKING:
    from streamlog.dsl.app.app import App

__all__ = ["WebServer", "WebServerError"]

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 6066) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (``WebServerError`` naming the address when it cannot)."""
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise WebServerError(
                f"web endpoint cannot listen on {self.host}:{self.port}: {reason}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("web endpoint on http://%s:%d (/health, /stats, /metrics)", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            method = parts[0] if parts else ""
            status, ctype, body = self._route(method, path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = path.split("?", 1)[0]
        app = self.app
        if path == "/health":
            ok = app.started and not app.stopping
            return (
                ("200 OK" if ok else "503 Service Unavailable"),
                "text/plain",
                (b"ok\n" if ok else b"not running\n"),
            )
        if path in ("/stats", "/"):
            return "200 OK", "application/json", json.dumps(app.stats(), indent=2).encode()
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4", _prometheus(app).encode()
        return "404 Not Found", "text/plain", b"routes: /health /stats /metrics\n"


def _prometheus(app: App) -> str:
    stats = app.stats()
    label = f'app="{app.conf.id}"'
    lines = [
        "# TYPE streamlog_records_fetched_total counter",
        f"streamlog_records_fetched_total{{{label}}} {stats['records_fetched']}",
        "# TYPE streamlog_commits_total counter",
        f"streamlog_commits_total{{{label}}} {stats['commits']}",
        "# TYPE streamlog_agent_errors_total counter",
    ]
    for name, agent in stats["agents"].items():
        lines.append(f'streamlog_agent_errors_total{{{label},agent="{name}"}} {agent["errors"]}')
    lines.append("# TYPE streamlog_agent_dead_lettered_total counter")
    for name, agent in stats["agents"].items():
        count = agent["dead_lettered"]
        lines.append(f'streamlog_agent_dead_lettered_total{{{label},agent="{name}"}} {count}')
    return "\n".join(lines) + "\n"
