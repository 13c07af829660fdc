"""Reading the three databases: read-only, one REPEATABLE READ snapshot each, streamed.

Server-side (named) cursors fetch `FETCH_ROWS` rows at a time, sorted by the
database, so a million entries never sit in memory at once. The snapshots are
taken in the order events travel backwards — reporting, then invoicing, then
tracking — so a write still in flight shows up as "reporting is behind" or "a
generation is pending" (settleable), never as "reporting is ahead".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import IsolationLevel
from sqlalchemy.engine import make_url

from .compare import ClaimRow, EntryRow, InvoiceLineRow, LineEntryRow

FETCH_ROWS = 5_000
DATABASES = ("reporting", "invoicing", "tracking")  # the order snapshots are taken in


class SourceError(Exception):
    """A database could not be reached or read; the message names which."""


def libpq_url(url: str) -> str:
    """The services' SQLAlchemy URL (postgresql+psycopg://...) as psycopg wants it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class Snapshots:
    tracking: psycopg.Connection
    reporting: psycopg.Connection
    invoicing: psycopg.Connection


def open_snapshots(stack: ExitStack, urls: dict[str, str]) -> Snapshots:
    """One read-only REPEATABLE READ transaction per database, opened in DATABASES order."""
    conns: dict[str, psycopg.Connection] = {}
    for name in DATABASES:
        try:
            conn = stack.enter_context(
                psycopg.connect(
                    libpq_url(urls[name]), application_name="consistency-check", connect_timeout=10
                )
            )
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            # The snapshot is taken by the first statement, so take it now, in order.
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise SourceError(f"{name} database ({safe_url(urls[name])}): {exc}".strip()) from exc
        conns[name] = conn
    return Snapshots(**conns)


def _stream(conn: psycopg.Connection, name: str, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
    with conn.cursor(name=f"consistency_{name}") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(sql, params)
        yield from cur


def _only(column: str, ids: Sequence[uuid.UUID] | None) -> tuple[str, list[Any]]:
    return ("", []) if ids is None else (f"AND {column} = ANY(%s)", [list(ids)])


ENTRY_COLUMNS = """entry_id, user_id, project_id, task_id, description, tags, start_time, end_time,
    coalesce(duration_seconds, 0), is_billable, hourly_rate, currency, invoice_id, version"""


def _entry(row: tuple) -> EntryRow:
    entry_id, user, project, task, description, tags, start, end, seconds, billable = row[:10]
    rate, currency, invoice, version, *deleted = row[10:]
    return EntryRow(
        entry_id, user, project, task, description, tuple(tags), start, end, seconds, billable,
        rate, currency, invoice, version, bool(deleted and deleted[0]),
    )  # fmt: skip


def tracking_entries(conn: psycopg.Connection, only: Sequence[uuid.UUID] | None = None) -> Iterator[EntryRow]:
    where, params = _only("entry_id", only)
    sql = f"SELECT {ENTRY_COLUMNS} FROM time_entries WHERE true {where} ORDER BY entry_id"  # noqa: S608
    for row in _stream(conn, "tracking_entries", sql, params):
        yield _entry(row)


def reporting_entries(
    conn: psycopg.Connection, only: Sequence[uuid.UUID] | None = None
) -> Iterator[EntryRow]:
    where, params = _only("entry_id", only)
    sql = f"SELECT {ENTRY_COLUMNS}, deleted FROM entries WHERE true {where} ORDER BY entry_id"  # noqa: S608
    for row in _stream(conn, "reporting_entries", sql, params):
        yield _entry(row)


def invoice_lines(
    conn: psycopg.Connection, only: Sequence[uuid.UUID] | None = None
) -> Iterator[InvoiceLineRow]:
    where, params = _only("i.invoice_id", only)
    sql = f"""
        SELECT i.invoice_id, i.status, i.currency, i.subtotal, i.tax_rate, i.tax, i.total,
               i.entries_released_at IS NOT NULL, l.line_id, l.seconds, l.hourly_rate, l.amount
        FROM invoices i LEFT JOIN invoice_lines l ON l.invoice_id = i.invoice_id
        WHERE true {where}
        ORDER BY i.invoice_id, l.position"""  # noqa: S608
    for row in _stream(conn, "invoice_lines", sql, params):
        yield InvoiceLineRow(*row)


def line_entries(conn: psycopg.Connection, only: Sequence[uuid.UUID] | None = None) -> Iterator[LineEntryRow]:
    where, params = _only("l.invoice_id", only)
    sql = f"""
        SELECT l.invoice_id, e.entry_id, l.line_id
        FROM invoice_lines l CROSS JOIN LATERAL unnest(l.entry_ids) AS e(entry_id)
        WHERE true {where}
        ORDER BY l.invoice_id, e.entry_id"""  # noqa: S608
    for row in _stream(conn, "line_entries", sql, params):
        yield LineEntryRow(*row)


def claims(conn: psycopg.Connection, only: Sequence[uuid.UUID] | None = None) -> Iterator[ClaimRow]:
    where, params = _only("invoice_id", only)
    sql = f"""
        SELECT invoice_id, entry_id, coalesce(duration_seconds, 0), hourly_rate
        FROM time_entries WHERE invoice_id IS NOT NULL {where}
        ORDER BY invoice_id, entry_id"""  # noqa: S608
    for row in _stream(conn, "claims", sql, params):
        yield ClaimRow(*row)


def pending_generations(conn: psycopg.Connection) -> set[uuid.UUID]:
    """Invoice ids of generations between claim and save (few: the reconciler completes them)."""
    return {row[0] for row in conn.execute("SELECT invoice_id FROM invoice_requests WHERE state = 'PENDING'")}


def entries_billed_twice(conn: psycopg.Connection) -> Iterator[tuple[uuid.UUID, list[uuid.UUID]]]:
    """Entries on more than one line of non-VOID invoices (grouped by PostgreSQL, not here)."""
    sql = """
        SELECT e.entry_id, array_agg(l.invoice_id ORDER BY l.invoice_id)
        FROM invoice_lines l
        JOIN invoices i ON i.invoice_id = l.invoice_id
        CROSS JOIN LATERAL unnest(l.entry_ids) AS e(entry_id)
        WHERE i.status <> 'VOID'
        GROUP BY e.entry_id HAVING count(*) > 1
        ORDER BY e.entry_id"""
    yield from _stream(conn, "billed_twice", sql)


@dataclass(frozen=True)
class Backlog:
    """Tracking's outbox rows not yet published to Kafka."""

    events: int
    oldest_age_seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"events": self.events, "oldest_age_seconds": round(self.oldest_age_seconds, 3)}


def outbox_backlog(conn: psycopg.Connection) -> Backlog:
    row = conn.execute(
        """SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)
           FROM outbox WHERE published_at IS NULL"""
    ).fetchone()
    assert row is not None
    return Backlog(int(row[0]), float(row[1]))


def unpublished_entries(conn: psycopg.Connection, entry_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these entries still have an event waiting in tracking's outbox (keyed by entry id)."""
    if not entry_ids:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT key FROM outbox WHERE published_at IS NULL AND key = ANY(%s)",
        ([str(e) for e in entry_ids],),
    )
    return {uuid.UUID(row[0]) for row in rows}
