"""One handler per API key: ``async (ctx, session, request) -> response | None``.

A handler returns the kio response object for the request's version (None for a Produce
with acks=0, which gets no response). Errors it can express in the response it puts there;
anything it raises is logged by the connection and answered with UNKNOWN_SERVER_ERROR.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from streamlog.broker.context import BrokerContext, Session
from streamlog.protocol import ApiKey, DecodedRequest, ResponsePayload

__all__ = ["Handler", "handler_table"]

Handler = Callable[[BrokerContext, Session, DecodedRequest], Awaitable[ResponsePayload | None]]


def handler_table() -> dict[ApiKey, Handler]:
    """The handler of every API the broker serves."""
    from streamlog.broker.handlers import (
        admin,
        api_versions,
        fetch,
        groups,
        list_offsets,
        metadata,
        produce,
        producer_ids,
        sasl,
        transactions,
    )

    return {
        ApiKey.API_VERSIONS: api_versions.handle_api_versions,
        ApiKey.METADATA: metadata.handle_metadata,
        ApiKey.PRODUCE: produce.handle_produce,
        ApiKey.FETCH: fetch.handle_fetch,
        ApiKey.LIST_OFFSETS: list_offsets.handle_list_offsets,
        ApiKey.CREATE_TOPICS: admin.handle_create_topics,
        ApiKey.DELETE_TOPICS: admin.handle_delete_topics,
        ApiKey.CREATE_PARTITIONS: admin.handle_create_partitions,
        ApiKey.DESCRIBE_CONFIGS: admin.handle_describe_configs,
        ApiKey.INIT_PRODUCER_ID: producer_ids.handle_init_producer_id,
        ApiKey.FIND_COORDINATOR: groups.handle_find_coordinator,
        ApiKey.JOIN_GROUP: groups.handle_join_group,
        ApiKey.SYNC_GROUP: groups.handle_sync_group,
        ApiKey.HEARTBEAT: groups.handle_heartbeat,
        ApiKey.LEAVE_GROUP: groups.handle_leave_group,
        ApiKey.OFFSET_COMMIT: groups.handle_offset_commit,
        ApiKey.OFFSET_FETCH: groups.handle_offset_fetch,
        ApiKey.LIST_GROUPS: groups.handle_list_groups,
        ApiKey.DESCRIBE_GROUPS: groups.handle_describe_groups,
        ApiKey.SASL_HANDSHAKE: sasl.handle_sasl_handshake,
        ApiKey.SASL_AUTHENTICATE: sasl.handle_sasl_authenticate,
        ApiKey.ADD_PARTITIONS_TO_TXN: transactions.handle_add_partitions_to_txn,
        ApiKey.ADD_OFFSETS_TO_TXN: transactions.handle_add_offsets_to_txn,
        ApiKey.TXN_OFFSET_COMMIT: transactions.handle_txn_offset_commit,
        ApiKey.END_TXN: transactions.handle_end_txn,
        ApiKey.DESCRIBE_TRANSACTIONS: transactions.handle_describe_transactions,
        ApiKey.LIST_TRANSACTIONS: transactions.handle_list_transactions,
    }
