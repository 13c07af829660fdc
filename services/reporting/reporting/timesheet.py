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
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from tt_common.errors import InvalidArgument
from tt_common.timestamps import epoch_micros, from_epoch_micros

MAX_DAYS = 366
# Entries are at most 24 h long (tracking caps them); look back further to be safe.
ENTRY_LOOKBACK = timedelta(hours=48)


class TimesheetEntryRow(NamedTuple):
    """One stopped, not deleted entry, as the repository returns it (ids as text).

    A named tuple: a year's timesheet builds ~2,000 of them per call, and a
    frozen dataclass costs a setattr per field. Start and end come as epoch
    microseconds (UTC): decoding ~4,000 timestamptz values into datetimes cost
    more than the rest of the fetch, and the cutting compares integers;
    `start_time` / `end_time` give the datetimes where one is needed."""

    entry_id: str
    project_id: str
    project_name: str | None
    task_id: str | None
    task_name: str | None
    description: str
    tags: Sequence[str]
    start_micros: int
    end_micros: int
    duration_seconds: int
    is_billable: bool
    invoice_id: str | None

    @property
    def start_time(self) -> datetime:
        return from_epoch_micros(self.start_micros)

    @property
    def end_time(self) -> datetime:
        return from_epoch_micros(self.end_micros)


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


@lru_cache(maxsize=256)
def day_edges(zone: tzinfo, first: date, days: int) -> tuple[int, ...]:
    """Where each of `days` local dates from `first` begins, and where the day after the
    last begins, in epoch microseconds. Cached: the year a user looks at is asked for
    again and again, and each edge costs a zone conversion. A date the zone skipped
    (Samoa's 2011-12-30) has the same edge as the next date: a day of no length."""
    local = LocalDays(zone)
    return tuple(epoch_micros(local.start_of(first + timedelta(days=i))) for i in range(days + 1))


def _cut_at_edges(
    edges: Sequence[int], first: int, start: int, end: int, duration_seconds: int
) -> list[tuple[int, int]]:
    """LocalDays.split for an entry that starts on day `first` of the range and ends inside
    it, on the precomputed edges: (day index, seconds) pieces, by the same arithmetic
    (whole seconds elapsed at each boundary; the last piece takes the remainder)."""
    pieces: list[tuple[int, int]] = []
    counted = 0
    day = first
    while edges[day + 1] < end:
        elapsed = min((edges[day + 1] - start) // 1_000_000, duration_seconds)
        pieces.append((day, max(elapsed - counted, 0)))
        counted = max(elapsed, counted)
        day += 1
        while edges[day] == edges[day + 1]:  # a date the zone skipped holds no time
            day += 1
    pieces.append((day, max(duration_seconds - counted, 0)))
    return pieces


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

    An entry is placed by bisecting its start among the range's day edges (epoch
    microseconds, like the rows' times). Most lie inside one local day; one that
    crosses local midnight inside the range is cut at the edges; one that reaches
    outside the range is cut by LocalDays.split and the pieces outside dropped.
    """
    zone, zone_name, known = zone_for(timezone)
    day_count = (to_date - from_date).days + 1
    dates = [from_date + timedelta(days=i) for i in range(day_count)]
    edges = day_edges(zone, from_date, day_count)
    range_end = edges[-1]
    # Running sums in plain lists: a year's timesheet adds ~2,000 entries to them.
    day_seconds, day_billable = [0] * day_count, [0] * day_count
    project_sums: dict[str, list[int]] = {}  # project id -> [seconds, billable seconds]
    project_names: dict[str, str] = {}
    entries: list[EntryInRange] = []
    for row in rows:
        start, end, duration = row.start_micros, row.end_micros, row.duration_seconds
        first = bisect_right(edges, start) - 1
        if 0 <= first < day_count and end <= edges[first + 1]:
            # Inside one local day of the range: most entries.
            in_range = [(dates[first], duration)]
            day_seconds[first] += duration
            if row.is_billable:
                day_billable[first] += duration
            counted = duration
        else:
            if 0 <= first and end <= range_end:
                pieces = _cut_at_edges(edges, first, start, end, duration)
            else:
                pieces = [
                    ((day - from_date).days, seconds)
                    for day, seconds in LocalDays(zone).split(row.start_time, row.end_time, duration)
                    if from_date <= day <= to_date
                ]
                if not pieces:
                    continue
            in_range = [(dates[index], seconds) for index, seconds in pieces]
            counted = 0
            for index, seconds in pieces:
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
