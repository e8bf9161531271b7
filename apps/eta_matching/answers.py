"""Each request's answer, kept an hour (event time) so a request seen again is not matched
again: a streamlog tumbling-window table, whose expiry forgets old answers."""

from __future__ import annotations

from typing import Any


class TableAnswers:
    """Reads and writes at the current event's time: call it from an agent only.

    ``table`` is ``app.Table(..., default=dict).tumbling(size, expires=...)``: a copy of a
    request carries the request's own timestamp, so it finds the window its first copy
    wrote; the window expires ``expires`` after its end.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, request_id: str) -> dict[str, Any] | None:
        return self.table[request_id].current() or None

    def put(self, request_id: str, answer: dict[str, Any]) -> None:
        self.table[request_id] = answer


class MemoryAnswers(dict[str, dict[str, Any]]):
    """The rule tests' answers: a dict that never forgets."""

    def put(self, request_id: str, answer: dict[str, Any]) -> None:
        self[request_id] = answer
