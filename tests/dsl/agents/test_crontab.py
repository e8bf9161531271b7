"""Crontab parsing and next-firing times: exact cases, DST, and a brute-force scan."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.dsl.agents.crontab import Crontab, CrontabError

LONDON = ZoneInfo("Europe/London")
MINUTE = timedelta(minutes=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def fires(expr: str, after: datetime, tz: str | None = None, count: int = 1) -> list[datetime]:
    """The next ``count`` firings after ``after``, in UTC so comparisons ignore folds."""
    crontab = Crontab(expr, tz=tz)
    found = []
    for _ in range(count):
        after = crontab.next_after(after)
        assert after.tzinfo is crontab.tz
        found.append(after)
    return [f.astimezone(UTC) for f in found]


# -- parsing ----------------------------------------------------------------------------


def test_fields_expand_to_their_values() -> None:
    c = Crontab("*/15 9-17/4 1,15,31 jan-mar,DEC mon-fri")
    assert c.minutes == (0, 15, 30, 45)
    assert c.hours == (9, 13, 17)
    assert c.days_of_month == (1, 15, 31)
    assert c.months == (1, 2, 3, 12)
    assert c.days_of_week == (1, 2, 3, 4, 5)
    assert (c.dom_restricted, c.dow_restricted) == (True, True)


def test_sunday_is_0_or_7_and_can_end_a_range() -> None:
    assert Crontab("0 0 * * 7").days_of_week == (0,)
    assert Crontab("0 0 * * 0,7").days_of_week == (0,)
    assert Crontab("0 0 * * 5-7").days_of_week == (0, 5, 6)
    assert Crontab("0 0 * * fri-sun").days_of_week == (0, 5, 6)
    assert Crontab("0 0 * * sun-tue").days_of_week == (0, 1, 2)
    assert Crontab("0 0 * * sun-sun").days_of_week == (0,)
    assert Crontab("0 0 * * sun").days_of_week == (0,)
    assert Crontab("0 0 * * *").days_of_week == (0, 1, 2, 3, 4, 5, 6)
    assert Crontab("0 0 * * */2").days_of_week == (0, 2, 4, 6)


def test_single_value_with_step_runs_to_the_field_maximum() -> None:
    assert Crontab("50/4 * * * *").minutes == (50, 54, 58)
    assert Crontab("0 20/2 * * *").hours == (20, 22)


@pytest.mark.parametrize(
    ("shortcut", "expanded"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_shortcuts(shortcut: str, expanded: str) -> None:
    a, b = Crontab(shortcut), Crontab(expanded)
    assert (a.minutes, a.hours, a.days_of_month, a.months, a.days_of_week) == (
        b.minutes,
        b.hours,
        b.days_of_month,
        b.months,
        b.days_of_week,
    )
    start = utc(2024, 2, 28, 13, 7)
    assert fires(shortcut, start, count=3) == fires(expanded, start, count=3)


@pytest.mark.parametrize(
    ("expr", "field", "message"),
    [
        ("60 * * * *", "minute", "60 in '60' is outside 0-59"),
        ("* 24 * * *", "hour", "outside 0-23"),
        ("* * 0 * *", "day-of-month", "outside 1-31"),
        ("* * 32 * *", "day-of-month", "outside 1-31"),
        ("* * * 13 *", "month", "outside 1-12"),
        ("* * * 0 *", "month", "outside 1-12"),
        ("* * * * 8", "day-of-week", "outside 0-7"),
        ("* * * foo *", "month", "'foo' in 'foo' is not a number or a known name"),
        ("* * * * monday", "day-of-week", "not a number or a known name"),
        ("mon * * * *", "minute", "not a number or a known name"),
        ("* * * jan-mon *", "month", "'mon' in 'jan-mon'"),
        ("*/0 * * * *", "minute", "step '0' in '*/0' is not a positive number"),
        ("*/x * * * *", "minute", "is not a positive number"),
        ("1-5/ * * * *", "minute", "is not a positive number"),
        ("* 5-1 * * *", "hour", "range '5-1' runs backwards"),
        ("* * * * sat-mon", "day-of-week", "runs backwards"),
        ("1,,2 * * * *", "minute", "empty list item"),
        ("-5 * * * *", "minute", "'' in '-5'"),
        ("1-2-3 * * * *", "minute", "'2-3' in '1-2-3'"),
        ("? * * * *", "minute", "not a number"),
        ("0 0 30 2 *", "day-of-month", "day 30 never occurs in the chosen months"),
        ("0 0 31 4,6,9,11 *", "day-of-month", "day 31 never occurs"),
        ("0 0 31 2 */2", "day-of-month", "never occurs"),
        ("* * * *", None, "expected 5 fields, got 4"),
        ("* * * * * *", None, "expected 5 fields, got 6"),
        ("", None, "expected 5 fields, got 0"),
        ("@reboot", None, "unknown shortcut '@reboot'"),
    ],
)
def test_invalid_expressions_name_the_field(expr: str, field: str | None, message: str) -> None:
    with pytest.raises(CrontabError, match=re.escape(message)) as info:
        Crontab(expr)
    assert info.value.field == field
    if field:
        assert f"{field} field" in str(info.value)


def test_unknown_time_zone() -> None:
    with pytest.raises(CrontabError, match="unknown time zone 'Mars/Olympus'"):
        Crontab("* * * * *", tz="Mars/Olympus")


def test_feb_30_with_a_weekday_fires_on_the_weekday() -> None:
    # both day fields restricted: either matches, so Mondays in February fire
    assert fires("0 0 30 2 mon", utc(2024, 1, 1), count=2) == [utc(2024, 2, 5), utc(2024, 2, 12)]


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Crontab("* * * * *").next_after(datetime(2024, 1, 1))


# -- next firing, exact -----------------------------------------------------------------


def test_strictly_after_and_minute_rounding() -> None:
    assert fires("*/5 * * * *", utc(2024, 1, 1, 10, 0)) == [utc(2024, 1, 1, 10, 5)]
    assert fires("*/5 * * * *", utc(2024, 1, 1, 10, 4, 59, 999999)) == [utc(2024, 1, 1, 10, 5)]
    assert fires("*/5 * * * *", utc(2024, 1, 1, 10, 5, 0, 1)) == [utc(2024, 1, 1, 10, 10)]
    assert fires("* * * * *", utc(2024, 1, 1, 23, 59, 30)) == [utc(2024, 1, 2, 0, 0)]


def test_month_ends_and_year_end() -> None:
    assert fires("0 0 31 * *", utc(2024, 1, 31), count=4) == [
        utc(2024, 3, 31),
        utc(2024, 5, 31),
        utc(2024, 7, 31),
        utc(2024, 8, 31),
    ]
    assert fires("59 23 31 12 *", utc(2024, 12, 31, 23, 59)) == [utc(2025, 12, 31, 23, 59)]
    assert fires("0 0 1 * *", utc(2024, 12, 15)) == [utc(2025, 1, 1)]
    assert fires("15 10 30 * *", utc(2023, 1, 30, 10, 15), count=2) == [
        utc(2023, 3, 30, 10, 15),
        utc(2023, 4, 30, 10, 15),
    ]


def test_leap_years_and_feb_29() -> None:
    assert fires("0 12 29 2 *", utc(2024, 2, 29, 12), count=3) == [
        utc(2028, 2, 29, 12),
        utc(2032, 2, 29, 12),
        utc(2036, 2, 29, 12),
    ]
    # 2100 is not a leap year
    assert fires("0 0 29 feb *", utc(2097, 1, 1), count=2) == [utc(2104, 2, 29), utc(2108, 2, 29)]
    # Feb 29 that is also a Sunday (day-of-week starts with *, so both must match)
    assert fires("0 0 29 2 */7", utc(2020, 3, 1)) == [utc(2032, 2, 29)]
    assert fires("0 0 28-31 2 *", utc(2023, 2, 1), count=3) == [
        utc(2023, 2, 28),
        utc(2024, 2, 28),
        utc(2024, 2, 29),
    ]


def test_day_of_month_or_day_of_week() -> None:
    # the 13th or any Friday (Sept 2024: Fridays 6, 13, 20, 27; 13th is a Friday)
    assert fires("0 0 13 * fri", utc(2024, 9, 1), count=4) == [
        utc(2024, 9, 6),
        utc(2024, 9, 13),
        utc(2024, 9, 20),
        utc(2024, 9, 27),
    ]
    # the 1st or any Monday, across a month end (Oct 2024: Mondays 7, 14, 21, 28)
    assert fires("30 8 1 * mon", utc(2024, 9, 29), count=3) == [
        utc(2024, 9, 30, 8, 30),
        utc(2024, 10, 1, 8, 30),
        utc(2024, 10, 7, 8, 30),
    ]
    # day-of-month starting with * is unrestricted for the rule: odd days that are Mondays
    assert fires("0 0 */2 * mon", utc(2024, 9, 1), count=2) == [utc(2024, 9, 9), utc(2024, 9, 23)]
    # day-of-week * : only the day of month counts
    assert fires("0 0 13 * *", utc(2024, 9, 1)) == [utc(2024, 9, 13)]
    # day-of-month *: only the weekday counts; 7 is Sunday
    assert fires("0 0 * * 7", utc(2024, 9, 2)) == [utc(2024, 9, 8)]
    assert fires("@weekly", utc(2024, 9, 2)) == [utc(2024, 9, 8)]


def test_other_zone_for_the_input() -> None:
    new_york = ZoneInfo("America/New_York")
    # 9:00 London on 2024-06-03 is 04:00 New York; asked from 03:00 New York the same day
    start = datetime(2024, 6, 3, 3, 0, tzinfo=new_york)
    (first,) = fires("0 9 * * *", start, tz="Europe/London")
    assert first == utc(2024, 6, 3, 8, 0)


# -- DST in Europe/London ---------------------------------------------------------------
# 2024-03-31: 01:00 GMT becomes 02:00 BST (01:00-01:59 local never happens).
# 2024-10-27: 02:00 BST becomes 01:00 GMT (01:00-01:59 local happens twice).


def test_spring_forward_skips_the_missing_local_time() -> None:
    start = datetime(2024, 3, 30, 12, tzinfo=LONDON)
    assert fires("30 1 * * *", start, tz="Europe/London", count=2) == [
        utc(2024, 4, 1, 0, 30),  # 01:30 BST on April 1st; March 31st's 01:30 never existed
        utc(2024, 4, 2, 0, 30),
    ]
    assert fires("*/30 * * * *", utc(2024, 3, 31, 0, 0), tz="Europe/London", count=3) == [
        utc(2024, 3, 31, 0, 30),  # 00:30 GMT
        utc(2024, 3, 31, 1, 0),  # 02:00 BST: 01:00 and 01:30 local are skipped
        utc(2024, 3, 31, 1, 30),
    ]
    # 02:00 exists (it is the first BST minute)
    assert fires("0 2 * * *", start, tz="Europe/London") == [utc(2024, 3, 31, 1, 0)]


def test_fall_back_fires_a_repeated_local_time_once() -> None:
    start = datetime(2024, 10, 26, 12, tzinfo=LONDON)
    assert fires("30 1 * * *", start, tz="Europe/London", count=2) == [
        utc(2024, 10, 27, 0, 30),  # 01:30 BST, the first 01:30
        utc(2024, 10, 28, 1, 30),  # not 01:30 GMT on the 27th
    ]
    assert fires("*/30 * * * *", utc(2024, 10, 26, 23, 0), tz="Europe/London", count=5) == [
        utc(2024, 10, 26, 23, 30),  # 00:30 BST
        utc(2024, 10, 27, 0, 0),  # 01:00 BST
        utc(2024, 10, 27, 0, 30),  # 01:30 BST
        utc(2024, 10, 27, 2, 0),  # 02:00 GMT; 01:00 and 01:30 GMT repeat and are skipped
        utc(2024, 10, 27, 2, 30),
    ]
    # asked from inside the second 01:xx: nothing fires until 02:00 GMT
    second_pass = datetime(2024, 10, 27, 1, 10, tzinfo=LONDON, fold=1)
    assert fires("*/15 * * * *", second_pass, tz="Europe/London") == [utc(2024, 10, 27, 2, 0)]
    # and from inside the first, the rest of the first pass fires
    first_pass = datetime(2024, 10, 27, 1, 10, tzinfo=LONDON, fold=0)
    assert fires("*/15 * * * *", first_pass, tz="Europe/London") == [utc(2024, 10, 27, 0, 15)]


def test_returned_times_are_local_wall_times() -> None:
    c = Crontab("30 1 * * *", tz="Europe/London")
    fire = c.next_after(datetime(2024, 10, 26, 12, tzinfo=LONDON))
    assert (fire.replace(tzinfo=None), fire.fold, fire.utcoffset()) == (
        datetime(2024, 10, 27, 1, 30),
        0,
        timedelta(hours=1),
    )


def test_seconds_until_next() -> None:
    c = Crontab("*/5 * * * *")
    # 1_700_000_000 is 2023-11-14 22:13:20 UTC
    assert c.seconds_until_next(1_700_000_000.5) == pytest.approx(99.5, abs=1e-6)
    assert c.seconds_until_next(1_700_000_100.0) == 300.0  # exactly on a firing: the next one
    assert c.seconds_until_next(1_700_000_099.99) == pytest.approx(0.01, abs=1e-6)
    assert 0 < c.seconds_until_next(1_700_000_099.9999998) < 1e-6
    london = Crontab("30 1 * * *", tz=LONDON)
    # from 2024-03-31 00:00 UTC: the next 01:30 local is April 1st 00:30 UTC
    assert london.seconds_until_next(utc(2024, 3, 31).timestamp()) == 24.5 * 3600


# -- brute force ------------------------------------------------------------------------

ZONES = ["UTC", "Europe/London", "America/New_York", "America/Sao_Paulo", "Australia/Lord_Howe"]
# DST changes, both ways: London and New York; Sao Paulo's at midnight (2018-19), where a
# day starts at 01:00 or 23:00 repeats; Lord Howe's half-hour shifts.
TRANSITIONS = [
    ("Europe/London", utc(2024, 3, 31, 1)),
    ("Europe/London", utc(2024, 10, 27, 1)),
    ("America/New_York", utc(2024, 3, 10, 7)),
    ("America/New_York", utc(2024, 11, 3, 6)),
    ("America/Sao_Paulo", utc(2018, 11, 4, 3)),
    ("America/Sao_Paulo", utc(2019, 2, 17, 2)),
    ("Australia/Lord_Howe", utc(2024, 4, 6, 15)),
    ("Australia/Lord_Howe", utc(2024, 10, 5, 15, 30)),
]
HORIZON = timedelta(days=1500)


def show(draw: st.DrawFn, names: dict[int, str], v: int, range_start: int | None = None) -> str:
    """``v`` as a number or, sometimes, a name in random case."""
    if v not in names or not draw(st.booleans()):
        return str(v)
    if v == 7 and not (range_start is not None and range_start > 0):
        return str(v)  # "sun" stands for 7 only when ending a range that starts later
    name = names[v]
    return name.upper() if draw(st.booleans()) else name


def field_text(draw: st.DrawFn, low: int, high: int, names: dict[int, str]) -> tuple[str, set[int]]:
    """A random field and the values it must select."""
    kind = draw(st.sampled_from(["*", "step", "list", "list", "list"]))
    if kind == "*":
        return "*", set(range(low, high + 1))
    if kind == "step":
        step = draw(st.integers(1, high - low + 1))
        return f"*/{step}", set(range(low, high + 1, step))
    items, values = [], set()
    for _ in range(draw(st.integers(1, 3))):
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        shape = draw(st.sampled_from(["one", "range", "range-step", "one-step"]))

        if shape == "one":
            items.append(show(draw, names, a))
            values.add(a)
        elif shape == "range":
            items.append(f"{show(draw, names, a)}-{show(draw, names, b, a)}")
            values.update(range(a, b + 1))
        else:
            step = draw(st.integers(1, 6))
            if shape == "range-step":
                items.append(f"{show(draw, names, a)}-{show(draw, names, b, a)}/{step}")
                values.update(range(a, b + 1, step))
            else:
                items.append(f"{a}/{step}")
                values.update(range(a, high + 1, step))
    return ",".join(items), values


MONTHS = dict(enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1))
DAYS = dict(enumerate("sun mon tue wed thu fri sat sun".split()))


@st.composite
def crontabs(draw: st.DrawFn, every_day: bool = False) -> tuple[str, list[set[int]]]:
    """An expression and its fields' values; ``every_day`` ones fire daily, mostly in the
    small hours, where DST changes happen."""
    if every_day:
        hours = draw(st.sets(st.sampled_from([0, 1, 2, 3, 22, 23]), min_size=1))
        hour_field = draw(
            st.sampled_from([("*", set(range(24))), (",".join(map(str, hours)), hours)])
        )
        day_fields = [("*", set(range(1, 32))), ("*", set(range(1, 13))), ("*", set(range(8)))]
    else:
        hour_field = field_text(draw, 0, 23, {})
        day_fields = [
            field_text(draw, 1, 31, {}),
            field_text(draw, 1, 12, MONTHS),
            field_text(draw, 0, 7, DAYS),
        ]
    fields = [field_text(draw, 0, 59, {}), hour_field, *day_fields]
    expr = " ".join(text for text, _ in fields)
    return expr, [values for _, values in fields]


def day_ok(c: Crontab, day: date, dom_star: bool, dow_star: bool) -> bool:
    dom = day.day in c.days_of_month
    dow = (day.weekday() + 1) % 7 in c.days_of_week
    either = not dom_star and not dow_star
    return day.month in c.months and ((dom or dow) if either else (dom and dow))


def brute_force_next(
    c: Crontab, after: datetime, dom_star: bool, dow_star: bool
) -> datetime | None:
    """Scan real minutes after ``after``; a local time fires on its first occurrence only
    (fold 0). Days that cannot match are jumped over to the next local midnight."""
    u = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    end = after.astimezone(UTC) + HORIZON
    while u <= end:
        local = u.astimezone(c.tz)
        if not day_ok(c, local.date(), dom_star, dow_star):
            midnight = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=c.tz)
            u = max(u + MINUTE, midnight.astimezone(UTC))
            continue
        if local.fold == 0 and local.hour in c.hours and local.minute in c.minutes:
            return local
        u += MINUTE
    return None


Scenario = tuple[tuple[str, list[set[int]]], datetime, str]
anywhere: st.SearchStrategy[Scenario] = st.tuples(
    crontabs(),
    st.datetimes(datetime(1980, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(ZONES),
)
near_dst: st.SearchStrategy[Scenario] = st.sampled_from(TRANSITIONS).flatmap(
    lambda zone_and_time: st.tuples(
        crontabs(every_day=True),
        st.integers(-12 * 60, 12 * 60).map(lambda m: zone_and_time[1] + timedelta(minutes=m)),
        st.just(zone_and_time[0]),
    )
)


@settings(max_examples=400, deadline=None)
@given(
    scenario=st.one_of(anywhere, near_dst),
    seconds=st.integers(0, 59),
    input_zone=st.sampled_from(ZONES),
)
def test_next_after_equals_minute_by_minute_scan(
    scenario: Scenario, seconds: int, input_zone: str
) -> None:
    (expr, expected_values), after, zone = scenario
    after = (after + timedelta(seconds=seconds)).astimezone(ZoneInfo(input_zone))
    fields = expr.split()
    try:
        c = Crontab(expr, tz=zone)
    except CrontabError as exc:
        # only a day of month that no chosen month has may be rejected
        assert exc.field == "day-of-month"
        assert fields[2][0] == "*" or fields[4][0] == "*"
        longest = max(
            (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1] for m in expected_values[3]
        )
        assert min(expected_values[2]) > longest
        return
    expected_dow = {v % 7 for v in expected_values[4]}
    assert [set(c.minutes), set(c.hours), set(c.days_of_month), set(c.months)] == (
        expected_values[:4]
    )
    assert set(c.days_of_week) == expected_dow
    dom_star, dow_star = fields[2].startswith("*"), fields[4].startswith("*")
    expected = brute_force_next(c, after, dom_star, dow_star)
    got = c.next_after(after)
    if expected is None:
        assert got.astimezone(UTC) > after.astimezone(UTC) + HORIZON
    else:
        assert got.astimezone(UTC) == expected.astimezone(UTC)
        assert got.replace(tzinfo=None) == expected.replace(tzinfo=None)
