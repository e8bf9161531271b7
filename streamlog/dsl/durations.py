"""Durations as Faust takes them (seconds as int or float, or a ``timedelta``), converted
once, the same way everywhere, to the whole milliseconds Kafka configs, windows and joins
work in."""

from __future__ import annotations

from datetime import timedelta

from streamlog.dsl.errors import ImproperlyConfigured

__all__ = ["Seconds", "to_ms"]

Seconds = int | float | timedelta
"""Faust's durations: seconds (int or float) or a ``timedelta``."""

_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: Seconds, what: str) -> int:
    """``value`` as whole milliseconds; ``ImproperlyConfigured`` naming ``what`` if it is
    not a duration.

    Rounded, not truncated: ``0.57 * 1000`` is ``569.999...`` in binary floating point,
    and a window or join one millisecond short silently drops records at its edge.
    """
    if isinstance(value, timedelta):
        return round(value / _ONE_MS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImproperlyConfigured(
            f"{what} must be seconds (int or float) or a timedelta: {value!r}"
        )
    return round(value * 1000)
