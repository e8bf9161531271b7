"""``app.router`` and the page decorators: which worker answers a request, and which
handler does.

``@app.table_route(table=counts, match_info="word")`` (or ``query_param=``, ``exact_key=``,
Faust's deprecated ``shard_param=``) wraps a view method: the request's key is looked up
(``Router.locate_table_key``) and, when another worker holds its table partition, the
request is forwarded there (``forwarding.py``) and that worker's answer returned; when
this worker holds it, the view runs here. ``@app.topic_route(topic=..., ...)`` does the
same for the partition of a topic the key is sent to. A key whose holder is not known
(a rebalance under way, or the holder runs no web server) answers 503.

"Here" is decided first by the table's own partitions (a partition this worker has
recovered is answered here whatever the directory says), then by the group's directory
(``directory.py``). A table partition the directory gives to this worker but that is not
recovered yet answers 503 from the view (the read raises ``PartitionNotOwnedError``).

``app.router`` is Faust's router (``key_store``, ``table_metadata``, ``tables_metadata``,
``external_topic_key_store``, ``external_topics_metadata``, ``route_req``,
``route_topic_req``) and, like aiohttp's, adds plain routes (``add_route``, ``add_get``,
``add_post``, ``add_put``, ``add_patch``, ``add_delete``, ``add_static``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.app.web.directory import Directory, WebWorker
from streamlog.dsl.app.web.errors import SameNode, ServerError, ServiceUnavailable, ValidationError
from streamlog.dsl.app.web.forwarding import Forwarder
from streamlog.dsl.app.web.views import View, ViewHandler
from streamlog.dsl.tables.kinds import GlobalTable
from streamlog.dsl.topology.copartitioning import sources_of
from streamlog.serde import SerdeError
from streamlog.transport import partition_for_key
from streamlog.transport.errors import TransportError
from streamlog.transport.types import GroupPeer, TopicPartition

if TYPE_CHECKING:
    from aiohttp.web import Request, Response
    from yarl import URL

    from streamlog.dsl.app.app import App
    from streamlog.dsl.app.web.driver import Web
    from streamlog.dsl.tables.table import Table

__all__ = [
    "Router",
    "SameNode",
    "Location",
    "HostToPartitionMap",
    "page",
    "table_route",
    "topic_route",
]

HostToPartitionMap = dict[str, dict[str, list[int]]]  # worker URL -> topic -> partitions


@dataclass(frozen=True, slots=True)
class Location:
    """Where a key lives: here, on ``worker``, or (neither) nowhere known. ``what`` names
    the key, its partition and its table or topic, for messages."""

    what: str
    here: bool
    worker: WebWorker | None = None
    partition: int | None = None  # the key's table or topic partition (None: a global table)


class Router:
    """See the module docstring. The web server hands it a ``Forwarder`` while it runs."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.forwarder: Forwarder | None = None
        self._peers: tuple[GroupPeer, ...] | None = None
        self._directory = Directory(())
        self._partition_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ the group

    def directory(self) -> Directory:
        """The workers of the group and their partitions, as of the last rebalance (read
        again only when the transport hands a new peer list)."""
        peers = self.app.conductor.group_peers()
        if peers is not self._peers:
            self._peers = peers
            self._directory = Directory.from_peers(peers)
            self._partition_counts.clear()
        return self._directory

    @property
    def worker_id(self) -> str | None:
        """This worker's id in the directory (None while its web server is not running)."""
        return None if self.forwarder is None else self.forwarder.worker_id

    def _is_me(self, worker: WebWorker) -> bool:
        return worker.id == self.worker_id

    # ------------------------------------------------------------------ where keys live

    def _table(self, name: str) -> Table:
        try:
            return self.app.tables[name]
        except KeyError:
            raise KeyError(f"no table named {name!r}") from None

    def locate_table_key(self, table_name: str, key: Any) -> Location:
        """Which worker holds ``key`` of table ``table_name``."""
        table = self._table(table_name)
        if isinstance(table, GlobalTable):
            return Location(f"key {key!r} of global table {table.name!r}", True)
        try:
            number = self._table_partition(table, key)
        except (SerdeError, KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"key {key!r} of table {table.name!r}: {exc}") from None
        what = f"key {key!r} (partition {number} of table {table.name!r})"
        if number in table.active_partitions:
            return Location(what, True, None, number)
        holder = self.directory().holder_of_table_partition(number, self.app.leader_topic_name)
        if holder is None:
            return Location(what, False, None, number)
        mine = self._is_me(holder)
        return Location(what, mine, None if mine else holder, number)

    def _table_partition(self, table: Table, key: Any) -> int:
        """The table partition holding ``key``. Kafka's placement: the hash of the table's
        key bytes. Faust's (by event): the partition holding it here if any, else the one
        its events are read from, the hash of the key as the agent's source topic
        serialises it (Faust's own router hashes the changelog's key bytes, which names
        the wrong worker whenever the source's key serializer is not the table's)."""
        raw = table.key_bytes(key)
        if table.key_placement != "event":
            return table.hash_partition(raw)
        found = table.locate(raw)
        if found is not None:
            return found
        sources = sources_of(self.app, table)
        if len(sources) == 1:
            source_raw = sources[0].schema.dumps_key(key)
            if source_raw is not None:
                return table.hash_partition(source_raw)
        return table.hash_partition(raw)

    async def locate_topic_key(self, topic: Topic | str, key: Any) -> Location:
        """Which worker holds the partition of ``topic`` that ``key`` is sent to."""
        topic = self._topic(topic)
        try:
            raw = topic.schema.dumps_key(key)
        except SerdeError as exc:
            raise ValidationError(f"key {key!r} of topic {topic.name!r}: {exc}") from None
        count = await self._partition_count(topic.name)
        return self._topic_location(topic.name, key, raw, count)

    def _topic(self, topic: Topic | str) -> Topic:
        if isinstance(topic, str):
            try:
                return self.app.topics[topic]
            except KeyError:
                raise KeyError(f"the app declares no topic named {topic!r}") from None
        return topic

    def _topic_location(self, name: str, key: Any, raw: bytes | None, count: int) -> Location:
        number = 0 if count == 1 or raw is None else partition_for_key(raw, count)
        tp = TopicPartition(name, number)
        what = f"key {key!r} (partition {number} of topic {name!r})"
        if tp in self.app.conductor.assignment():
            return Location(what, True)
        owner = self.directory().owner_of(tp)
        if owner is None:
            return Location(what, False)
        return Location(what, self._is_me(owner), None if self._is_me(owner) else owner)

    async def _partition_count(self, topic: str) -> int:
        self.directory()  # a new peer list forgets the counts learnt before it
        count = self._partition_counts.get(topic)
        if count is None:
            try:
                info = await self.app.admin().describe_topic(topic)
            except TransportError as exc:
                raise ServiceUnavailable(f"topic {topic!r}: {exc}") from None
            count = self._partition_counts[topic] = len(info.partitions)
        return count

    def _url(self, location: Location) -> URL:
        from yarl import URL

        if location.here and self.forwarder is not None:
            return URL(self.forwarder.url)
        if location.worker is not None:
            return URL(location.worker.url)
        raise KeyError(f"no worker is known to hold {location.what}")

    def key_store(self, table_name: str, key: Any) -> URL:
        """The URL of the worker holding ``key`` of the table (``KeyError``: unknown)."""
        return self._url(self.locate_table_key(table_name, key))

    def external_topic_key_store(self, topic: Topic | str, key: Any) -> URL:
        """The URL of the worker holding the partition of ``topic`` that ``key`` goes to
        (``KeyError`` while the topic's partition count is not known yet: a
        ``topic_route`` request, or ``await locate_topic_key``, learns it)."""
        topic = self._topic(topic)
        count = self._partition_counts.get(topic.name)
        if count is None:
            numbers = {
                tp.partition
                for worker in self.directory().workers
                for tp in worker.partitions
                if tp.topic == topic.name
            }
            if not numbers:
                raise KeyError(f"partition count of topic {topic.name!r} not known")
            count = max(numbers) + 1
        raw = topic.schema.dumps_key(key)
        return self._url(self._topic_location(topic.name, key, raw, count))

    def table_metadata(self, table_name: str) -> HostToPartitionMap:
        """Worker URL -> the table's changelog topic -> the partitions it holds."""
        table = self._table(table_name)
        return self._tables_map([table])

    def tables_metadata(self) -> HostToPartitionMap:
        """``table_metadata`` of every table (global ones are everywhere: left out)."""
        return self._tables_map(
            [t for t in self.app.tables.values() if not isinstance(t, GlobalTable)]
        )

    def _tables_map(self, tables: list[Table]) -> HostToPartitionMap:
        leader = self.app.leader_topic_name
        result: HostToPartitionMap = {}
        for worker in self.directory().workers:
            numbers = worker.table_partitions(leader)
            entry = result.setdefault(worker.url, {})
            for table in tables:
                entry[table.changelog_topic.name] = sorted(
                    n for n in numbers if n < table.partitions
                )
        return result

    def external_topics_metadata(self) -> HostToPartitionMap:
        """Worker URL -> each topic the app reads -> the partitions it holds."""
        leader = self.app.leader_topic_name
        result: HostToPartitionMap = {}
        for worker in self.directory().workers:
            entry = result.setdefault(worker.url, {})
            for tp in sorted(worker.partitions):
                if tp.topic != leader:
                    entry.setdefault(tp.topic, []).append(tp.partition)
        return result

    # ------------------------------------------------------------------ forwarding

    async def route_req(self, table_name: str, key: Any, web: Web, request: Request) -> Response:
        """The answer of the worker holding ``key`` of the table; ``SameNode`` when it is
        this one."""
        return await self._route(self.locate_table_key(table_name, key), request)

    async def route_topic_req(
        self, topic: Topic | str, key: Any, web: Web, request: Request
    ) -> Response:
        """The answer of the worker holding ``key``'s partition of ``topic``; ``SameNode``
        when it is this one."""
        return await self._route(await self.locate_topic_key(topic, key), request)

    async def forward(self, location: Location, request: Request) -> Response:
        """The answer of the worker ``location`` names (``SameNode``: this one; 503 when
        none is known or this worker's server is not running)."""
        return await self._route(location, request)

    async def _route(self, location: Location, request: Request) -> Response:
        if location.here:
            raise SameNode(location.what)
        if location.worker is None:
            raise ServiceUnavailable(
                f"no worker is known to hold {location.what}: the group is rebalancing, or "
                "the worker holding it serves no web requests; try again"
            )
        if self.forwarder is None:
            raise ServiceUnavailable("this worker's web server is not running")
        return await self.forwarder.forward(location.worker, request, location.what)

    # ------------------------------------------------------------------ plain routes

    def add_route(
        self,
        method: str,
        path: str,
        handler: Callable[[Request], Awaitable[Any]],
        *,
        name: str | None = None,
    ) -> None:
        """Serve ``async def handler(request)`` for ``method`` (``*``: any) at ``path``."""
        self.app.web.add_route(method, path, handler, name=name)

    def add_get(
        self,
        path: str,
        handler: Callable[[Request], Awaitable[Any]],
        *,
        name: str | None = None,
        allow_head: bool = True,
    ) -> None:
        """GET (and HEAD, as aiohttp's ``add_get``) at ``path``."""
        self.add_route("GET", path, handler, name=name)
        if allow_head:
            self.add_route("HEAD", path, handler)

    def add_post(self, path: str, handler: Callable[[Request], Awaitable[Any]]) -> None:
        """POST at ``path``."""
        self.add_route("POST", path, handler)

    def add_put(self, path: str, handler: Callable[[Request], Awaitable[Any]]) -> None:
        """PUT at ``path``."""
        self.add_route("PUT", path, handler)

    def add_patch(self, path: str, handler: Callable[[Request], Awaitable[Any]]) -> None:
        """PATCH at ``path``."""
        self.add_route("PATCH", path, handler)

    def add_delete(self, path: str, handler: Callable[[Request], Awaitable[Any]]) -> None:
        """DELETE at ``path``."""
        self.add_route("DELETE", path, handler)

    def add_static(self, prefix: str, path: str, **kwargs: Any) -> None:
        """The files under directory ``path`` at URL ``prefix``."""
        self.app.web.add_static(prefix, path, **kwargs)


# ---------------------------------------------------------------------- decorators


def page(
    app: App,
    path: str,
    *,
    base: type[View] = View,
    cors_options: Any = None,
    name: str | None = None,
) -> Callable[[Any], type[View]]:
    """``@app.page(path)``: serve a View subclass, or an ``async def view(self, request,
    **params)`` function as a View's ``get``, at ``path``; the decorated name becomes the
    View class, as in Faust."""

    def decorate(fun: Any) -> type[View]:
        if inspect.isclass(fun):
            if not issubclass(fun, View):
                raise TypeError(
                    f"@app.page on class {fun.__name__}: it must subclass streamlog's View "
                    "(faust.web.View)"
                )
            view_cls: type[View] = fun
        else:
            view_cls = (base if base is not None else View).from_handler(fun)
        view_cls.view_name = name or view_cls.__name__
        view_cls.view_path = path
        app.web.add_view(view_cls, cors_options=cors_options)
        return view_cls

    return decorate


def _key_source(
    kind: str,
    shard_param: str | None,
    query_param: str | None,
    match_info: str | None,
    exact_key: str | None,
) -> str | None:
    if shard_param is not None:
        warnings.warn(
            DeprecationWarning(f"{kind}(shard_param=) is deprecated: use query_param="),
            stacklevel=3,
        )
        if query_param:
            raise TypeError(f"{kind}: give shard_param or query_param, not both")
        query_param = shard_param
    if query_param is None and match_info is None and exact_key is None:
        raise TypeError(f"{kind} needs one of query_param, shard_param, match_info or exact_key")
    return query_param


def _request_key(
    request: Request, exact_key: str | None, match_info: str | None, query_param: str | None
) -> str:
    if exact_key:
        return exact_key
    if match_info:
        try:
            return str(request.match_info[match_info])
        except KeyError:
            raise ServerError(f"the route's path has no parameter {{{match_info}}}") from None
    if query_param is None:  # _key_source made sure one is given
        raise ServerError("no key source")
    try:
        return request.query[query_param]
    except KeyError:
        raise ValidationError(f"missing query parameter {query_param!r}") from None


def table_route(
    app: App,
    table: Any,
    shard_param: str | None = None,
    *,
    query_param: str | None = None,
    match_info: str | None = None,
    exact_key: str | None = None,
) -> Callable[[ViewHandler], ViewHandler]:
    """``@app.table_route(table=..., match_info=/query_param=/exact_key=)``: run the view
    on the worker holding the request's key of ``table`` (module docstring)."""
    query_param = _key_source("table_route", shard_param, query_param, match_info, exact_key)
    table_name: str = table.name

    def decorate(fun: ViewHandler) -> ViewHandler:
        @wraps(fun)
        async def routed(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            key = _request_key(request, exact_key, match_info, query_param)
            try:
                return await app.router.route_req(table_name, key, view.web, request)
            except SameNode:
                return await fun(view, request, *args, **kwargs)

        return routed

    return decorate


def topic_route(
    app: App,
    topic: Topic | str,
    shard_param: str | None = None,
    *,
    query_param: str | None = None,
    match_info: str | None = None,
    exact_key: str | None = None,
) -> Callable[[ViewHandler], ViewHandler]:
    """``@app.topic_route(topic=..., match_info=/query_param=/exact_key=)``: run the view
    on the worker holding the partition of ``topic`` the request's key goes to."""
    query_param = _key_source("topic_route", shard_param, query_param, match_info, exact_key)
    if isinstance(topic, str):
        topic = app.topic(topic)

    def decorate(fun: ViewHandler) -> ViewHandler:
        @wraps(fun)
        async def routed(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            key = _request_key(request, exact_key, match_info, query_param)
            try:
                return await app.router.route_topic_req(topic, key, view.web, request)
            except SameNode:
                return await fun(view, request, *args, **kwargs)

        return routed

    return decorate
