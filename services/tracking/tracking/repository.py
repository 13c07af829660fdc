"""All of tracking's SQL.

The invariants (one running timer, no overlap, end > start, at most 24 h) are
enforced by the database; this module turns their violations into domain
errors that name the field, by constraint name.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, any_, bindparam, delete, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from tt_common.db import violated_constraint
from tt_common.errors import AlreadyExists, InvalidArgument
from tt_common.outbox import enqueue, enqueue_many

from .domain import ENTRY_FIELDS, Entry, EntryOverlaps
from .models import EntryAudit, InvoiceClaim, TimeEntry, outbox

entries = cast(Table, TimeEntry.__table__)
audit = cast(Table, EntryAudit.__table__)
claims = cast(Table, InvoiceClaim.__table__)
ENTRY_COLUMNS = [entries.c[f] for f in ENTRY_FIELDS]
INFINITY = literal("infinity", TIMESTAMP(timezone=True))


def _entry_range(start: Any, end: Any) -> Any:
    """The same expression the exclusion constraint indexes: [start, end or infinity)."""
    return func.tstzrange(start, func.coalesce(end, INFINITY), "[)")


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
            (c.invoice_id, flt.invoice_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
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

    # --- invoicing ------------------------------------------------------------------

    async def allow_long_statements(self, seconds: int) -> None:
        """Lift the per-statement timeout for this transaction only (claims of 100k entries)."""
        await self.session.execute(text(f"SET LOCAL statement_timeout = '{int(seconds)}s'"))

    async def lock_claimable(self, project_id: uuid.UUID, start: datetime, end: datetime) -> list[Entry]:
        """Uninvoiced, billable, stopped entries of the project starting in [start, end), locked.

        Locked in entry_id order, so two overlapping claims never deadlock; a
        claim that waited for a row re-checks `invoice_id IS NULL` on the
        committed row (READ COMMITTED re-evaluation) and skips what the other took.
        """
        c = entries.c
        stmt = (
            select(*ENTRY_COLUMNS)
            .where(
                c.project_id == project_id,
                c.start_time >= start,
                c.start_time < end,
                c.invoice_id.is_(None),
                c.is_billable.is_(True),
                c.end_time.is_not(None),
            )
            .order_by(c.entry_id)
            .with_for_update()
        )
        return [Entry.from_row(r) for r in (await self.session.execute(stmt)).all()]

    async def lock_invoice_entries(self, invoice_id: uuid.UUID) -> list[Entry]:
        stmt = (
            select(*ENTRY_COLUMNS)
            .where(entries.c.invoice_id == invoice_id)
            .order_by(entries.c.entry_id)
            .with_for_update()
        )
        return [Entry.from_row(r) for r in (await self.session.execute(stmt)).all()]

    async def set_invoice(
        self, entry_ids: Sequence[uuid.UUID], invoice_id: uuid.UUID | None, now: datetime
    ) -> None:
        """Set (or clear) the invoice of entries the caller has locked; each gets version + 1.

        Nothing is returned: the caller holds the locked rows and derives the
        new ones (`Entry.with_invoice`), which spares reading 100k rows back.
        """
        if not entry_ids:
            return
        # One array parameter, not one bind per id: a claim may hold 100k entries.
        ids = bindparam("ids", value=list(entry_ids), type_=ARRAY(PG_UUID(as_uuid=True)))
        stmt = (
            update(entries)
            .where(entries.c.entry_id == any_(ids))
            .values(invoice_id=invoice_id, version=entries.c.version + 1, updated_at=now)
        )
        updated = cast(CursorResult[Any], await self.session.execute(stmt)).rowcount
        if updated != len(entry_ids):
            raise RuntimeError(f"set_invoice updated {updated} of {len(entry_ids)} locked entries")


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

    async def record_many(
        self, records: Sequence[tuple[uuid.UUID, uuid.UUID | None, str, Entry | None, Entry | None]]
    ) -> None:
        if not records:
            return
        # One statement and one JSON document (a claim audits 100k entries): per-row binds,
        # executemany and array parameters all cost far more per row than one json.dumps.
        doc = json.dumps(
            [
                [
                    str(entry_id),
                    str(actor) if actor else None,
                    action,
                    b.snapshot() if b else None,
                    a.snapshot() if a else None,
                ]
                for entry_id, actor, action, b, a in records
            ]
        )
        await self.session.execute(
            text(
                "INSERT INTO entry_audit (entry_id, actor_user_id, action, before, after)"
                " SELECT (r->>0)::uuid, (r->>1)::uuid, r->>2, NULLIF(r->3, 'null'), NULLIF(r->4, 'null')"
                " FROM jsonb_array_elements(CAST(:doc AS jsonb)) WITH ORDINALITY AS t(r, n) ORDER BY n"
            ),
            {"doc": doc},
        )

    async def page(self, entry_id: uuid.UUID, *, after_id: int | None, limit: int) -> list[AuditRecord]:
        stmt = select(audit).where(audit.c.entry_id == entry_id).order_by(audit.c.audit_id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(audit.c.audit_id > after_id)
        return [AuditRecord(**r._mapping) for r in (await self.session.execute(stmt)).all()]


@dataclass(frozen=True)
class ClaimRecord:
    invoice_id: uuid.UUID
    project_id: uuid.UUID | None
    period_start: datetime | None
    period_end: datetime | None
    released_at: datetime | None


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

    async def add_events(self, rows: Sequence[tuple[str, str | None, bytes, uuid.UUID]]) -> None:
        await enqueue_many(self.session, outbox, rows)


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
