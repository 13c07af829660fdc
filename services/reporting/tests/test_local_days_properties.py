"""Property-based tests (hypothesis) of cutting an entry into the user's local days.

The reference asks zoneinfo for the local date of every minute of the entry: slow,
obviously right, and independent of the boundary arithmetic under test.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st
from reporting_testkit import entry_row

from reporting.timesheet import LocalDays, build_timesheet

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Havana",  # DST starts at midnight: the local day begins at 01:00
]

# Whole UTC minutes, so the per-minute reference is exact (every zone here shifts by whole minutes).
starts = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
).map(lambda t: t.replace(second=0, microsecond=0))


def reference(start: datetime, end: datetime, zone: ZoneInfo) -> dict[date, int]:
    seconds: Counter[date] = Counter()
    t = start
    while t < end:
        seconds[t.astimezone(zone).date()] += 60
        t += timedelta(minutes=1)
    return dict(seconds)


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(ZONES), start=starts, minutes=st.integers(min_value=1, max_value=24 * 60))
@example(zone="Europe/Berlin", start=datetime(2026, 3, 28, 22, 30, tzinfo=UTC), minutes=600)
@example(zone="America/New_York", start=datetime(2026, 11, 1, 3, 0, tzinfo=UTC), minutes=1440)
@example(zone="America/Havana", start=datetime(2026, 3, 8, 4, 0, tzinfo=UTC), minutes=180)
def test_split_matches_the_zoneinfo_reference(zone: str, start: datetime, minutes: int) -> None:
    end = start + timedelta(minutes=minutes)
    pieces = LocalDays(ZoneInfo(zone)).split(start, end, minutes * 60)
    assert {day: s for day, s in pieces if s} == reference(start, end, ZoneInfo(zone))
    days = [day for day, _ in pieces]
    assert days == sorted(set(days))  # one piece per local day, in order


@settings(max_examples=300)
@given(
    zone=st.sampled_from(ZONES),
    start=st.datetimes(
        min_value=datetime(2019, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    length=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(hours=24)),
)
def test_pieces_add_up_to_the_recorded_duration(zone: str, start: datetime, length: timedelta) -> None:
    end = start + length
    duration = int(length.total_seconds())
    pieces = LocalDays(ZoneInfo(zone)).split(start, end, duration)
    assert sum(s for _, s in pieces) == duration
    assert all(s >= 0 for _, s in pieces)
    local = ZoneInfo(zone)
    assert pieces[0][0] == start.astimezone(local).date()
    assert pieces[-1][0] == (end - timedelta(microseconds=1)).astimezone(local).date()


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=starts,
    minutes=st.integers(min_value=1, max_value=24 * 60),
    days_before=st.integers(min_value=-1, max_value=2),
    range_days=st.integers(min_value=1, max_value=4),
)
@example(
    zone="America/Havana",
    start=datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
    minutes=120,
    days_before=0,
    range_days=2,
)
@example(
    zone="America/Havana",
    start=datetime(2026, 3, 8, 4, 0, tzinfo=UTC),
    minutes=180,
    days_before=1,
    range_days=3,
)
def test_the_timesheet_matches_the_zoneinfo_reference(
    zone: str, start: datetime, minutes: int, days_before: int, range_days: int
) -> None:
    """build_timesheet (its shortcuts on precomputed day edges included) against the
    per-minute reference, for an entry inside, across or reaching out of the range."""
    end = start + timedelta(minutes=minutes)
    first = start.astimezone(ZoneInfo(zone)).date() - timedelta(days=days_before)
    last = first + timedelta(days=range_days - 1)
    sheet = build_timesheet(
        user_id=uuid.uuid4(),
        user_name="",
        timezone=zone,
        from_date=first,
        to_date=last,
        rows=[entry_row(start, end)],
    )
    expected = {d: s for d, s in reference(start, end, ZoneInfo(zone)).items() if first <= d <= last}
    assert {d.date: d.seconds for d in sheet.days if d.seconds} == expected
    assert {d: s for e in sheet.entries for d, s in e.days if s} == expected
    assert [p.seconds for p in sheet.projects] == ([sum(expected.values())] if sheet.entries else [])
