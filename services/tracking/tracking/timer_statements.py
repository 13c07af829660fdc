"""The hot paths in SQL (timers, manual entries): one statement per write, on raw connections.

StartTimer, StopTimer and CreateManualEntry are most of tracking's traffic.
Through the ORM each cost five to seven round trips (BEGIN, the statements,
COMMIT) and most of the service's CPU; here a start is one statement, a stop is
one read plus one statement (no read when this process started the timer:
`started_here`), and a manual entry is one statement. Each write is a
data-modifying CTE, so the entry, its audit record and (for a stop or a manual
entry) its outbox event commit together or not at all: one statement is one
transaction. The domain decides every value (timers.py); these statements only
write them, conditionally on the row being what was read (same version and
start, still running; every edit bumps the version). A statement that matched
nothing returns False and the caller falls back to the locked, transactional
path in repository.py. Constraint violations become the same domain errors as
there, by name.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from asyncpg.exceptions import DeadlockDetectedError

from tt_common.db import DriverPool
from tt_common.outbox import NOTIFY_CHANNEL, trace_headers

from .domain import ENTRY_FIELDS, Entry, EntryOverlaps
from .repository import constraint_error

_COLUMNS = ", ".join(ENTRY_FIELDS)

_RUNNING = f"SELECT {_COLUMNS} FROM time_entries WHERE user_id = $1 AND end_time IS NULL"  # noqa: S608

# ON CONFLICT on the one-running-timer index: a running timer means no row and no audit record.
_INSERT_RUNNING = """
WITH entry AS (
    INSERT INTO time_entries (entry_id, user_id, project_id, task_id, description, start_time,
                              is_billable, hourly_rate, currency, tags, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $6, $6)
    ON CONFLICT (user_id) WHERE end_time IS NULL DO NOTHING
    RETURNING entry_id
), audit AS (
    INSERT INTO entry_audit (entry_id, actor_user_id, action, after)
    SELECT entry_id, $11::uuid, $12::text, $13::jsonb FROM entry
)
SELECT count(*) FROM entry
"""

_DISCARD = """
WITH gone AS (
    DELETE FROM time_entries
    WHERE entry_id = $1 AND version = $2 AND start_time = $6 AND end_time IS NULL AND invoice_id IS NULL
    RETURNING entry_id
), audit AS (
    INSERT INTO entry_audit (entry_id, actor_user_id, action, before)
    SELECT entry_id, $3::uuid, $4::text, $5::jsonb FROM gone
)
SELECT count(*) FROM gone
"""

# pg_notify wakes the outbox relay at commit, as tt_common.outbox.enqueue does.
_FINISH = f"""
WITH stopped AS (
    UPDATE time_entries
    SET end_time = $3, duration_seconds = $4, capped = $5, version = version + 1, updated_at = $6
    WHERE entry_id = $1 AND version = $2 AND start_time = $16 AND end_time IS NULL AND invoice_id IS NULL
    RETURNING entry_id
), audit AS (
    INSERT INTO entry_audit (entry_id, actor_user_id, action, before, after)
    SELECT entry_id, $7::uuid, $8::text, $9::jsonb, $10::jsonb FROM stopped
), event AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT $11::uuid, $12::text, $13::text, $14::bytea, $15::jsonb FROM stopped
    RETURNING id
)
SELECT (SELECT count(*) FROM stopped), (SELECT count(pg_notify('{NOTIFY_CHANNEL}', '')) FROM event)
"""  # noqa: S608 - constants only; every value is a parameter

# A manual entry is born stopped: the row, its "created" audit record and its EntryStopped event.
_INSERT_STOPPED = f"""
WITH entry AS (
    INSERT INTO time_entries (entry_id, user_id, project_id, task_id, description, start_time,
                              end_time, duration_seconds, is_billable, hourly_rate, currency, tags,
                              created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
    RETURNING entry_id
), audit AS (
    INSERT INTO entry_audit (entry_id, actor_user_id, action, after)
    SELECT entry_id, $14::uuid, $15::text, $16::jsonb FROM entry
), event AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT $17::uuid, $18::text, $19::text, $20::bytea, $21::jsonb FROM entry
    RETURNING id
)
SELECT count(pg_notify('{NOTIFY_CHANNEL}', '')) FROM event
"""  # noqa: S608 - constants only; every value is a parameter


_MAX_REMEMBERED = 50_000


class TimerStatements:
    """The fused statements of timers and manual entries, on the service's `DriverPool`."""

    def __init__(self, db: DriverPool, *, topic: str) -> None:
        self.db = db
        self.topic = topic
        # The timers this process started, as written, with their audit snapshot: a stop usually
        # follows its start here, and then needs no read (the write re-checks the row) and no
        # second snapshot of the same entry (its "before" is the start's "after").
        self._started: dict[uuid.UUID, tuple[Entry, str]] = {}

    def started_here(self, user_id: uuid.UUID) -> Entry | None:
        """The running timer this process started for the user, as it was written; it may have
        changed or stopped since (the writes below match nothing then)."""
        started = self._started.get(user_id)
        return started[0] if started is not None else None

    def _snapshot(self, entry: Entry) -> str:
        """`entry`'s audit snapshot as JSON: the one its start wrote when it is that very entry."""
        started = self._started.get(entry.user_id)
        if started is not None and started[0] is entry:
            return started[1]
        return json.dumps(entry.snapshot())

    async def _write(self, sql: str, *args: Any) -> Any:
        try:
            return await self.db.fetchrow(sql, *args)
        except Exception as exc:
            mapped = constraint_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def running_for_user(self, user_id: uuid.UUID) -> Entry | None:
        """The user's running timer as committed now (not locked: the writes re-check it)."""
        row = await self.db.fetchrow(_RUNNING, user_id)
        return Entry.from_mapping(row) if row else None

    async def insert_running(self, entry: Entry, actor: uuid.UUID | None, action: str) -> bool:
        """Insert `entry` (running) with its audit record; False, writing nothing, when one already runs."""
        snapshot = json.dumps(entry.snapshot())
        row = await self._write(
            _INSERT_RUNNING,
            entry.entry_id,
            entry.user_id,
            entry.project_id,
            entry.task_id,
            entry.description,
            entry.start_time,
            entry.is_billable,
            entry.hourly_rate,
            entry.currency,
            list(entry.tags),
            actor,
            action,
            snapshot,
        )
        if not row[0]:
            return False
        if len(self._started) >= _MAX_REMEMBERED:
            self._started.clear()
        self._started[entry.user_id] = (entry, snapshot)
        return True

    async def discard(self, running: Entry, actor: uuid.UUID | None, action: str) -> bool:
        """Delete the running timer as read, with its audit record; False when it changed meanwhile."""
        row = await self._write(
            _DISCARD,
            running.entry_id,
            running.version,
            actor,
            action,
            self._snapshot(running),
            running.start_time,
        )
        self._started.pop(running.user_id, None)
        return bool(row[0])

    async def finish(
        self,
        running: Entry,
        stopped: Entry,
        actor: uuid.UUID | None,
        action: str,
        event: tuple[uuid.UUID, bytes],
    ) -> bool:
        """Turn `running` (as read) into `stopped`, with its audit record and outbox event.

        False, writing nothing, when the row is no longer the running timer
        at `running.version` (stopped or edited meanwhile).
        """
        event_id, payload = event
        row = await self._write(
            _FINISH,
            running.entry_id,
            running.version,
            stopped.end_time,
            stopped.duration_seconds,
            stopped.capped,
            stopped.updated_at,
            actor,
            action,
            self._snapshot(running),
            json.dumps(stopped.snapshot()),
            event_id,
            self.topic,
            str(stopped.entry_id),
            payload,
            json.dumps(trace_headers()),
            running.start_time,
        )
        self._started.pop(running.user_id, None)
        return bool(row[0])

    async def insert_stopped(
        self, entry: Entry, actor: uuid.UUID | None, action: str, event: tuple[uuid.UUID, bytes]
    ) -> None:
        """Insert the stopped `entry` with its audit record and outbox event.

        Raises the constraint's domain error (EntryOverlaps for an overlap), writing nothing.
        """
        event_id, payload = event
        try:
            await self._write(
                _INSERT_STOPPED,
                entry.entry_id,
                entry.user_id,
                entry.project_id,
                entry.task_id,
                entry.description,
                entry.start_time,
                entry.end_time,
                entry.duration_seconds,
                entry.is_billable,
                entry.hourly_rate,
                entry.currency,
                list(entry.tags),
                entry.created_at,
                actor,
                action,
                json.dumps(entry.snapshot()),
                event_id,
                self.topic,
                str(entry.entry_id),
                payload,
                json.dumps(trace_headers()),
            )
        except DeadlockDetectedError as exc:
            # Two inserts that overlap each other can wait on each other in the exclusion
            # check, and PostgreSQL then aborts one: for the one aborted, that is the overlap.
            raise EntryOverlaps("another entry booked at the same moment") from exc
