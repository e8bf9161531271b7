"""Cron schedules for ``@app.crontab``: parse a crontab expression, find its next firing.

Pure calendar arithmetic, no clock: the caller passes the current time in, so a timer
driven by a ``Clock`` (and a test driven by ``ManualClock``) decides when "now" is.

The accepted language is Vixie cron's five fields::

    minute  hour  day-of-month  month  day-of-week
    0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)

Each field is a comma-separated list of ``*``, ``N``, ``N-M``, each optionally followed by
``/STEP`` (``*/5``, ``1-10/2``; ``N/STEP`` means ``N-max/STEP``). Months and weekdays also
take three-letter English names in any case (``jan``, ``mon-fri``; ``sun`` ending a
range means 7, so ``fri-sun`` works). The shortcuts ``@hourly``, ``@daily``,
``@midnight``, ``@weekly``, ``@monthly``, ``@yearly`` and ``@annually`` stand for their
usual expansions.

Day matching follows Vixie cron: when both the day-of-month and the day-of-week field
are restricted, a day matches if *either* does (``0 0 1 * mon`` fires on the 1st and on
every Monday). A field counts as unrestricted when its text starts with ``*``, so
``*/2`` is unrestricted for this rule, again as in Vixie cron; then both must match.

Times are local wall-clock times in the crontab's zone (UTC unless given). Across DST
changes every matching local time fires at most once: a local time skipped by a
spring-forward does not fire at all, and one repeated by a fall-back fires at its first
occurrence only. (Vixie cron instead runs skipped fixed-time jobs after the jump and
lets ``*``-hour jobs run through the repeated hour again.)
"""

from __future__ import annotations

import bisect
import calendar
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamlog.dsl.errors import CrontabError

__all__ = ["Crontab", "CrontabError"]

_MINUTE = timedelta(minutes=1)
# The Gregorian calendar repeats every 400 years, so a schedule that has not fired by
# then never will; parsing rejects the schedules that cannot fire, so this is a backstop.
_SEARCH_YEARS = 401


_SHORTCUTS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _FieldSpec("minute", 0, 59, {}),
    _FieldSpec("hour", 0, 23, {}),
    _FieldSpec("day-of-month", 1, 31, {}),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 7, _DAY_NAMES),
)


class _FieldParser:
    """Parses one field's text into the set of values it selects."""

    def __init__(self, expr: str, spec: _FieldSpec) -> None:
        self.expr = expr
        self.spec = spec

    def error(self, message: str) -> CrontabError:
        return CrontabError(self.expr, message, self.spec.name)

    def parse(self, text: str) -> frozenset[int]:
        values: set[int] = set()
        for item in text.split(","):
            values.update(self._item(item))
        if self.spec.name == "day-of-week" and 7 in values:
            values.discard(7)
            values.add(0)
        return frozenset(values)

    def _item(self, item: str) -> range:
        if not item:
            raise self.error("empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
                raise self.error(f"step {step_text!r} in {item!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            low, high = self.spec.low, self.spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = self._value(first, item), self._value(last, item)
            if low > high and self.spec.name == "day-of-week" and last.lower() == "sun":
                high = 7  # "fri-sun": Sunday as the end of the week
            if low > high:
                raise self.error(f"range {item!r} runs backwards")
        else:
            low = self._value(base, item)
            high = self.spec.high if slash else low
        return range(low, high + 1, step)

    def _value(self, text: str, item: str) -> int:
        if _NUMBER.fullmatch(text):
            value = int(text)
        elif text.lower() in self.spec.names:
            value = self.spec.names[text.lower()]
        else:
            raise self.error(f"{text!r} in {item!r} is not a number or a known name")
        if not self.spec.low <= value <= self.spec.high:
            raise self.error(f"{value} in {item!r} is outside {self.spec.low}-{self.spec.high}")
        return value


def _resolve_tz(expr: str, tz: tzinfo | str | None) -> tzinfo:
    if tz is None:
        return UTC
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CrontabError(expr, f"unknown time zone {tz!r}") from exc
    return tz


class Crontab:
    """A parsed crontab expression in a time zone.

    The selected values are public, as sorted tuples: ``minutes``, ``hours``,
    ``days_of_month``, ``months``, and ``days_of_week`` (0 = Sunday ... 6 = Saturday).
    ``dom_restricted``/``dow_restricted`` say whether the day fields take part in the
    either-day rule (see the module docstring).
    """

    __slots__ = (
        "expr",
        "tz",
        "minutes",
        "hours",
        "days_of_month",
        "months",
        "days_of_week",
        "dom_restricted",
        "dow_restricted",
    )

    def __init__(self, expr: str, tz: tzinfo | str | None = None) -> None:
        self.expr = expr
        self.tz = _resolve_tz(expr, tz)
        text = expr.strip()
        if text.startswith("@"):
            if text.lower() not in _SHORTCUTS:
                raise CrontabError(expr, f"unknown shortcut {text!r}")
            text = _SHORTCUTS[text.lower()]
        fields = text.split()
        if len(fields) != len(_FIELDS):
            raise CrontabError(expr, f"expected 5 fields, got {len(fields)}")
        parsed = [
            _FieldParser(expr, spec).parse(f) for spec, f in zip(_FIELDS, fields, strict=True)
        ]
        self.minutes, self.hours, self.days_of_month, self.months, self.days_of_week = (
            tuple(sorted(values)) for values in parsed
        )
        self.dom_restricted = not fields[2].startswith("*")
        self.dow_restricted = not fields[4].startswith("*")
        self._check_can_fire()

    def __repr__(self) -> str:
        return f"Crontab({self.expr!r}, tz={self.tz!r})"

    def day_matches(self, day: date) -> bool:
        """Whether the schedule fires at some time on ``day``."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = day.isoweekday() % 7 in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, dt: datetime) -> datetime:
        """The first firing strictly after ``dt``, as an aware datetime in ``self.tz``.

        ``dt`` must be timezone-aware; it may be in any zone.
        """
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"next_after needs a timezone-aware datetime, got {dt!r}")
        after = dt.astimezone(UTC)
        local = dt.astimezone(self.tz)
        wall = local.replace(second=0, microsecond=0, tzinfo=None, fold=0) + _MINUTE
        limit = wall.year + _SEARCH_YEARS
        while True:
            wall = self._next_wall_time(wall, limit)
            instant = self._first_occurrence(wall)
            if instant is not None and instant.astimezone(UTC) > after:
                return instant
            wall += _MINUTE

    def seconds_until_next(self, now_epoch_s: float) -> float:
        """Seconds from ``now_epoch_s`` until the next firing strictly after it."""
        # truncate rather than let fromtimestamp round up past a firing time
        whole = math.floor(now_epoch_s)
        micros = math.floor((now_epoch_s - whole) * 1_000_000)
        now = datetime.fromtimestamp(whole, tz=UTC) + timedelta(microseconds=micros)
        fire = self.next_after(now)
        while fire.timestamp() <= now_epoch_s:
            fire = self.next_after(fire)
        return fire.timestamp() - now_epoch_s

    def _first_occurrence(self, wall: datetime) -> datetime | None:
        """The first instant the naive local time ``wall`` happens, or None if it doesn't."""
        instant = wall.replace(tzinfo=self.tz, fold=0)  # fold=0: the earlier of two
        round_trip = instant.astimezone(UTC).astimezone(self.tz)
        if round_trip.replace(tzinfo=None) != wall:
            return None  # inside a spring-forward gap
        return instant

    def _next_wall_time(self, start: datetime, limit_year: int) -> datetime:
        """The first naive local minute at or after ``start`` whose fields all match."""
        year, month, day, hour, minute = (
            start.year,
            start.month,
            start.day,
            start.hour,
            start.minute,
        )
        while True:
            if year > limit_year or year > 9999:
                raise CrontabError(self.expr, "never fires")
            if month not in self.months:
                later = bisect.bisect_left(self.months, month)
                if later == len(self.months):
                    year, month = year + 1, self.months[0]
                else:
                    month = self.months[later]
                day, hour, minute = 1, 0, 0
                continue
            if day > calendar.monthrange(year, month)[1]:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute = 1, 0, 0
                continue
            if not self.day_matches(date(year, month, day)):
                day, hour, minute = day + 1, 0, 0
                continue
            later = bisect.bisect_left(self.hours, hour)
            if later == len(self.hours):
                day, hour, minute = day + 1, 0, 0
                continue
            if self.hours[later] != hour:
                hour, minute = self.hours[later], 0
            later = bisect.bisect_left(self.minutes, minute)
            if later == len(self.minutes):
                hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, self.minutes[later])

    def _check_can_fire(self) -> None:
        """Reject schedules whose days never exist (``0 0 30 feb *``).

        When the day-of-week field is restricted alone or with day-of-month, some weekday
        comes round every month; otherwise a day-of-month must exist in a chosen month.
        Every valid date, Feb 29 included, falls on every weekday within 400 years.
        """
        if self.dow_restricted and self.dom_restricted:
            return
        longest = max(calendar.monthrange(2000, m)[1] for m in self.months)  # 2000: leap
        if self.days_of_month[0] > longest:
            raise CrontabError(
                self.expr,
                f"day {self.days_of_month[0]} never occurs in the chosen months",
                "day-of-month",
            )
