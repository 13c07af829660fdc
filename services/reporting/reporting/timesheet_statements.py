"""The timesheet's SQL on raw connections (tt_common.db.DriverPool).

A year's timesheet reads ~2,000 entries. Through an ORM session the request
cost five round trips (BEGIN, isolation level, user, entries, COMMIT) and
SQLAlchemy's per-row result processing; here it is two prepared statements,
each its own snapshot, with the rows decoded by asyncpg in C. Totals and lines
still agree: both are computed from the one entries statement. The user row
only names the zone the days are cut in (and the user's name).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from tt_common.db import DriverPool

from .timesheet import ENTRY_LOOKBACK, TimesheetEntryRow

USER = "SELECT name, timezone FROM users WHERE user_id = $1"

# Columns in TimesheetEntryRow's field order; ids as text (they go straight to the wire),
# times as epoch microseconds (extract gives exact numeric). The lower bound on
# start_time keeps this a range scan on ix_entries_user_id_start_time.
ENTRIES = """
SELECT e.entry_id::text, e.project_id::text, p.name, e.task_id::text, t.name, e.description, e.tags,
       (extract(epoch FROM e.start_time) * 1000000)::int8, (extract(epoch FROM e.end_time) * 1000000)::int8,
       e.duration_seconds, e.is_billable, e.invoice_id::text
FROM entries e
LEFT JOIN projects p ON p.project_id = e.project_id
LEFT JOIN tasks t ON t.task_id = e.task_id
WHERE e.user_id = $1 AND NOT e.deleted AND e.end_time IS NOT NULL
  AND e.start_time >= $2::timestamptz - $4::interval AND e.start_time < $3 AND e.end_time > $2
ORDER BY e.start_time, e.entry_id
"""


class TimesheetStatements:
    """Reads for the timesheet, on the service's `DriverPool`."""

    def __init__(self, db: DriverPool) -> None:
        self.db = db

    async def user(self, user_id: uuid.UUID) -> tuple[str, str] | None:
        """(name, IANA timezone) of the user, or None before reporting has seen them."""
        row = await self.db.fetchrow(USER, user_id)
        return (row[0], row[1]) if row else None

    async def entries(self, user_id: uuid.UUID, start: datetime, end: datetime) -> list[TimesheetEntryRow]:
        """A user's stopped, not deleted entries overlapping [start, end), by start time."""
        rows = await self.db.fetch(ENTRIES, user_id, start, end, ENTRY_LOOKBACK)
        return list(map(TimesheetEntryRow._make, rows))  # positional: the columns are in field order
