"""All of tracking's SQL.

The invariants (one running timer, no overlap, end > start, at most 24 h) are
enforced by the database; this module turns their violations into domain
errors that name the field, by constraint name.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import TIMESTAMP, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from tt_common.db import violated_constraint
from tt_common.errors import AlreadyExists, InvalidArgument
from tt_common.outbox import enqueue, notify_relay, trace_headers

from .domain import ENTRY_FIELDS, Entry, EntryOverlaps
from .models import EntryAudit, InvoiceClaim, TimeEntry, outbox

entries = cast(Table, TimeEntry.__table__)
audit = cast(Table, EntryAudit.__table__)
claims = cast(Table, InvoiceClaim.__table__)
ENTRY_COLUMNS = [entries.c[f] for f in ENTRY_FIELDS]
INFINITY = literal("infinity", TIMESTAMP(timezone=True))
# A claim of 100k entries runs longer than the default per-statement timeout.
CLAIM_STATEMENT_TIMEOUT_S = 300
# Memory for one claim's sorts; only while that transaction runs.
CLAIM_WORK_MEM = "256MB"


def _entry_range(start: Any, end: Any) -> Any:
    """The same expression the exclusion constraint indexes: [start, end or infinity)."""
    return func.tstzrange(start, func.coalesce(end, INFINITY), "[)")


def on_invoice(invoice_id: uuid.UUID) -> list[Any]:
    """The entries on an invoice, as conditions an index serves (see `_ON_INVOICE`)."""

    def claimed(column: Any) -> Any:
        return select(column).where(claims.c.invoice_id == invoice_id).scalar_subquery()

    c = entries.c
    return [
        c.invoice_id == invoice_id,
        c.project_id == claimed(claims.c.project_id),
        c.start_time >= claimed(claims.c.period_start),
        c.start_time < claimed(claims.c.period_end),
    ]


_RANGE = re.compile(r'\["?([^",\]]+)"?,"?([^",)]+)"?\)')


def constraint_error(exc: Exception) -> Exception:
    """The domain error for a violated constraint (either driver), or `exc` if it is not one of ours."""
    violated = violated_constraint(exc)
    if violated is None:
        return exc
    name, detail = violated
    if name == "ex_time_entries_no_overlap":
        ranges = _RANGE.findall(detail)
        other = f"another entry ({ranges[-1][0]} to {ranges[-1][1]})" if ranges else "another entry"
        return EntryOverlaps(other.replace(" to infinity", ", still running"))
    if name == "uq_time_entries_one_running_timer":
        return AlreadyExists("a timer is already running for this user")
    if name == "ck_time_entries_end_after_start":
        return InvalidArgument.field("end_time", "must be after start_time")
    if name == "ck_time_entries_at_most_24h":
        return InvalidArgument.field("end_time", "must be at most 24 hours after start_time")
    return exc


@dataclass(frozen=True)
class EntryFilter:
    user_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    invoice_id: uuid.UUID | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    billable: bool | None = None
    invoiced: bool | None = None
    running: bool | None = None
    tags: tuple[str, ...] = ()


class EntryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _execute(self, stmt: Executable) -> Any:
        try:
            return await self.session.execute(stmt)
        except IntegrityError as exc:
            raise constraint_error(exc) from exc

    async def serialize_user(self, user_id: uuid.UUID) -> None:
        """A transaction-scoped lock on one user's timer: the fallback when Redis is not there."""
        await self.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"timer:{user_id}", 0)))
        )

    async def insert_running(self, values: dict[str, Any]) -> Entry | None:
        """Insert a running timer; None (and nothing written) when the user already has one."""
        stmt = (
            insert(entries)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["user_id"], index_where=entries.c.end_time.is_(None))
            .returning(*ENTRY_COLUMNS)
        )
        row = (await self._execute(stmt)).first()
        return Entry.from_row(row) if row else None

    async def insert(self, values: dict[str, Any]) -> Entry:
        row = (await self._execute(insert(entries).values(**values).returning(*ENTRY_COLUMNS))).one()
        return Entry.from_row(row)

    async def get(self, entry_id: uuid.UUID, *, for_update: bool = False) -> Entry | None:
        stmt = select(*ENTRY_COLUMNS).where(entries.c.entry_id == entry_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        return Entry.from_row(row) if row else None

    async def running_for_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> Entry | None:
        stmt = select(*ENTRY_COLUMNS).where(entries.c.user_id == user_id, entries.c.end_time.is_(None))
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        return Entry.from_row(row) if row else None

    async def first_overlapping(
        self, user_id: uuid.UUID, start: datetime, end: datetime | None, *, excluding: uuid.UUID | None
    ) -> Entry | None:
        """An entry of the user overlapping [start, end): to name it in the error (the constraint decides)."""
        stmt = (
            select(*ENTRY_COLUMNS)
            .where(
                entries.c.user_id == user_id,
                _entry_range(entries.c.start_time, entries.c.end_time).op("&&")(_entry_range(start, end)),
            )
            .order_by(entries.c.start_time)
            .limit(1)
        )
        if excluding is not None:
            stmt = stmt.where(entries.c.entry_id != excluding)
        row = (await self.session.execute(stmt)).first()
        return Entry.from_row(row) if row else None

    async def update(
        self, entry_id: uuid.UUID, expected_version: int, values: dict[str, Any], now: datetime
    ) -> Entry | None:
        """Apply `values` if the entry still has `expected_version` and is not invoiced; bump the version.

        None when it changed meanwhile (the caller reports a conflict). Two
        concurrent updates of one version: the second waits for the first's
        row lock, re-checks `version` on the new row and matches nothing.
        """
        stmt = (
            update(entries)
            .where(
                entries.c.entry_id == entry_id,
                entries.c.version == expected_version,
                entries.c.invoice_id.is_(None),
            )
            .values(**values, version=entries.c.version + 1, updated_at=now)
            .returning(*ENTRY_COLUMNS)
        )
        row = (await self._execute(stmt)).first()
        return Entry.from_row(row) if row else None

    async def delete(self, entry_id: uuid.UUID, expected_version: int) -> bool:
        stmt = (
            delete(entries)
            .where(
                entries.c.entry_id == entry_id,
                entries.c.version == expected_version,
                entries.c.invoice_id.is_(None),
            )
            .returning(entries.c.entry_id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def page(
        self, flt: EntryFilter, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Entry]:
        """Newest first, keyset-paginated on (start_time, entry_id)."""
        c = entries.c
        stmt = select(*ENTRY_COLUMNS).order_by(c.start_time.desc(), c.entry_id.desc()).limit(limit)
        for column, value in (
            (c.user_id, flt.user_id),
            (c.project_id, flt.project_id),
            (c.task_id, flt.task_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if flt.invoice_id is not None:
            stmt = stmt.where(*on_invoice(flt.invoice_id))
        if flt.period_start is not None:
            stmt = stmt.where(c.start_time >= flt.period_start)
        if flt.period_end is not None:
            stmt = stmt.where(c.start_time < flt.period_end)
        if flt.billable is not None:
            stmt = stmt.where(c.is_billable.is_(flt.billable))
        if flt.invoiced is not None:
            stmt = stmt.where(c.invoice_id.is_not(None) if flt.invoiced else c.invoice_id.is_(None))
        if flt.running is not None:
            stmt = stmt.where(c.end_time.is_(None) if flt.running else c.end_time.is_not(None))
        if flt.tags:
            stmt = stmt.where(c.tags.contains(list(flt.tags)))
        if after is not None:
            stmt = stmt.where(tuple_(c.start_time, c.entry_id) < tuple_(*after))
        return [Entry.from_row(r) for r in (await self.session.execute(stmt)).all()]

    async def running_since_before(self, cutoff: datetime, limit: int) -> list[Entry]:
        """Running timers started before `cutoff`, locked; rows another sweeper holds are skipped."""
        stmt = (
            select(*ENTRY_COLUMNS)
            .where(entries.c.end_time.is_(None), entries.c.start_time < cutoff)
            .order_by(entries.c.start_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [Entry.from_row(r) for r in (await self.session.execute(stmt)).all()]


@dataclass(frozen=True)
class AuditRecord:
    audit_id: int
    entry_id: uuid.UUID
    actor_user_id: uuid.UUID | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        entry_id: uuid.UUID,
        actor: uuid.UUID | None,
        action: str,
        before: Entry | None,
        after: Entry | None,
    ) -> None:
        # One row: a plain INSERT (record_many's executemany path costs more per call).
        await self.session.execute(
            insert(audit).values(
                entry_id=entry_id,
                actor_user_id=actor,
                action=action,
                before=before.snapshot() if before else None,
                after=after.snapshot() if after else None,
            )
        )

    async def page(self, entry_id: uuid.UUID, *, after_id: int | None, limit: int) -> list[AuditRecord]:
        stmt = select(audit).where(audit.c.entry_id == entry_id).order_by(audit.c.audit_id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(audit.c.audit_id > after_id)
        return [AuditRecord(**r._mapping) for r in (await self.session.execute(stmt)).all()]


class ClaimedRow(NamedTuple):
    """What invoicing needs of a claimed entry (ids as text, the rate as its exact decimal text)."""

    entry_id: str
    task_id: str | None
    duration_seconds: int
    hourly_rate: str
    currency: str
    version: int


# `Entry.snapshot()` of the locked row, built by PostgreSQL with one to_jsonb of the row: the
# same keys and JSON types. The rate is its exact decimal text (as `format(rate, "f")`);
# timestamps are ISO 8601 (the claim sets the transaction's TimeZone to UTC).
_SNAPSHOT_COLUMNS_SQL = ", ".join(
    "hourly_rate::text AS hourly_rate" if f == "hourly_rate" else f for f in ENTRY_FIELDS
)
# What a move changes: the UPDATE sets these and nothing else, so the "after" snapshot is
# the "before" one with these keys replaced.
_MOVED_FIELDS = ("invoice_id", "version", "updated_at")
_CHANGED_SQL = "jsonb_build_object({})".format(", ".join(f"'{f}', t.{f}" for f in _MOVED_FIELDS))
_CLAIMED_ROW_SQL = "entry_id::text, task_id::text, duration_seconds, hourly_rate::text, currency, version"

# One statement moves entries onto (or off) an invoice and writes, for every
# moved row, its audit record (before and after) and its outbox event, all
# built by PostgreSQL from the locked and the updated row: no row travels to
# Python except the lean answer. Rows are locked in entry_id order (FOR UPDATE
# in the first CTE), so overlapping claims never deadlock; a claim that waited
# for a row re-checks its WHERE on the committed row (READ COMMITTED) and skips
# what the other claim took. The event body is encoded into the protobuf
# EntryEvent by the outbox relay (`encoder`).
#
# Building JSON is most of the statement's cost (PostgreSQL 15 looks up every
# value's type on every call), so each row's snapshot is built once: the "before"
# from the locked row (to_jsonb of the whole row), the "after" by replacing the
# moved columns in it (`||`), and the event embeds that "after". The audit and
# outbox rows are inserted in the order the rows were moved, not re-sorted: within
# one statement every entry has one event, so no key's events can be reordered.
#
# The update finds the locked rows through the same filter (`where_t`, a no-op for
# the rows: each locked row passes it, and no other transaction can change a row
# we hold), so the planner reads only the claim's project and period on its index.
# Joined on entry_id alone it may hash the whole table to find them: to claim 3,000
# rows among 46,000 it read all 46,000 (test_claims), and a claim's cost then grew
# with the table, not with the project's period.
_MOVE_ENTRIES_SQL = f"""
WITH locked AS (
    SELECT {_SNAPSHOT_COLUMNS_SQL} FROM {entries.name}
    WHERE {{where}}
    ORDER BY entry_id
    FOR UPDATE
), moved AS (
    -- RETURNING sees the FROM row too: the locked row is the "before", t the "after".
    UPDATE {entries.name} AS t
    SET invoice_id = CAST(:new_invoice_id AS uuid), version = t.version + 1, updated_at = :now
    FROM locked
    WHERE t.entry_id = locked.entry_id AND {{where_t}}
    RETURNING t.entry_id, t.task_id, t.duration_seconds, t.hourly_rate, t.currency, t.version,
              gen_random_uuid() AS event_id, to_jsonb(locked) AS before, {_CHANGED_SQL} AS changed
), snapshots AS (
    SELECT entry_id, event_id, before, before || changed AS after FROM moved
), audited AS (
    INSERT INTO {audit.name} (entry_id, actor_user_id, action, before, after)
    SELECT entry_id, CAST(:actor AS uuid), CAST(:action AS text), before, after FROM snapshots
), published AS (
    INSERT INTO {outbox.name} (event_id, topic, key, encoder, body, headers)
    SELECT event_id, CAST(:topic AS text), entry_id::text, CAST(:encoder AS text),
           jsonb_build_object(
               'event_id', event_id,
               'occurred_at', CAST(:occurred_at AS text),
               'actor_user_id', CAST(:actor AS uuid),
               'kind', CAST(:action AS text),
               'invoice_id', CAST(:event_invoice_id AS uuid),
               'entry', after
           ),
           CAST(:headers AS jsonb)
    FROM snapshots
)
-- Sorted on the uuid itself (moved.entry_id), not on its text form: the same order, cheaper.
SELECT {_CLAIMED_ROW_SQL} FROM moved ORDER BY moved.entry_id
"""  # noqa: S608 - table and column names are ours

# The move's settings, for its transaction only (set_config(..., true) is SET LOCAL):
# - the snapshots' timestamps in UTC, whatever the server's default;
# - a claim of 100k entries runs longer than the default per-statement timeout;
# - it sorts the locked rows and holds the moved rows with their snapshots in memory,
#   not in temporary files (100k rows spilled ~240 MB with the default 4 MB);
# - no nested loop for its one join: when the planner takes the locked rows for a few
#   (new entries not yet analysed: it estimated 1 row for 100,000), a nested loop scans
#   the locked rows once per row of the period. A hash join on the same period is linear
#   in the period's rows whatever the estimate (100k entries: 3.0 / 3.4 s against 2.8 /
#   3.8 s for the nested loop on the primary key the planner chose before `where_t`).
MOVE_SETTINGS_SQL = (
    "SELECT set_config('TimeZone', 'UTC', true),"
    f" set_config('statement_timeout', '{CLAIM_STATEMENT_TIMEOUT_S}s', true),"
    f" set_config('work_mem', '{CLAIM_WORK_MEM}', true),"
    " set_config('enable_nestloop', 'off', true)"
)
# Filters on time_entries; `{t}` is the table's alias with its dot, or nothing.
_CLAIMABLE = (
    "{t}project_id = CAST(:project_id AS uuid) AND {t}start_time >= :start AND {t}start_time < :end"
    " AND {t}invoice_id IS NULL AND {t}is_billable AND {t}end_time IS NOT NULL"
)
# No index covers invoice_id (claims are heap-only updates, migration 0004). An invoice's
# entries lie in its claim's project and period - a claim takes nothing else and invoiced
# entries are read-only - so they are found on ix_time_entries_project_start.
_CLAIM_OF = "(SELECT c.{column} FROM invoice_claims AS c WHERE c.invoice_id = CAST(:invoice_id AS uuid))"
_ON_INVOICE = (
    "{t}invoice_id = CAST(:invoice_id AS uuid)"
    f" AND {{t}}project_id = {_CLAIM_OF.format(column='project_id')}"
    f" AND {{t}}start_time >= {_CLAIM_OF.format(column='period_start')}"
    f" AND {{t}}start_time < {_CLAIM_OF.format(column='period_end')}"
)
_INVOICE_ENTRIES_SQL = (
    f"SELECT {_CLAIMED_ROW_SQL} FROM {entries.name} WHERE {_ON_INVOICE.format(t='')}"  # noqa: S608
    " ORDER BY entry_id FOR UPDATE"
)


@dataclass(frozen=True)
class EntryEventSpec:
    """Where and how the moved entries' events go: the relay encodes `encoder` bodies."""

    topic: str
    encoder: str


@dataclass(frozen=True)
class ClaimRecord:
    invoice_id: uuid.UUID
    project_id: uuid.UUID | None
    period_start: datetime | None
    period_end: datetime | None
    released_at: datetime | None


def claim_statement(
    invoice_id: uuid.UUID,
    project_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    actor: uuid.UUID | None,
    now: datetime,
    events: EntryEventSpec,
) -> tuple[str, dict[str, Any]]:
    """The statement (and its parameters) that puts the project's uninvoiced, billable, stopped
    entries starting in [start, end) on the invoice; `ClaimRepository.move` runs it."""
    moves = {"new_invoice_id": invoice_id, "action": "claimed", "event_invoice_id": None}
    values = {"project_id": project_id, "start": start, "end": end}
    return _move_statement(_CLAIMABLE, {**values, **moves}, actor=actor, now=now, events=events)


def release_statement(
    invoice_id: uuid.UUID, *, actor: uuid.UUID | None, now: datetime, events: EntryEventSpec
) -> tuple[str, dict[str, Any]]:
    """The release's statement and its parameters (as `claim_statement`)."""
    moves = {"new_invoice_id": None, "action": "released", "event_invoice_id": invoice_id}
    values = {"invoice_id": invoice_id}
    return _move_statement(_ON_INVOICE, {**values, **moves}, actor=actor, now=now, events=events)


def _move_statement(
    where: str, params: dict[str, Any], *, actor: uuid.UUID | None, now: datetime, events: EntryEventSpec
) -> tuple[str, dict[str, Any]]:
    """`where` on the rows to lock, and again on the updated table; `params` its values and the move's."""
    return _MOVE_ENTRIES_SQL.format(where=where.format(t=""), where_t=where.format(t="t.")), {
        **params,
        "now": now,
        "actor": actor,
        "occurred_at": now.isoformat(),
        "topic": events.topic,
        "encoder": events.encoder,
        "headers": json.dumps(trace_headers()),
    }


class ClaimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def register(
        self, invoice_id: uuid.UUID, project_id: uuid.UUID, start: datetime, end: datetime
    ) -> bool:
        """True when this invoice id claims for the first time.

        The primary key serialises two concurrent calls with one invoice id:
        the second waits for the first to commit, then finds the row.
        """
        stmt = (
            insert(claims)
            .values(invoice_id=invoice_id, project_id=project_id, period_start=start, period_end=end)
            .on_conflict_do_nothing(index_elements=["invoice_id"])
            .returning(claims.c.invoice_id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def get(self, invoice_id: uuid.UUID, *, for_update: bool = False) -> ClaimRecord | None:
        stmt = select(
            claims.c.invoice_id,
            claims.c.project_id,
            claims.c.period_start,
            claims.c.period_end,
            claims.c.released_at,
        ).where(claims.c.invoice_id == invoice_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        return ClaimRecord(**row._mapping) if row else None

    async def move(self, statement: tuple[str, dict[str, Any]]) -> list[ClaimedRow]:
        """Run a claim's or a release's statement (`claim_statement`, `release_statement`) in the
        caller's transaction: each entry it moves gets version + 1, an audit record and an event."""
        sql, params = statement
        await self.session.execute(text(MOVE_SETTINGS_SQL))
        rows = await self.session.execute(text(sql), params)
        moved = [ClaimedRow(*r) for r in rows.all()]
        if moved:
            await notify_relay(self.session)
        return moved

    async def claimed_entries(self, invoice_id: uuid.UUID) -> list[ClaimedRow]:
        """The entries an invoice holds (a replayed claim's answer), locked like a claim locks them."""
        rows = await self.session.execute(text(_INVOICE_ENTRIES_SQL), {"invoice_id": invoice_id})
        return [ClaimedRow(*r) for r in rows.all()]

    async def mark_released(self, invoice_id: uuid.UUID, now: datetime) -> None:
        """Remember the release, even for an invoice that never claimed: a late claim is then refused."""
        stmt = insert(claims).values(invoice_id=invoice_id, released_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["invoice_id"],
            set_={"released_at": func.coalesce(claims.c.released_at, stmt.excluded.released_at)},
        )
        await self.session.execute(stmt)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_event(self, *, topic: str, key: str, payload: bytes, event_id: uuid.UUID) -> None:
        await enqueue(self.session, outbox, topic=topic, key=key, payload=payload, event_id=event_id)


@dataclass(frozen=True)
class Repositories:
    """Every repository, on one session (one transaction)."""

    entries: EntryRepository
    audit: AuditRepository
    claims: ClaimRepository
    outbox: OutboxRepository

    @classmethod
    def on(cls, session: AsyncSession) -> Repositories:
        return cls(
            EntryRepository(session),
            AuditRepository(session),
            ClaimRepository(session),
            OutboxRepository(session),
        )
