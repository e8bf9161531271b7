"""One set of wake-ups for a worker's log and the Kafka listener that serves it.

A ``streamlog worker`` on ``file://`` serves its log to other processes through a broker
sharing its ``LogManager`` (``worker._start_listener``). The worker's own producers wake
its consumers through the embedded transport's ``Notifier``; the broker's produce handler
wakes its waiting fetches through its ``Waiters``. Two separate sets meant that an output
the worker appended did not wake a fetch waiting in the listener (a reader of the app's
outputs waited out its whole ``fetch.max.wait.ms``, ~0.3-0.5 s per answer), nor a record
produced through the listener a consumer of the worker. Both sides key a partition as
``(topic, partition)``, so the broker can use the worker's notifier directly.

Here in ``cli`` because it joins two layers that may not import each other (the broker
and the transport).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamlog.transport.embedded.wakeup import Notifier

__all__ = ["SharedWakeups"]


class SharedWakeups:
    """The broker's ``Waiters`` on the embedded transport's ``Notifier``."""

    __slots__ = ("_notifier",)

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def notify(self, topic: str, partition: int) -> None:
        self._notifier.notify((topic, partition))

    def notify_all(self) -> None:
        self._notifier.notify_all()

    async def wait_any(self, keys: Iterable[tuple[str, int]], timeout_s: float) -> bool:
        return await self._notifier.wait(keys, timeout_s)
