"""KIP-447's stable offsets over a real ``streamlog broker``: a read_committed member asks
for its committed offsets with ``require_stable``, so while a transaction holds offsets of
its partitions (sent with ``send_offsets_to_transaction``, not committed yet) it waits,
and then starts from the offsets that transaction committed; a read_uncommitted member
reads the stored offset at once. Without the wait, a partition's new owner would start
before a commit that is landing and process again what its outputs already hold."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from streamlog.transport import open_transport
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import BrokerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(str(tmp_path_factory.mktemp("stable") / "data")).start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.logs()


def test_a_read_committed_member_waits_for_offsets_a_transaction_holds(broker) -> None:
    async def body() -> tuple[int | None, bool, int | None]:
        transport = open_transport(f"kafka://{broker.bootstrap}")
        await transport.start()
        try:
            await transport.admin().create_topic("stable-src", 1)
            tp = TopicPartition("stable-src", 0)
            group = "stable-group"
            first = transport.consumer(group_id=group)
            await first.commit({tp: 5})
            await first.close()

            producer = transport.producer(transactional_id="stable-writer")
            await producer.init_transactions()
            producer.begin_transaction()
            await producer.send_offsets_to_transaction({tp: 9}, group)  # held, not committed

            uncommitted_reader = transport.consumer(group_id=group)
            at_once = await uncommitted_reader.committed(tp)
            await uncommitted_reader.close()

            stable_reader = transport.consumer(group_id=group, isolation_level="read_committed")
            waiting = asyncio.ensure_future(stable_reader.committed(tp))
            # time enough for a reader that does not wait to answer 5 before the commit
            await asyncio.sleep(0.3)
            waited = not waiting.done()
            await producer.commit_transaction()
            after = await asyncio.wait_for(waiting, 10)
            await stable_reader.close()
            await producer.close()
            return at_once, waited, after
        finally:
            await transport.close()

    at_once, waited, after = asyncio.run(asyncio.wait_for(body(), 45))
    assert at_once == 5  # the stored offset: read_uncommitted does not wait
    assert waited  # UNSTABLE_OFFSET_COMMIT while the transaction holds the offset
    assert after == 9  # then the transaction's offset
