"""The Kafka producer's batches without a broker: records encoded as they are added,
framed once with the producer's id and sequence, re-stamped byte for byte under a new
producer id, and the handles' metadata."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamlog.log.records import Compression, decode_batch, encode_batch
from streamlog.transport.kafka.batches import ProducerBatch, RecordFuture, restamp
from streamlog.transport.types import RecordMetadata, TopicPartition

TP = TopicPartition("t", 3)
ENTRIES: list[Any] = [
    (b"k0", b"v0", 1_700_000_000_000, ()),
    (None, b"v1" * 50, 1_700_000_000_007, [("h", b"x"), ("n", None)]),
    (b"k2", None, 1_699_999_999_990, ()),
]


def fill(batch: ProducerBatch) -> list[RecordFuture]:
    builder = batch.builder
    assert builder is not None
    return [builder.add(key, value, ts, headers) for key, value, ts, headers in ENTRIES]


@pytest.mark.parametrize("compression", list(Compression))
def test_restamp_gives_the_bytes_of_a_batch_framed_with_those_fields(
    compression: Compression,
) -> None:
    first = encode_batch(
        ENTRIES, compression=compression, producer_id=7, producer_epoch=0, base_sequence=40
    )
    again = encode_batch(
        ENTRIES, compression=compression, producer_id=1234, producer_epoch=2, base_sequence=0
    )
    assert restamp(first, 1234, 2, 0) == again
    header = decode_batch(restamp(first, 1234, 2, 0)).header  # the CRC checks out
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (1234, 2, 0)


def test_restamp_refuses_what_is_not_a_batch() -> None:
    with pytest.raises(ValueError, match="at least 61 bytes"):
        restamp(b"\0" * 60, 1, 0, 0)


def test_a_batch_is_framed_once_then_restamped() -> None:
    async def body() -> None:
        batch = ProducerBatch(TP, 1, 0.0, 120.0, 1 << 20)
        handles = fill(batch)
        assert [tuple(h)[1:] for h in handles] == [(i, e[2]) for i, e in enumerate(ENTRIES)]
        assert all(h[0] is batch for h in handles)
        assert batch.close() == 3
        assert (batch.count, batch.size) == (3, len(encode_batch(ENTRIES)))
        data = batch.encode(Compression.ZSTD, 7, 0, 40)
        assert batch.builder is None and batch.data is data
        assert data == encode_batch(
            ENTRIES, compression=Compression.ZSTD, producer_id=7, producer_epoch=0, base_sequence=40
        )
        # A new producer id: the kept bytes, re-stamped (what a retry under it sends).
        again = batch.encode(Compression.ZSTD, 8, 1, 0)
        assert again == encode_batch(
            ENTRIES,
            compression=Compression.ZSTD,
            producer_id=8,
            producer_epoch=1,
            base_sequence=0,
        )
        assert (batch.pid, batch.base_sequence) == (8, 0)

    asyncio.run(body())


def test_a_batch_with_no_records_cannot_be_sent() -> None:
    async def body() -> None:
        batch = ProducerBatch(TP, 1, 0.0, 120.0, 1 << 20)
        assert batch.close() == 0
        with pytest.raises(ValueError, match="at least one record"):
            batch.encode(Compression.NONE, -1, -1, -1)

    asyncio.run(body())


def test_a_full_batch_refuses_the_next_record_but_takes_a_large_first_one() -> None:
    async def body() -> None:
        batch = ProducerBatch(TP, 1, 0.0, 120.0, 200)
        builder = batch.builder
        assert builder is not None
        assert builder.add(None, b"x" * 500, 1, ()) is not None
        assert builder.full
        assert builder.add(None, b"y", 1, ()) is None
        assert batch.close() == 1

    asyncio.run(body())


def test_handles_read_offsets_and_timestamps_from_the_batch() -> None:
    async def body() -> None:
        batch = ProducerBatch(TP, 1, 0.0, 120.0, 1 << 20)
        handles = fill(batch)
        assert not handles[0].done()
        with pytest.raises(asyncio.InvalidStateError):
            handles[0].result()
        batch.done(100, -1)
        assert [await h for h in handles] == [
            RecordMetadata("t", 3, 100 + i, e[2]) for i, e in enumerate(ENTRIES)
        ]
        assert repr(handles[1]) == "<RecordFuture t-3 #1 done>"

        stamped = ProducerBatch(TP, 2, 0.0, 120.0, 1 << 20)
        handles = fill(stamped)
        stamped.done(5, 1_800_000_000_000)  # LogAppendTime: the broker's clock
        assert [h.result() for h in handles] == [
            RecordMetadata("t", 3, 5 + i, 1_800_000_000_000) for i in range(3)
        ]

        unacknowledged = ProducerBatch(TP, 3, 0.0, 120.0, 1 << 20)  # acks=0
        handles = fill(unacknowledged)
        unacknowledged.done(-1, -1)
        assert [h.result().offset for h in handles] == [-1, -1, -1]

        failed = ProducerBatch(TP, 4, 0.0, 120.0, 1 << 20)
        handles = fill(failed)
        failed.fail(RuntimeError("boom"))
        with pytest.raises(RuntimeError, match="boom"):
            await handles[2]

    asyncio.run(body())
