"""``Broker``: the log engine served over the Kafka protocol on one asyncio event loop.

Start-up order: open the log manager (locks and recovers the data directory), read or
create the cluster id, start the group coordinator, load the users file if any, start
background log maintenance, then listen. Stop reverses it: stop listening, close every
connection, stop the coordinator and the maintenance thread, close the logs cleanly
(flush, clean-shutdown markers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import uuid

from streamlog.broker.admission import ConnectionSlots
from streamlog.broker.config import BrokerConfig, is_loopback
from streamlog.broker.connection import Connection
from streamlog.broker.context import BrokerContext
from streamlog.broker.coordinator import GroupCoordinator
from streamlog.broker.errors import BrokerStartError, UsersFileError
from streamlog.broker.handlers import handler_table
from streamlog.broker.local_groups import LocalGroups
from streamlog.broker.sasl import SUPPORTED_MECHANISMS
from streamlog.broker.transactions import TransactionService
from streamlog.broker.users import load_users
from streamlog.broker.waiters import Waiters
from streamlog.log.clock import Clock, SystemClock
from streamlog.log.manager import LogManager
from streamlog.log.txn_coordinator import TransactionCoordinator

__all__ = ["Broker", "BrokerStartError"]

log = logging.getLogger("streamlog.broker")

_META_FILE = "meta.properties"


class Broker:
    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock | None = None,
        manager: LogManager | None = None,
        local_groups: LocalGroups | None = None,
        waiters: Waiters | None = None,
        transactions: TransactionCoordinator | None = None,
    ) -> None:
        """``manager``: serve a log another component owns (a ``streamlog worker`` on
        ``file://`` shares its log this way); the broker then neither opens nor closes it
        and runs no maintenance of its own. ``local_groups``: that component's own
        consumer groups, which ListGroups and DescribeGroups then report as they are.
        ``waiters``: that component's wake-ups, so its appends wake this broker's waiting
        fetches and this broker's appends wake its consumers. ``transactions``: that
        component's transaction coordinator, loaded and expired by it (one coordinator per
        data directory); without one the broker makes, loads and expires its own."""
        self.config = config
        self._local_groups = local_groups
        self._waiters = waiters
        self.clock: Clock = clock or (manager.clock if manager is not None else SystemClock())
        self._shared_manager = manager
        self._shared_transactions = transactions
        self.ctx: BrokerContext | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._handlers = handler_table()
        self._slots: ConnectionSlots[Connection] = ConnectionSlots(
            config.max_connections,
            config.max_connections_per_ip,
            config.unauthenticated_connection_limit,
        )
        self._refusals = _ThrottledLog(self.clock)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the broker is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def bootstrap(self) -> str:
        """``HOST:PORT`` as the broker advertises itself."""
        host, port = self.config.advertised_address(self.port)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        cfg = self.config
        authenticated = cfg.users_file is not None or cfg.ssl_client_cafile is not None
        if not is_loopback(cfg.host) and not authenticated and not cfg.allow_remote:
            raise BrokerStartError(
                f"refusing to listen on {cfg.host}, which is not a loopback address, without "
                "authentication: give --users-file (or --ssl-client-cafile), or "
                "--allow-remote to accept anyone"
            )
        tls = _server_ssl_context(cfg)
        shared = self._shared_manager is not None
        if self._shared_manager is not None:
            manager = self._shared_manager
        else:
            manager = LogManager(
                cfg.data_dir,
                clock=self.clock,
                offsets_topic_partitions=cfg.offsets_topic_partitions,
            )
            manager.start()
        try:
            users = None
            if cfg.users_file is not None:
                unknown = set(cfg.sasl_mechanisms) - set(SUPPORTED_MECHANISMS)
                if unknown:
                    raise BrokerStartError(
                        f"unsupported SASL mechanisms {sorted(unknown)}; "
                        f"supported: {', '.join(SUPPORTED_MECHANISMS)}"
                    )
                try:
                    users = load_users(cfg.users_file)
                except UsersFileError as exc:
                    raise BrokerStartError(str(exc)) from None
            ctx = BrokerContext(
                config=cfg,
                log=manager,
                clock=self.clock,
                cluster_id=_cluster_id(manager.data_dir),
                port=cfg.port,
                users=users,
            )
            if self._waiters is not None:
                ctx.waiters = self._waiters
            ctx.coordinator = GroupCoordinator(ctx, local_groups=self._local_groups)
            ctx.transactions = self._transaction_service(manager, ctx.waiters)
            self._server = await asyncio.start_server(
                self._accept,
                cfg.host,
                cfg.port,
                limit=1 << 20,
                reuse_address=True,
                ssl=tls,
                # a TLS handshake left unfinished holds no slot; this bounds its life
                ssl_handshake_timeout=cfg.authentication_timeout_ms / 1000 if tls else None,
            )
            ctx.port = self.port
            self.ctx = ctx
            await ctx.coordinator.start()
            if ctx.transactions is not None:
                await ctx.transactions.start()
            if not shared:
                manager.start_background(cfg.maintenance_interval_ms)
        except BaseException:
            if self._server is not None:
                self._server.close()
            if self.ctx is not None and self.ctx.transactions is not None:
                await self.ctx.transactions.stop()
            if not shared:
                manager.close()
            raise
        log.info(
            "streamlog broker listening on %s:%d (advertised %s), %s, data directory %s",
            cfg.host,
            self.port,
            self.bootstrap,
            cfg.security_protocol,
            manager.data_dir,
        )
        if users is not None:
            log.info("SASL authentication required (%s)", ", ".join(cfg.sasl_mechanisms))

    def _transaction_service(
        self, manager: LogManager, waiters: Waiters
    ) -> TransactionService | None:
        """The coordinator's service: the owner's coordinator when the log is shared
        (none if it gave none: two coordinators over one log would abort each other's
        transactions), else one of this broker's own."""
        cfg = self.config
        interval = cfg.transaction_abort_interval_ms
        if self._shared_transactions is not None:
            return TransactionService(
                self._shared_transactions, waiters, owned=False, abort_interval_ms=interval
            )
        if self._shared_manager is not None:
            log.info("no transaction coordinator: the log's owner did not share one")
            return None
        offsets = manager.group_offsets
        if offsets is None:
            raise BrokerStartError("the log manager has no group offset store (not started?)")
        coordinator = TransactionCoordinator(
            manager, offsets, self.clock, max_timeout_ms=cfg.transaction_max_timeout_ms
        )
        return TransactionService(coordinator, waiters, owned=True, abort_interval_ms=interval)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ctx = self.ctx
        task = asyncio.current_task()
        if ctx is None or task is None:  # stopping
            writer.close()
            return
        slots = self._slots
        connection = Connection(
            ctx, self._handlers, reader, writer, on_authenticated=slots.authenticated
        )
        verdict = slots.admit(
            connection, connection.address, authenticated=connection.session.authenticated
        )
        for victim in verdict.evicted:
            self._refusals.warn(
                "closed a connection that had not authenticated, to make room",
                f"{victim.session.peer}: {verdict.reason}",
            )
            victim.abort()
        if not verdict.admitted:
            self._refusals.warn(
                "refused a connection", f"{connection.session.peer}: {verdict.reason}"
            )
            writer.close()
            return
        self._connections[task] = connection
        try:
            await connection.run()
        except asyncio.CancelledError:
            pass  # the broker is stopping; asyncio would log a cancelled callback otherwise
        finally:
            self._connections.pop(task, None)
            slots.release(connection)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        # Sockets are aborted, not closed: a close flushes what is buffered first, and a
        # client that stopped reading (a long-poll answer it never took) kept the
        # connection's task waiting in wait_closed, and the process from exiting, forever.
        for task, connection in list(self._connections.items()):
            connection.abort()
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        ctx = self.ctx
        if ctx is not None:
            if ctx.coordinator is not None:
                await ctx.coordinator.stop()
            if ctx.transactions is not None:
                await ctx.transactions.stop()
            ctx.waiters.notify_all()
            self.ctx = None
            if self._shared_manager is None:
                ctx.log.close()
                log.info("streamlog broker stopped; logs flushed and closed cleanly")
            else:
                log.info("Kafka listener stopped (the log stays open for its owner)")

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _ThrottledLog:
    """Warnings that a flood of connections would repeat thousands of times: the first
    of each kind is logged with its detail, then at most one line per interval says how
    many more there were."""

    def __init__(self, clock: Clock, interval_ms: int = 10_000) -> None:
        self._clock = clock
        self._interval_ms = interval_ms
        self._next_ms: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, what: str, detail: str) -> None:
        now = self._clock.monotonic_ms()
        if now < self._next_ms.get(what, 0):
            self._suppressed[what] = self._suppressed.get(what, 0) + 1
            return
        more = self._suppressed.pop(what, 0)
        suffix = (
            f" (and {more} more like it in the last {self._interval_ms // 1000} s)" if more else ""
        )
        log.warning("%s: %s%s", what, detail, suffix)
        self._next_ms[what] = now + self._interval_ms


def _server_ssl_context(cfg: BrokerConfig) -> ssl.SSLContext | None:
    """The listener's TLS context (TLS 1.2 or later), or None for a plaintext listener.

    :raises BrokerStartError: a certificate, key or CA file that does not load.
    """
    if cfg.ssl_certfile is None:
        if cfg.ssl_keyfile is not None or cfg.ssl_client_cafile is not None:
            raise BrokerStartError("--ssl-keyfile and --ssl-client-cafile need --ssl-certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # never prompt for the password of an encrypted key: refuse it
        context.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile, password=lambda: "")
    except (OSError, ssl.SSLError) as e:
        raise BrokerStartError(
            f"cannot load the TLS certificate {cfg.ssl_certfile}"
            + (f" with key {cfg.ssl_keyfile}" if cfg.ssl_keyfile else "")
            + f": {getattr(e, 'reason', None) or getattr(e, 'strerror', None) or e}"
        ) from None
    if cfg.ssl_client_cafile is not None:
        try:
            context.load_verify_locations(cafile=cfg.ssl_client_cafile)
        except (OSError, ssl.SSLError) as e:
            raise BrokerStartError(
                f"cannot load the client CA file {cfg.ssl_client_cafile}: "
                f"{getattr(e, 'reason', None) or getattr(e, 'strerror', None) or e}"
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _cluster_id(data_dir: str) -> str:
    """The cluster id kept in ``meta.properties``, created on first start."""
    path = os.path.join(data_dir, _META_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "cluster.id" and value:
                    return value
    except FileNotFoundError:
        pass
    cluster_id = uuid.uuid4().hex[:22]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"version=1\ncluster.id={cluster_id}\nnode.id=0\n")
    return cluster_id
