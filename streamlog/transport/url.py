"""Broker URLs: ``memory://`` (the in-process log, nothing on disk), ``file://PATH`` (the
in-process log on disk under PATH), ``kafka://HOST:PORT[,...]`` (any Kafka-protocol
broker: ``streamlog broker`` or a Kafka cluster) and ``kafka+ssl://HOST:PORT[,...]`` (the
same over TLS; see ``streamlog.transport.security``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from streamlog.transport.errors import UnsupportedBrokerURLError

__all__ = ["BrokerURL", "parse_broker_url", "DEFAULT_BROKER_URL", "BROKER_ENV"]

DEFAULT_BROKER_URL = "kafka://127.0.0.1:9092"
BROKER_ENV = "STREAMLOG_BROKER"


@dataclass(frozen=True, slots=True)
class BrokerURL:
    scheme: str  # "memory", "file" or "kafka"
    path: str | None = None  # file://
    servers: tuple[tuple[str, int], ...] = ()  # kafka://
    tls: bool = False  # kafka+ssl://

    def __str__(self) -> str:
        if self.scheme == "memory":
            return "memory://"
        if self.scheme == "file":
            return f"file://{self.path}"
        scheme = "kafka+ssl://" if self.tls else "kafka://"
        return scheme + ",".join(f"{h}:{p}" for h, p in self.servers)


def parse_broker_url(url: str) -> BrokerURL:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnsupportedBrokerURLError(
            f"broker URL {url!r} has no scheme: use memory://, file://PATH or kafka://HOST:PORT"
        )
    scheme = scheme.lower()
    if scheme == "memory":
        if rest.strip("/"):
            raise UnsupportedBrokerURLError(f"memory:// takes no path, got {url!r}")
        return BrokerURL("memory")
    if scheme == "file":
        if not rest:
            raise UnsupportedBrokerURLError("file:// needs a path, e.g. file://./.streamlog")
        return BrokerURL("file", path=os.path.expanduser(rest))
    if scheme in ("kafka", "kafka+ssl"):
        servers = []
        for part in rest.split(","):
            part = part.strip().rstrip("/")
            host, colon, port = part.rpartition(":")
            if not colon or not port.isdigit() or not host:
                raise UnsupportedBrokerURLError(
                    f"kafka:// needs HOST:PORT[,HOST:PORT...], got {part!r} in {url!r}"
                )
            servers.append((host.strip("[]"), int(port)))
        return BrokerURL("kafka", servers=tuple(servers), tls=scheme == "kafka+ssl")
    raise UnsupportedBrokerURLError(
        f"unsupported broker URL scheme {scheme!r} in {url!r}: "
        "use memory://, file://PATH, kafka://HOST:PORT or kafka+ssl://HOST:PORT"
    )
