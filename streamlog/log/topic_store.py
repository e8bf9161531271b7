"""Durable topic metadata: one JSON file per topic under ``<data dir>/.topics/``.

A topic exists exactly when its metadata file exists; the file is written atomically
(temp file, fsync, rename, fsync directory), which makes it the commit point of create,
add-partitions and delete. Partition directories not backed by a metadata file are
leftovers of an interrupted create or delete and are removed at start.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field

from streamlog.log.checkpoint import fsync_directory

__all__ = ["TOPICS_DIR", "TopicRecord", "TopicStore"]

TOPICS_DIR = ".topics"
_DIR = TOPICS_DIR


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """What is persisted about a topic: its id, partition count and config overrides."""

    name: str
    partitions: int
    topic_id: str
    created_ms: int
    overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str, partitions: int, overrides: dict[str, str], now_ms: int) -> TopicRecord:
        return cls(name, partitions, str(uuid.uuid4()), now_ms, dict(overrides))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "name": self.name,
                "partitions": self.partitions,
                "topic_id": self.topic_id,
                "created_ms": self.created_ms,
                "configs": self.overrides,
            },
            sort_keys=True,
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> TopicRecord:
        data = json.loads(text)
        return cls(
            data["name"],
            int(data["partitions"]),
            data["topic_id"],
            int(data["created_ms"]),
            {str(k): str(v) for k, v in data.get("configs", {}).items()},
        )


class TopicStore:
    def __init__(self, data_dir: str) -> None:
        self.directory = os.path.join(data_dir, _DIR)
        os.makedirs(self.directory, exist_ok=True)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name + ".json")

    def load_all(self) -> dict[str, TopicRecord]:
        topics: dict[str, TopicRecord] = {}
        for entry in os.listdir(self.directory):
            path = os.path.join(self.directory, entry)
            if entry.endswith(".tmp"):
                os.unlink(path)
                continue
            if not entry.endswith(".json"):
                continue
            with open(path, encoding="utf-8") as f:
                record = TopicRecord.from_json(f.read())
            topics[record.name] = record
        return topics

    def save(self, record: TopicRecord) -> None:
        path = self._path(record.name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(record.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(self.directory)

    def remove(self, name: str) -> None:
        os.unlink(self._path(name))
        fsync_directory(self.directory)
