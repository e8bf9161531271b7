"""Which worker holds what: the card a worker's web server advertises to its group, and the
group's answer read back as a directory of workers and their partitions.

Every worker of an app is a member of one consumer group (the app id). A worker whose web
server runs advertises, as its subscription's user data (``Conductor.advertise``), a
small JSON card: its URL and an id drawn for this run of the server. The transport gives
back every advertising member with the partitions the last rebalance gave it
(``GroupPeer``): over Kafka's protocol the group's leader copies them into every member's
assignment, as Kafka Streams' leader shares each member's ``application.server``, so
every worker holds the same directory for the same generation, with no extra topic and
no extra round trip.

A table's partition N is held by the worker that holds partition N of the app's source
topics (``App.prepare_partitions`` opens table partitions by those numbers; the leader
topic's partition is not a table partition), so the directory answers "who holds table
partition N" from the topic partitions alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from streamlog.transport.types import GroupPeer, TopicPartition

__all__ = ["CARD_KIND", "WebWorker", "Directory", "encode_card"]

log = logging.getLogger(__name__)

CARD_KIND = "streamlog.web/1"  # what a card says it is, so other user data is told apart


def encode_card(url: str, worker_id: str) -> bytes:
    """The user data a worker's web server advertises: its URL and its run's id."""
    return json.dumps({"kind": CARD_KIND, "url": url, "id": worker_id}).encode()


@dataclass(frozen=True, slots=True)
class WebWorker:
    """A worker of the app that serves web requests: its URL, its run's id and the topic
    partitions the group gave it."""

    url: str
    id: str
    partitions: frozenset[TopicPartition]
    standby: frozenset[TopicPartition] = frozenset()  # kept warm as a standby replica

    def table_partitions(self, leader_topic: str) -> set[int]:
        """The table partitions it holds: the numbers of its source topic partitions."""
        return {tp.partition for tp in self.partitions if tp.topic != leader_topic}


def _read_card(peer: GroupPeer) -> WebWorker | None:
    try:
        card = json.loads(peer.user_data)
        if not isinstance(card, dict) or card.get("kind") != CARD_KIND:
            return None
        url, worker_id = card["url"], card["id"]
        if not isinstance(url, str) or not isinstance(worker_id, str):
            return None
    except (ValueError, KeyError, UnicodeDecodeError):
        return None
    return WebWorker(url.rstrip("/"), worker_id, peer.partitions, peer.standby)


class Directory:
    """The workers that advertised a web card, as of one rebalance, and lookups over them.

    Members whose user data is not a card (another kind of client, a newer card) are left
    out: a key they hold has no known owner, which callers answer with 503.
    """

    def __init__(self, workers: Iterable[WebWorker]) -> None:
        self.workers: tuple[WebWorker, ...] = tuple(sorted(workers, key=lambda w: w.url))

    @classmethod
    def from_peers(cls, peers: Iterable[GroupPeer]) -> Directory:
        workers = []
        for peer in peers:
            worker = _read_card(peer)
            if worker is None:
                log.debug("group member %s advertised no web card", peer.member_id)
            else:
                workers.append(worker)
        return cls(workers)

    def __len__(self) -> int:
        return len(self.workers)

    def by_id(self, worker_id: str) -> WebWorker | None:
        """The worker whose server run drew ``worker_id``."""
        for worker in self.workers:
            if worker.id == worker_id:
                return worker
        return None

    def owner_of(self, tp: TopicPartition) -> WebWorker | None:
        """The worker holding topic partition ``tp`` (None: nobody known)."""
        for worker in self.workers:
            if tp in worker.partitions:
                return worker
        return None

    def holder_of_table_partition(self, number: int, leader_topic: str) -> WebWorker | None:
        """The worker holding table partition ``number`` (None: nobody known). Tables
        co-partitioned with their source topics (checked at start) have one holder."""
        for worker in self.workers:
            if number in worker.table_partitions(leader_topic):
                return worker
        return None
