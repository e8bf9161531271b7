"""aiokafka (the client faust-streaming runs on) against ``streamlog broker``."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def test_aiokafka_producer_group_consumer_and_commits(shared_broker) -> None:
    async def scenario() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=shared_broker.bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(200):
                await producer.send("aio-t", key=b"k%d" % (i % 7), value=b"%d" % i)
            await producer.flush()
        finally:
            await producer.stop()

        async def read(count: int) -> list[int]:
            consumer = AIOKafkaConsumer(
                "aio-t",
                bootstrap_servers=shared_broker.bootstrap,
                group_id="aio-g",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=6000,
                heartbeat_interval_ms=500,
            )
            await consumer.start()
            values: list[int] = []
            try:
                while len(values) < count:
                    batches = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                    for messages in batches.values():
                        values.extend(int(m.value) for m in messages)
                await consumer.commit()
                committed = await consumer.committed(TopicPartition("aio-t", 0))
                assert committed == len(values) or count < 200
            finally:
                await consumer.stop()
            return values

        assert sorted(await read(200)) == list(range(200))
        producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
        await producer.start()
        try:
            for i in range(200, 210):
                await producer.send_and_wait("aio-t", value=b"%d" % i)
        finally:
            await producer.stop()
        assert sorted(await read(10)) == list(range(200, 210))

    asyncio.run(asyncio.wait_for(scenario(), 120))
