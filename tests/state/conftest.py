"""Fixtures for the state tests: store partitions of each kind, and a bounded runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from streamlog.state.memory_store import MemoryStorePartition
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.state.stores import StorePartition
from streamlog.transport import Transport, open_transport

T = TypeVar("T")

STORE_KINDS = ("memory", "rocksdb")
RUN_TIMEOUT_S = 60.0


def run(coro: Coroutine[Any, Any, T], timeout: float = RUN_TIMEOUT_S) -> T:
    """Run ``coro`` on a fresh event loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def started_transport(url: str = "memory://") -> AsyncIterator[Transport]:
    """A started transport for ``url``, closed on exit."""
    transport = open_transport(url)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.close()


class StoreFactory:
    """Opens store partitions of one kind by name. RocksDB ones live in
    ``directory/<name>``, so the same name reopens the same database."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.opened: list[StorePartition] = []

    @property
    def persistent(self) -> bool:
        return self.kind == "rocksdb"

    def __call__(self, name: str = "p0") -> StorePartition:
        store: StorePartition
        if self.kind == "memory":
            store = MemoryStorePartition()
        else:
            store = RocksDBStorePartition(str(self.directory / name))
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=STORE_KINDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    factory = StoreFactory(request.param, tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture
def store(make_store: StoreFactory) -> StorePartition:
    """One open store partition of each kind."""
    return make_store("p0")


async def read_topic(consumer: Any, tp: Any, count: int, timeout_ms: int = 5000) -> list[Any]:
    """The first ``count`` records of ``tp`` from its beginning (assigns ``consumer``)."""
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while len(records) < count:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"read {len(records)} of {count} records of {tp}")
        fetched = await consumer.getmany(timeout_ms=int(remaining * 1000))
        records.extend(fetched.get(tp, []))
    return records
