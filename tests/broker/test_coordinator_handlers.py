"""The group API handlers over a real log, at the lowest and highest versions we serve.

Each request is built with ``build_message``, encoded and decoded as the server would,
handed to its handler, and the response encoded and decoded again, so what is checked
is what a client would read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from streamlog.broker.config import BrokerConfig
from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.coordinator import GroupCoordinator
from streamlog.broker.handlers import groups
from streamlog.log.clock import SystemClock
from streamlog.log.manager import LogManager
from streamlog.protocol import (
    ApiKey,
    ErrorCode,
    build_message,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_class,
)

T = TypeVar("T")

HANDLERS = {
    ApiKey.FIND_COORDINATOR: groups.handle_find_coordinator,
    ApiKey.JOIN_GROUP: groups.handle_join_group,
    ApiKey.SYNC_GROUP: groups.handle_sync_group,
    ApiKey.HEARTBEAT: groups.handle_heartbeat,
    ApiKey.LEAVE_GROUP: groups.handle_leave_group,
    ApiKey.OFFSET_COMMIT: groups.handle_offset_commit,
    ApiKey.OFFSET_FETCH: groups.handle_offset_fetch,
    ApiKey.LIST_GROUPS: groups.handle_list_groups,
    ApiKey.DESCRIBE_GROUPS: groups.handle_describe_groups,
}

PEER = "127.0.0.1:50123"
RANGE_META = b"\x00\x01\x00\x00\x00\x01\x00\x06orders\xff\xff\xff\xff"


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


async def call(
    ctx: BrokerContext, api_key: ApiKey, version: int, /, client_id: str = "tester", **fields: Any
) -> Any:
    request = build_message(request_class(api_key, version), **fields)
    frame = encode_request(request, correlation_id=7, client_id=client_id)
    decoded = decode_request(frame[4:])
    response = await HANDLERS[api_key](ctx, Session(peer=PEER), decoded)
    assert response is not None
    correlation_id, parsed = decode_response(
        encode_response(decoded, response)[4:], api_key, version
    )
    assert correlation_id == 7
    return parsed


async def stop(ctx: BrokerContext) -> None:
    assert ctx.coordinator is not None
    await ctx.coordinator.stop()


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[BrokerContext]:
    manager = LogManager.open(str(tmp_path / "data"), offsets_topic_partitions=3)
    manager.create_topic("orders", 3)
    config = BrokerConfig(
        node_id=7,
        advertised_host="broker.example",
        group_min_session_timeout_ms=10,
        group_initial_rebalance_delay_ms=0,
    )
    context = BrokerContext(
        config=config, log=manager, clock=SystemClock(), cluster_id="test", port=9092
    )
    context.coordinator = GroupCoordinator(context)
    yield context
    manager.close()


def codes(response: Any) -> list[tuple[str, int, int]]:
    """(topic, partition, error code) of an OffsetCommit response."""
    return [
        (t.name, p.partition_index, int(p.error_code))
        for t in response.topics
        for p in t.partitions
    ]


# -- FindCoordinator --------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_find_coordinator_names_this_broker(ctx: BrokerContext, version: int) -> None:
    r = run(lambda: call(ctx, ApiKey.FIND_COORDINATOR, version, key="g"))
    assert (r.error_code, r.node_id, r.host, r.port) == (ErrorCode.NONE, 7, "broker.example", 9092)


def test_find_coordinator_v4_answers_each_key(ctx: BrokerContext) -> None:
    r = run(lambda: call(ctx, ApiKey.FIND_COORDINATOR, 4, key_type=0, coordinator_keys=["a", "b"]))
    assert [(c.key, c.error_code, c.node_id, c.host, c.port) for c in r.coordinators] == [
        ("a", ErrorCode.NONE, 7, "broker.example", 9092),
        ("b", ErrorCode.NONE, 7, "broker.example", 9092),
    ]


@pytest.mark.parametrize("version", [1, 4])
def test_find_coordinator_has_no_transaction_coordinator(ctx: BrokerContext, version: int) -> None:
    fields: dict[str, Any] = {"key_type": 1}
    fields.update({"coordinator_keys": ["tx"]} if version >= 4 else {"key": "tx"})
    r = run(lambda: call(ctx, ApiKey.FIND_COORDINATOR, version, **fields))
    entry = r.coordinators[0] if version >= 4 else r
    assert (entry.error_code, entry.node_id) == (ErrorCode.COORDINATOR_NOT_AVAILABLE, -1)


# -- a group's life, oldest and newest versions -----------------------------------------


def test_group_lifecycle_at_the_lowest_versions(ctx: BrokerContext) -> None:
    async def scenario() -> None:
        join = await call(
            ctx,
            ApiKey.JOIN_GROUP,
            0,
            client_id="old-client",
            group_id="g",
            session_timeout=10_000,
            member_id="",
            protocol_type="consumer",
            protocols=[{"name": "range", "metadata": RANGE_META}],
        )
        assert join.error_code == ErrorCode.NONE
        me = join.member_id
        assert me.startswith("old-client-")
        assert (join.generation_id, join.protocol_name, join.leader) == (1, "range", me)
        assert [(m.member_id, m.metadata) for m in join.members] == [(me, RANGE_META)]

        sync = await call(
            ctx,
            ApiKey.SYNC_GROUP,
            0,
            group_id="g",
            generation_id=1,
            member_id=me,
            assignments=[{"member_id": me, "assignment": b"my-partitions"}],
        )
        assert (sync.error_code, sync.assignment) == (ErrorCode.NONE, b"my-partitions")
        beat = await call(ctx, ApiKey.HEARTBEAT, 0, group_id="g", generation_id=1, member_id=me)
        assert beat.error_code == ErrorCode.NONE

        commit = await call(
            ctx,
            ApiKey.OFFSET_COMMIT,
            2,
            group_id="g",
            generation_id_or_member_epoch=1,
            member_id=me,
            retention_time=-1,
            topics=[
                {
                    "name": "orders",
                    "partitions": [
                        {"partition_index": 0, "committed_offset": 10, "committed_metadata": None},
                        {"partition_index": 2, "committed_offset": 3, "committed_metadata": "m"},
                    ],
                }
            ],
        )
        assert codes(commit) == [("orders", 0, 0), ("orders", 2, 0)]
        fetch = await call(
            ctx,
            ApiKey.OFFSET_FETCH,
            1,
            group_id="g",
            topics=[{"name": "orders", "partition_indexes": [0, 1, 2]}],
        )
        assert [
            (p.partition_index, p.committed_offset, p.metadata, p.error_code)
            for p in fetch.topics[0].partitions
        ] == [(0, 10, "", 0), (1, -1, "", 0), (2, 3, "m", 0)]

        described = await call(ctx, ApiKey.DESCRIBE_GROUPS, 0, groups=["g", "unknown"])
        g, unknown = described.groups
        assert (g.error_code, g.group_state, g.protocol_type, g.protocol_data) == (
            ErrorCode.NONE,
            "Stable",
            "consumer",
            "range",
        )
        (m,) = g.members
        assert (m.member_id, m.client_id, m.client_host) == (me, "old-client", PEER)
        assert (m.member_metadata, m.member_assignment) == (RANGE_META, b"my-partitions")
        assert (unknown.error_code, unknown.group_state, unknown.members) == (
            ErrorCode.NONE,
            "Dead",
            (),
        )
        listed = await call(ctx, ApiKey.LIST_GROUPS, 0)
        assert [(x.group_id, x.protocol_type) for x in listed.groups] == [("g", "consumer")]

        left = await call(ctx, ApiKey.LEAVE_GROUP, 0, group_id="g", member_id=me)
        assert left.error_code == ErrorCode.NONE
        again = await call(ctx, ApiKey.LEAVE_GROUP, 0, group_id="g", member_id=me)
        assert again.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        described = await call(ctx, ApiKey.DESCRIBE_GROUPS, 0, groups=["g"])
        assert (described.groups[0].group_state, described.groups[0].members) == ("Empty", ())
        await stop(ctx)

    run(scenario)


def test_group_lifecycle_at_the_highest_versions(ctx: BrokerContext) -> None:
    join_fields = {
        "group_id": "g",
        "session_timeout": 10_000,
        "rebalance_timeout": 20_000,
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [
            {"name": "cooperative-sticky", "metadata": b"coop"},
            {"name": "range", "metadata": RANGE_META},
        ],
        "reason": None,
    }

    async def scenario() -> None:
        first = await call(
            ctx, ApiKey.JOIN_GROUP, 9, client_id="rdkafka", member_id="", **join_fields
        )
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        assert first.member_id.startswith("rdkafka-")
        assert (first.generation_id, first.protocol_name, first.leader) == (-1, None, "")
        me = first.member_id

        join = await call(
            ctx, ApiKey.JOIN_GROUP, 9, client_id="rdkafka", member_id=me, **join_fields
        )
        assert (join.error_code, join.member_id, join.generation_id) == (ErrorCode.NONE, me, 1)
        assert (join.protocol_type, join.protocol_name, join.leader) == (
            "consumer",
            "cooperative-sticky",
            me,
        )
        assert join.skip_assignment is False
        assert [(m.member_id, m.group_instance_id, m.metadata) for m in join.members] == [
            (me, None, b"coop")
        ]

        sync_fields = {"group_id": "g", "generation_id": 1, "member_id": me}
        sync = await call(
            ctx,
            ApiKey.SYNC_GROUP,
            5,
            protocol_type="consumer",
            protocol_name="cooperative-sticky",
            assignments=[{"member_id": me, "assignment": b"A"}],
            **sync_fields,
        )
        assert (sync.error_code, sync.protocol_type, sync.protocol_name, sync.assignment) == (
            ErrorCode.NONE,
            "consumer",
            "cooperative-sticky",
            b"A",
        )
        wrong = await call(
            ctx, ApiKey.SYNC_GROUP, 5, protocol_name="range", assignments=[], **sync_fields
        )
        assert wrong.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        beat = await call(ctx, ApiKey.HEARTBEAT, 4, **sync_fields)
        assert beat.error_code == ErrorCode.NONE
        stale = await call(ctx, ApiKey.HEARTBEAT, 4, group_id="g", generation_id=0, member_id=me)
        assert stale.error_code == ErrorCode.ILLEGAL_GENERATION

        commit = await call(
            ctx,
            ApiKey.OFFSET_COMMIT,
            8,
            group_id="g",
            generation_id_or_member_epoch=1,
            member_id=me,
            group_instance_id=None,
            topics=[
                {
                    "name": "orders",
                    "partitions": [
                        {
                            "partition_index": 1,
                            "committed_offset": 77,
                            "committed_leader_epoch": 4,
                            "committed_metadata": "meta",
                        }
                    ],
                }
            ],
        )
        assert codes(commit) == [("orders", 1, 0)]
        await call(  # a second group with offsets only
            ctx,
            ApiKey.OFFSET_COMMIT,
            8,
            group_id="standalone",
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                {
                    "name": "orders",
                    "partitions": [
                        {"partition_index": 0, "committed_offset": 5, "committed_metadata": ""}
                    ],
                }
            ],
        )
        fetch = await call(
            ctx,
            ApiKey.OFFSET_FETCH,
            8,
            groups=[
                {"group_id": "g", "topics": None},
                {
                    "group_id": "standalone",
                    "topics": [{"name": "orders", "partition_indexes": [0, 2]}],
                },
                {"group_id": "", "topics": None},
            ],
            require_stable=True,
        )
        got = {
            g.group_id: (
                g.error_code,
                [
                    (t.name, p.partition_index, p.committed_offset, p.committed_leader_epoch,
                     p.metadata, p.error_code)
                    for t in g.topics
                    for p in t.partitions
                ],
            )
            for g in fetch.groups
        }  # fmt: skip
        assert got == {
            "g": (ErrorCode.NONE, [("orders", 1, 77, 4, "meta", 0)]),
            "standalone": (
                ErrorCode.NONE,
                [("orders", 0, 5, -1, "", 0), ("orders", 2, -1, -1, "", 0)],
            ),
            "": (ErrorCode.INVALID_GROUP_ID, []),
        }

        described = await call(
            ctx, ApiKey.DESCRIBE_GROUPS, 5, groups=["g"], include_authorized_operations=True
        )
        (g,) = described.groups
        assert (g.group_state, g.protocol_data, g.authorized_operations) == (
            "Stable",
            "cooperative-sticky",
            (1 << 3) | (1 << 6) | (1 << 8),
        )
        assert [(m.member_id, m.group_instance_id, m.member_assignment) for m in g.members] == [
            (me, None, b"A")
        ]
        listed = await call(ctx, ApiKey.LIST_GROUPS, 4, states_filter=[])
        assert [(x.group_id, x.protocol_type, x.group_state) for x in listed.groups] == [
            ("g", "consumer", "Stable"),
            ("standalone", "consumer", "Empty"),
        ]
        stable = await call(ctx, ApiKey.LIST_GROUPS, 4, states_filter=["stable"])
        assert [x.group_id for x in stable.groups] == ["g"]

        left = await call(
            ctx,
            ApiKey.LEAVE_GROUP,
            5,
            group_id="g",
            members=[
                {"member_id": me, "group_instance_id": None, "reason": "bye"},
                {"member_id": "ghost", "group_instance_id": None, "reason": None},
            ],
        )
        assert left.error_code == ErrorCode.NONE
        assert [(m.member_id, m.error_code) for m in left.members] == [
            (me, ErrorCode.NONE),
            ("ghost", ErrorCode.UNKNOWN_MEMBER_ID),
        ]
        await stop(ctx)

    run(scenario)


def test_two_members_rebalance_through_the_handlers(ctx: BrokerContext) -> None:
    """A librdkafka-style pair: JoinGroup v5 (MEMBER_ID_REQUIRED), SyncGroup v3."""

    async def join(client: str, member_id: str = "") -> Any:
        r = await call(
            ctx,
            ApiKey.JOIN_GROUP,
            5,
            client_id=client,
            group_id="pair",
            session_timeout=10_000,
            rebalance_timeout=5_000,
            member_id=member_id,
            group_instance_id=None,
            protocol_type="consumer",
            protocols=[{"name": "range", "metadata": client.encode()}],
        )
        if r.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            return await join(client, r.member_id)
        return r

    async def sync(member: str, generation: int, assignments: dict[str, bytes]) -> Any:
        return await call(
            ctx,
            ApiKey.SYNC_GROUP,
            3,
            group_id="pair",
            generation_id=generation,
            member_id=member,
            group_instance_id=None,
            assignments=[{"member_id": k, "assignment": v} for k, v in assignments.items()],
        )

    async def scenario() -> None:
        a = await join("a")
        assert (await sync(a.member_id, 1, {a.member_id: b"0,1,2"})).assignment == b"0,1,2"
        b_join = asyncio.ensure_future(join("b"))
        for _ in range(10):
            await asyncio.sleep(0)
        beat = await call(
            ctx, ApiKey.HEARTBEAT, 3, group_id="pair", generation_id=1, member_id=a.member_id
        )
        assert beat.error_code == ErrorCode.REBALANCE_IN_PROGRESS
        a2, b = await asyncio.gather(join("a", a.member_id), b_join)
        assert a2.generation_id == b.generation_id == 2
        assert a2.leader == b.leader == a.member_id
        assert [(m.member_id, m.metadata) for m in a2.members] == [
            (a.member_id, b"a"),
            (b.member_id, b"b"),
        ]
        assert b.members == ()
        b_sync = asyncio.ensure_future(sync(b.member_id, 2, {}))
        a_sync = await sync(a.member_id, 2, {a.member_id: b"0,1", b.member_id: b"2"})
        assert (a_sync.assignment, (await b_sync).assignment) == (b"0,1", b"2")
        await stop(ctx)

    run(scenario)


# -- errors -----------------------------------------------------------------------------


def test_offset_commit_reports_errors_per_partition(ctx: BrokerContext) -> None:
    def partitions(*indexes: int, metadata: str = "") -> list[dict[str, Any]]:
        return [
            {"partition_index": i, "committed_offset": 1, "committed_metadata": metadata}
            for i in indexes
        ]

    async def commit(group: str, topics: list[dict[str, Any]], generation: int = -1) -> Any:
        return await call(
            ctx,
            ApiKey.OFFSET_COMMIT,
            8,
            group_id=group,
            generation_id_or_member_epoch=generation,
            member_id="",
            topics=topics,
        )

    async def scenario() -> None:
        r = await commit(
            "g",
            [
                {"name": "orders", "partitions": partitions(0, 3)},
                {"name": "missing", "partitions": partitions(0)},
                {"name": "orders", "partitions": partitions(1, metadata="x" * 5000)},
            ],
        )
        assert codes(r) == [
            ("orders", 0, ErrorCode.NONE),
            ("orders", 3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            ("missing", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            ("orders", 1, ErrorCode.OFFSET_METADATA_TOO_LARGE),
        ]
        bad_group = await commit("", [{"name": "orders", "partitions": partitions(0)}])
        assert codes(bad_group) == [("orders", 0, ErrorCode.INVALID_GROUP_ID)]
        stale = await commit("h", [{"name": "orders", "partitions": partitions(0)}], 3)
        assert codes(stale) == [("orders", 0, ErrorCode.ILLEGAL_GENERATION)]

    run(scenario)


def test_offset_fetch_errors_and_defaults(ctx: BrokerContext) -> None:
    async def scenario() -> None:
        r = await call(
            ctx,
            ApiKey.OFFSET_FETCH,
            7,
            group_id="nobody-committed",
            topics=[{"name": "orders", "partition_indexes": [0]}, {"name": "missing",
                                                                  "partition_indexes": [5]}],
            require_stable=False,
        )  # fmt: skip
        assert r.error_code == ErrorCode.NONE
        assert [
            (t.name, p.partition_index, p.committed_offset, p.metadata, p.error_code)
            for t in r.topics
            for p in t.partitions
        ] == [("orders", 0, -1, "", 0), ("missing", 5, -1, "", 0)]
        everything = await call(ctx, ApiKey.OFFSET_FETCH, 2, group_id="nobody", topics=None)
        assert (everything.error_code, everything.topics) == (ErrorCode.NONE, ())
        bad = await call(
            ctx, ApiKey.OFFSET_FETCH, 2, group_id="", topics=[{"name": "orders",
                                                               "partition_indexes": [0]}]
        )  # fmt: skip
        assert bad.error_code == ErrorCode.INVALID_GROUP_ID
        assert bad.topics[0].partitions[0].error_code == ErrorCode.INVALID_GROUP_ID

    run(scenario)


def test_join_errors_through_the_handler(ctx: BrokerContext) -> None:
    async def join(version: int, **fields: Any) -> Any:
        values = {
            "group_id": "g",
            "session_timeout": 10_000,
            "rebalance_timeout": 10_000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        }
        values.update(fields)
        return await call(ctx, ApiKey.JOIN_GROUP, version, **values)

    async def scenario() -> None:
        assert (await join(0, session_timeout=5)).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
        assert (await join(9, group_id="")).error_code == ErrorCode.INVALID_GROUP_ID
        assert (await join(2)).error_code == ErrorCode.NONE
        inconsistent = await join(9, protocol_type="connect")
        assert (inconsistent.error_code, inconsistent.protocol_name) == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
            None,
        )
        assert (await join(6, member_id="ghost")).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        left = await call(
            ctx,
            ApiKey.LEAVE_GROUP,
            3,
            group_id="never",
            members=[{"member_id": "x", "group_instance_id": "i"}],
        )
        assert left.error_code == ErrorCode.NONE
        assert [(m.member_id, m.group_instance_id, m.error_code) for m in left.members] == [
            ("x", "i", ErrorCode.UNKNOWN_MEMBER_ID)
        ]
        await stop(ctx)

    run(scenario)


@pytest.mark.parametrize(
    ("key", "version", "fields"),
    [
        (ApiKey.JOIN_GROUP, 9, {"group_id": "g", "member_id": "", "protocol_type": "consumer"}),
        (ApiKey.SYNC_GROUP, 5, {"group_id": "g", "member_id": "m", "generation_id": 1}),
        (ApiKey.HEARTBEAT, 4, {"group_id": "g", "member_id": "m", "generation_id": 1}),
        (ApiKey.LIST_GROUPS, 4, {}),
        (ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g"]}),
        (ApiKey.OFFSET_FETCH, 3, {"group_id": "g", "topics": None}),
    ],
)
def test_without_a_coordinator_group_apis_say_coordinator_not_available(
    ctx: BrokerContext, key: ApiKey, version: int, fields: dict[str, Any]
) -> None:
    ctx.coordinator = None
    r = run(lambda: call(ctx, key, version, **fields))
    error = r.groups[0].error_code if key == ApiKey.DESCRIBE_GROUPS else r.error_code
    assert error == ErrorCode.COORDINATOR_NOT_AVAILABLE
