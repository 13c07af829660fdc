"""Cutting entries into local days, checked against a reference computed with zoneinfo.

The reference walks an entry minute by minute and asks zoneinfo which local
date each minute falls on: slow, obviously right, and independent of the
boundary arithmetic under test.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from reporting_testkit import entry_row

from reporting.timesheet import LocalDays, build_timesheet, parse_date_range
from tt_common.errors import InvalidArgument

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"]


def reference(start: datetime, end: datetime, zone: ZoneInfo) -> dict[date, int]:
    seconds: Counter[date] = Counter()
    t = start
    while t < end:
        seconds[t.astimezone(zone).date()] += 60
        t += timedelta(minutes=1)
    return dict(seconds)


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


def split(start: datetime, end: datetime, zone: str) -> dict[date, int]:
    return dict(LocalDays(ZoneInfo(zone)).split(start, end, int((end - start).total_seconds())))


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", date(2024, 3, 10), 23),
        ("America/New_York", date(2024, 11, 3), 25),
        ("Europe/Berlin", date(2024, 3, 31), 23),
        ("Europe/Berlin", date(2024, 10, 27), 25),
        ("Asia/Kolkata", date(2024, 3, 31), 24),
        ("Australia/Lord_Howe", date(2024, 4, 7), 24.5),  # half-hour DST
        ("Australia/Lord_Howe", date(2024, 10, 6), 23.5),
    ],
)
def test_dst_days_are_23_or_25_hours_long(zone: str, day: date, hours: float) -> None:
    days = LocalDays(ZoneInfo(zone))
    start, end = days.bounds(day, day)
    assert (end - start).total_seconds() == hours * 3600
    # An entry covering exactly that local day counts wholly on it, and nowhere else.
    assert split(start, end, zone) == {day: int(hours * 3600)}
    assert reference(start, end, ZoneInfo(zone)) == {day: int(hours * 3600)}


@pytest.mark.parametrize("zone", ZONES)
def test_entry_crossing_local_midnight_counts_on_both_days(zone: str) -> None:
    start = local(zone, 2024, 6, 14, 22, 30)
    end = local(zone, 2024, 6, 15, 1, 15)
    assert split(start, end, zone) == {date(2024, 6, 14): 90 * 60, date(2024, 6, 15): 75 * 60}
    assert split(start, end, zone) == reference(start, end, ZoneInfo(zone))


def test_entry_across_the_night_the_clocks_change() -> None:
    # New York, 2024-11-03: 23:00 on the 2nd to 03:00 on the 3rd is 5 real hours (01:00-02:00 twice).
    zone = "America/New_York"
    start, end = local(zone, 2024, 11, 2, 23, 0), local(zone, 2024, 11, 3, 3, 0)
    assert (end - start) == timedelta(hours=5)
    assert split(start, end, zone) == {date(2024, 11, 2): 3600, date(2024, 11, 3): 4 * 3600}
    # Berlin, 2024-03-31: 22:00 on the 30th to 04:00 on the 31st is 5 real hours.
    zone = "Europe/Berlin"
    start, end = local(zone, 2024, 3, 30, 22, 0), local(zone, 2024, 3, 31, 4, 0)
    assert split(start, end, zone) == {date(2024, 3, 30): 2 * 3600, date(2024, 3, 31): 3 * 3600}


@pytest.mark.parametrize("zone", ZONES)
def test_random_entries_match_the_reference(zone: str) -> None:
    rng = random.Random(zone)
    tz = ZoneInfo(zone)
    # Minute-aligned entries up to 24 h around the year's DST changes and elsewhere.
    anchors = [
        datetime(2024, m, d, tzinfo=UTC) for m, d in ((3, 9), (3, 30), (4, 6), (10, 5), (10, 26), (11, 2))
    ]
    for _ in range(120):
        start = rng.choice(anchors) + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        end = start + timedelta(minutes=rng.randrange(1, 24 * 60 + 1))
        assert split(start, end, zone) == reference(start, end, tz), (start, end)


def test_pieces_always_add_up_to_the_recorded_duration() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 5, 1, 21, 59, 59, 700_000, tzinfo=UTC)  # sub-second start, crosses midnight
    end = start + timedelta(hours=3, seconds=0.6)
    pieces = LocalDays(zone).split(start, end, 10_800)
    assert [d for d, _ in pieces] == [date(2024, 5, 1), date(2024, 5, 2)]
    assert sum(s for _, s in pieces) == 10_800
    # An entry ending exactly at local midnight stays on its day.
    start, end = local("Europe/Berlin", 2024, 5, 1, 23, 0), local("Europe/Berlin", 2024, 5, 2, 0, 0)
    assert LocalDays(zone).split(start, end, 3600) == [(date(2024, 5, 1), 3600)]


def test_timesheet_counts_only_the_part_inside_the_range() -> None:
    zone = "Asia/Kolkata"
    project = uuid.uuid4()
    rows = [
        entry_row(
            local(zone, 2024, 6, 9, 23, 0), local(zone, 2024, 6, 10, 2, 0), project=project
        ),  # 2 h inside
        entry_row(
            local(zone, 2024, 6, 10, 9, 0), local(zone, 2024, 6, 10, 17, 0), project=project, billable=False
        ),
        entry_row(
            local(zone, 2024, 6, 11, 23, 30), local(zone, 2024, 6, 12, 0, 30), project=project
        ),  # 30 min inside
    ]
    report = build_timesheet(
        user_id=uuid.uuid4(),
        user_name="Asha",
        timezone=zone,
        from_date=date(2024, 6, 10),
        to_date=date(2024, 6, 11),
        rows=rows,
    )
    assert [(d.date.day, d.seconds, d.billable_seconds) for d in report.days] == [
        (10, 10 * 3600, 2 * 3600),
        (11, 1800, 1800),
    ]
    assert report.total_seconds == 10 * 3600 + 1800
    assert [(p.seconds, p.billable_seconds) for p in report.projects] == [(10 * 3600 + 1800, 2 * 3600 + 1800)]
    assert next(e.days for e in report.entries) == [(date(2024, 6, 10), 2 * 3600)]


def test_unknown_user_falls_back_to_utc_and_says_so() -> None:
    report = build_timesheet(
        user_id=uuid.uuid4(),
        user_name="",
        timezone=None,
        from_date=date(2024, 1, 1),
        to_date=date(2024, 1, 1),
        rows=[],
    )
    assert (report.timezone, report.timezone_known, len(report.days)) == ("UTC", False, 1)


def test_date_range_validation_names_the_field() -> None:
    assert parse_date_range("2024-01-01", "2024-12-31") == (date(2024, 1, 1), date(2024, 12, 31))
    for args, field in [
        (("2024-02-30", "2024-03-01"), "from_date"),
        (("2024-03-02", "2024-03-01"), "to_date"),
        (("2024-01-01", "2025-01-02"), "to_date"),
        (("2024-01-01", ""), "to_date"),
    ]:
        with pytest.raises(InvalidArgument) as exc:
            parse_date_range(*args)
        assert exc.value.violations[0].field == field


@pytest.mark.parametrize(
    ("zone", "year"),
    [
        *[(zone, 2024) for zone in ZONES],
        ("America/Havana", 2024),  # DST starts at midnight, and ends at 01:00 back to a second midnight
        ("Pacific/Apia", 2011),  # skipped 2011-12-30 entirely
    ],
)
def test_the_timesheet_cuts_every_entry_as_split_does(zone: str, year: int) -> None:
    """build_timesheet places entries on precomputed day edges (one local day, or across
    midnight inside the range) and leaves the rest to LocalDays.split; whatever the
    entry (before, across or after the range's edges, across midnight or a clock
    change, starting at any microsecond), its pieces must be exactly those of
    LocalDays.split inside the range."""
    rng = random.Random(f"{zone}{year}")
    first, last = date(year, 1, 1), date(year, 12, 31)
    rows = []
    for _ in range(3000):
        start = datetime(year - 1, 12, 30, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(368 * 86_400), microseconds=rng.choice([0, rng.randrange(1_000_000)])
        )
        length = rng.choice([rng.randrange(1, 3600), rng.randrange(3600, 86_400), 86_400])
        rows.append(
            entry_row(start, start + timedelta(seconds=length, microseconds=rng.randrange(1_000_000)))
        )
    sheet = build_timesheet(
        user_id=uuid.uuid4(), user_name="", timezone=zone, from_date=first, to_date=last, rows=rows
    )
    cut = LocalDays(ZoneInfo(zone))
    expected = {
        row.entry_id: [
            (d, s)
            for d, s in cut.split(row.start_time, row.end_time, row.duration_seconds)
            if first <= d <= last
        ]
        for row in rows
    }
    assert {e.row.entry_id: e.days for e in sheet.entries} == {k: v for k, v in expected.items() if v}
    assert sheet.total_seconds == sum(s for pieces in expected.values() for _, s in pieces)
