"""The timesheet: a user's stopped entries cut into the user's local days.

Days are cut in the user's IANA zone with zoneinfo, so a DST day is 23 or 25
hours long, and an entry crossing local midnight counts on each day it
covers. Only the part of an entry inside the requested dates counts. The
pieces of one entry always add up to its recorded duration_seconds, so no
second is lost or counted twice by the cutting.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

from tt_common.errors import InvalidArgument

MAX_DAYS = 366
# Entries are at most 24 h long (tracking caps them); look back further to be safe.
ENTRY_LOOKBACK = timedelta(hours=48)


class TimesheetEntryRow(NamedTuple):
    """One stopped, not deleted entry, as the repository returns it (ids as text).

    A named tuple: a year's timesheet builds ~2,000 of them per call, and a
    frozen dataclass costs a setattr per field."""

    entry_id: str
    project_id: str
    project_name: str | None
    task_id: str | None
    task_name: str | None
    description: str
    tags: Sequence[str]
    start_time: datetime
    end_time: datetime
    duration_seconds: int
    is_billable: bool
    invoice_id: str | None


@dataclass
class DayTotal:
    date: date
    seconds: int = 0
    billable_seconds: int = 0


@dataclass
class ProjectTotal:
    project_id: str
    project_name: str
    seconds: int = 0
    billable_seconds: int = 0


@dataclass
class EntryInRange:
    row: TimesheetEntryRow
    days: list[tuple[date, int]]


@dataclass
class TimesheetReport:
    user_id: uuid.UUID
    user_name: str
    timezone: str
    timezone_known: bool
    from_date: date
    to_date: date
    days: list[DayTotal]
    projects: list[ProjectTotal]
    entries: list[EntryInRange] = field(default_factory=list)

    @property
    def total_seconds(self) -> int:
        return sum(d.seconds for d in self.days)

    @property
    def billable_seconds(self) -> int:
        return sum(d.billable_seconds for d in self.days)


def parse_date_range(from_text: str, to_text: str) -> tuple[date, date]:
    """Validated (from, to), inclusive, YYYY-MM-DD, at most MAX_DAYS days."""
    parsed = []
    for name, text in (("from_date", from_text), ("to_date", to_text)):
        try:
            parsed.append(date.fromisoformat((text or "").strip()))
        except ValueError:
            raise InvalidArgument.field(name, "must be a date YYYY-MM-DD") from None
    start, end = parsed
    if end < start:
        raise InvalidArgument.field("to_date", "must not be before from_date")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidArgument.field("to_date", f"at most {MAX_DAYS} days after from_date")
    return start, end


class LocalDays:
    """Local-day boundaries in one zone, cached (a year's timesheet asks for each day many times)."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._starts: dict[date, datetime] = {}

    def start_of(self, day: date) -> datetime:
        """The first instant (UTC) of a local date. A midnight that does not exist
        (DST starting at 00:00) resolves, with fold=0, to the first instant after the gap."""
        start = self._starts.get(day)
        if start is None:
            start = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
            self._starts[day] = start
        return start

    def bounds(self, first: date, last: date) -> tuple[datetime, datetime]:
        """[start of `first`, start of the day after `last`) in UTC."""
        return self.start_of(first), self.start_of(last + timedelta(days=1))

    def split(self, start: datetime, end: datetime, duration_seconds: int) -> list[tuple[date, int]]:
        """The seconds of [start, end) on each local date it touches, adding up to duration_seconds.

        Each piece is the difference of whole seconds elapsed since `start` at
        consecutive boundaries, and the last piece takes the remainder, so the
        pieces always sum to the recorded duration.
        """
        pieces: list[tuple[date, int]] = []
        cursor = start
        counted = 0
        while True:
            day = cursor.astimezone(self.zone).date()
            boundary = self.start_of(day + timedelta(days=1))
            if boundary >= end:
                pieces.append((day, max(duration_seconds - counted, 0)))
                return pieces
            elapsed = min(int((boundary - start).total_seconds()), duration_seconds)
            pieces.append((day, max(elapsed - counted, 0)))
            counted = max(elapsed, counted)
            cursor = boundary


def zone_for(timezone: str | None) -> tuple[tzinfo, str, bool]:
    """The user's zone, or UTC (flagged as unknown) when reporting has not seen the user yet."""
    if timezone:
        return ZoneInfo(timezone), timezone, True
    return UTC, "UTC", False


def build_timesheet(
    *,
    user_id: uuid.UUID,
    user_name: str,
    timezone: str | None,
    from_date: date,
    to_date: date,
    rows: Iterable[TimesheetEntryRow],
) -> TimesheetReport:
    """Cut entries into local days and total them per day and per project.

    Rows' times must be UTC datetimes (tzinfo `datetime.UTC`, as the repository returns
    them): they are compared with UTC day edges, and mixed tzinfo objects would cost a
    utcoffset() call per comparison.
    """
    zone, zone_name, known = zone_for(timezone)
    local = LocalDays(zone)
    day_count = (to_date - from_date).days + 1
    dates = [from_date + timedelta(days=i) for i in range(day_count)]
    # The UTC instants where the requested local days begin (one more for the end):
    # most entries lie inside one day, found with one bisection instead of a zone
    # conversion; the others are cut by LocalDays.split.
    edges = [local.start_of(d) for d in dates] + [local.start_of(to_date + timedelta(days=1))]
    # Running sums in plain lists: a year's timesheet adds ~2,000 entries to them.
    day_seconds, day_billable = [0] * day_count, [0] * day_count
    project_sums: dict[str, list[int]] = {}  # project id -> [seconds, billable seconds]
    project_names: dict[str, str] = {}
    entries: list[EntryInRange] = []
    for row in rows:
        duration = row.duration_seconds
        first = bisect_right(edges, row.start_time) - 1
        if 0 <= first < day_count and row.end_time <= edges[first + 1]:
            in_range = [(dates[first], duration)]
            day_seconds[first] += duration
            if row.is_billable:
                day_billable[first] += duration
            counted = duration
        else:
            in_range = [
                (day, seconds)
                for day, seconds in local.split(row.start_time, row.end_time, duration)
                if from_date <= day <= to_date
            ]
            if not in_range:
                continue
            counted = 0
            for day, seconds in in_range:
                index = (day - from_date).days
                day_seconds[index] += seconds
                if row.is_billable:
                    day_billable[index] += seconds
                counted += seconds
        entries.append(EntryInRange(row, in_range))
        sums = project_sums.get(row.project_id)
        if sums is None:
            sums = project_sums[row.project_id] = [0, 0]
            project_names[row.project_id] = row.project_name or ""
        sums[0] += counted
        if row.is_billable:
            sums[1] += counted
    projects = [
        ProjectTotal(project_id, project_names[project_id], seconds, billable)
        for project_id, (seconds, billable) in project_sums.items()
    ]
    return TimesheetReport(
        user_id=user_id,
        user_name=user_name,
        timezone=zone_name,
        timezone_known=known,
        from_date=from_date,
        to_date=to_date,
        days=[DayTotal(*day) for day in zip(dates, day_seconds, day_billable, strict=True)],
        projects=sorted(projects, key=lambda p: (p.project_name.lower(), str(p.project_id))),
        entries=entries,
    )
