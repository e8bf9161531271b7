"""Errors raised through the transport interface, whichever implementation is used."""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "TransportError",
    "BrokerUnavailableError",
    "UnknownTopicError",
    "TopicExistsError",
    "InvalidPartitionsError",
    "InvalidConfigError",
    "OffsetOutOfRangeError",
    "RecordTooLargeError",
    "GroupError",
    "RebalanceInProgressError",
    "MembershipLostError",
    "StaleGenerationError",
    "ProduceError",
    "RecordRejectedError",
    "CorruptBatchError",
    "UnsupportedBrokerURLError",
    "TransportClosedError",
    "MalformedMemberDataError",
    "SecurityConfigError",
    "AuthenticationError",
    "TlsError",
    "TransactionError",
    "TransactionStateError",
    "TransactionAbortableError",
    "ProducerFencedError",
]


class TransportError(StreamlogError):
    """Base of every error a transport raises on purpose."""


class UnsupportedBrokerURLError(TransportError, ValueError):
    """A broker URL that is not memory://, file://PATH or kafka://HOST:PORT[,...]."""


class BrokerUnavailableError(TransportError):
    """No broker of the URL answered (connection refused, timed out, closed)."""


class SecurityConfigError(TransportError, ValueError):
    """SASL or TLS settings that cannot work (an unknown mechanism, a missing password,
    TLS files for a URL without TLS, a certificate file that does not load)."""


class AuthenticationError(TransportError):
    """The broker refused the client's SASL login; the message names the mechanism, the
    user and the broker's own words. Not retried: the same credentials fail again."""


class TlsError(TransportError):
    """The TLS handshake failed in a way retrying does not cure: the broker's certificate
    is not trusted or does not name the host."""


class TransportClosedError(TransportError):
    """The producer, consumer or transport was closed."""


class UnsupportedBrokerFeatureError(TransportError):
    """The broker lacks an API (per its ApiVersions answer) or a behaviour streamlog
    relies on (found by a check); the message names it. Kafka-compatible brokers written
    by others (Tansu) implement part of Kafka: this says which part is missing instead of
    going wrong later."""


class UnknownTopicError(TransportError):
    pass


class TopicExistsError(TransportError):
    pass


class InvalidPartitionsError(TransportError):
    pass


class InvalidConfigError(TransportError):
    pass


class OffsetOutOfRangeError(TransportError):
    pass


class RecordTooLargeError(TransportError):
    pass


class ProduceError(TransportError):
    """A record could not be written (the message carries the broker's error)."""


class RecordRejectedError(ProduceError):
    """The broker refused the records for good (an invalid timestamp, a compacted topic's
    record without a key, a corrupt record...): sending them again cannot succeed, unlike a
    ``ProduceError`` for an error the producer retried until it gave up."""


class CorruptBatchError(TransportError):
    """A fetched batch that cannot be decoded: corrupt, or compressed records that inflate
    past the consumer's bound (decompression stops there).

    The consumer's position stays at the batch (``offset``), so polling raises again, as
    Kafka's consumers do; records before it were handed out. To go on without the batch,
    ``seek`` the partition to ``next_offset``.
    """

    def __init__(self, topic: str, partition: int, offset: int, next_offset: int, reason: str):
        super().__init__(
            f"{topic}[{partition}]: the batch at offsets {offset}..{next_offset - 1} cannot be "
            f"decoded ({reason}); seek to {next_offset} to skip it"
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.next_offset = next_offset


class GroupError(TransportError):
    """Consumer-group membership or offset commit failed."""


class RebalanceInProgressError(GroupError):
    """A commit was refused because the group is rebalancing; rejoin and retry."""


class MembershipLostError(RebalanceInProgressError):
    """The group no longer knows this member or its generation (its session expired, the
    coordinator restarted): its partitions may belong to another member already."""


class StaleGenerationError(MembershipLostError):
    """The group knows this member but has moved to a newer generation without it."""


class MalformedMemberDataError(TransportError, ValueError):
    """Subscription or assignment bytes that do not follow the consumer protocol."""


class TransactionError(TransportError):
    """A transactional producer's request failed (the message names the broker's error):
    for example the broker refused the transactional id (a broker without transactions
    answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED to InitProducerId)."""


class TransactionStateError(TransactionError):
    """A transaction method called out of order: ``begin_transaction`` twice, a send or
    ``send_offsets_to_transaction`` outside a transaction, a commit with none open, any
    call before ``init_transactions``. Nothing was sent; the transaction is unchanged."""


class TransactionAbortableError(TransactionError):
    """The open transaction cannot commit (a record or an offset commit in it failed);
    ``abort_transaction`` ends it and the producer can begin another. The cause is
    chained."""


class ProducerFencedError(TransactionError):
    """Another producer with the same transactional id has initialised since this one
    (the coordinator answered INVALID_PRODUCER_EPOCH or PRODUCER_FENCED): this producer
    can do nothing more and must be closed; its open transaction was aborted by the
    coordinator. Fatal, as in Kafka."""
