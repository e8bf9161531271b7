"""The window kinds: which stored windows an event updates, and how reads find them.

* ``Aligned``: tumbling and hopping windows ``[start, start + size)``, epoch-aligned,
  stored under ``window_key(raw_key, start)``; ``Tumbling`` is its one-window fast path;
* ``Sliding``: Kafka Streams' sliding windows, stored under the start, the value
  prefixed by the latest record timestamp the window holds;
* ``Sessions``: stored under the session's end, the value prefixed by its start.

Each fulfils ``WindowKind`` (``base.py``), the contract the engine relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamlog.dsl.windows.kinds.aligned import Aligned, Tumbling
from streamlog.dsl.windows.kinds.base import Op, PartitionWindows, WindowKind, WindowValues
from streamlog.dsl.windows.kinds.sessions import Sessions
from streamlog.dsl.windows.kinds.sliding import Sliding
from streamlog.state.windows import HoppingWindow, SessionWindow, SlidingWindow, TumblingWindow

__all__ = [
    "Aligned",
    "Tumbling",
    "Sliding",
    "Sessions",
    "WindowKind",
    "WindowValues",
    "PartitionWindows",
    "Op",
    "kind_for",
]


def kind_for(
    window: TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow,
    merge: Callable[[Any, Any], Any],
) -> WindowKind:
    """The kind that stores ``window``'s windows (``merge`` is for sessions)."""
    if isinstance(window, SessionWindow):
        return Sessions(window, merge)
    if isinstance(window, SlidingWindow):
        return Sliding(window)
    return Tumbling(window) if window.step == window.size else Aligned(window)
