"""Claims for invoicing: one invoice per entry, ever, under real concurrency; idempotent per invoice id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta

import grpc
import psycopg
import psycopg.rows
import psycopg.sql
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tracking_testkit import World, count_rows, hours_ago, manual, ts

from timetracking.common.v1 import types_pb2
from timetracking.events.v1 import entries_pb2
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc
from tracking.domain import ENTRY_FIELDS, Entry
from tracking.events import ENTRY_EVENT_ENCODER, encode_entry_event, snapshot
from tracking.repository import (
    MOVE_SETTINGS_SQL,
    ClaimedRow,
    EntryEventSpec,
    Repositories,
    claim_statement,
    release_statement,
)
from tt_common.db import create_engine, session_factory, transaction

Stub = tracking_pb2_grpc.TrackingServiceStub


def claim(
    w: World, invoice_id: str, start_h: float, end_h: float, now: datetime | None = None
) -> tpb.ClaimUninvoicedEntriesRequest:
    """A claim of the period [now - start_h, now - end_h); pass `now` to repeat the exact same period."""
    now = now or hours_ago(0)
    return tpb.ClaimUninvoicedEntriesRequest(
        invoice_id=invoice_id,
        project_id=w.project_id,
        period=types_pb2.Period(
            start=ts(now - timedelta(hours=start_h)), end=ts(now - timedelta(hours=end_h))
        ),
    )


async def test_concurrent_overlapping_claims_never_share_an_entry(tracking: Stub, world: World, db) -> None:
    users = [world.user_id, *[await world.new_member() for _ in range(3)]]
    created = []
    for user in users:
        for i in range(10):
            created.append(
                await manual(tracking, world, hours_ago(22 - 2 * i), hours_ago(21 - 2 * i), user_id=user)
            )
    # Ten claims at once, over overlapping windows of the same project.
    requests = [claim(world, str(uuid.uuid4()), 23 - i, 9 - i) for i in range(10)]
    results = await asyncio.gather(*(tracking.ClaimUninvoicedEntries(r) for r in requests))
    claimed = [e.entry_id for r in results for e in r.entries]
    assert len(claimed) == len(set(claimed)) == len(created)
    for request, result in zip(requests, results, strict=True):
        assert all(e.invoice_id == request.invoice_id for e in result.entries)
    assert (
        count_rows(
            db,
            "SELECT count(*) FROM time_entries WHERE project_id = %s AND invoice_id IS NULL",
            world.project_id,
        )
        == 0
    )


async def test_claim_is_idempotent_per_invoice_and_release_frees_entries(
    tracking: Stub, world: World, db
) -> None:
    inside = await manual(tracking, world, hours_ago(10), hours_ago(9))
    await manual(tracking, world, hours_ago(3), hours_ago(2))  # outside the period
    running = await tracking.StartTimer(
        tpb.StartTimerRequest(user_id=world.user_id, project_id=world.project_id)
    )
    invoice_id = str(uuid.uuid4())
    now = hours_ago(0)  # one anchor: a repeated claim must name the very same period

    first = await tracking.ClaimUninvoicedEntries(claim(world, invoice_id, 11, 8, now))
    assert [e.entry_id for e in first.entries] == [inside.entry_id] and not first.replayed
    later = await manual(tracking, world, hours_ago(8.9), hours_ago(8.5))  # arrives after the claim
    again = await tracking.ClaimUninvoicedEntries(claim(world, invoice_id, 11, 8, now))
    assert again.replayed and [e.entry_id for e in again.entries] == [inside.entry_id]
    assert later.entry_id not in {e.entry_id for e in again.entries}
    assert running.entry_id not in {e.entry_id for e in again.entries}
    # The invoice's entries, as ListEntries finds them (through the claim's project and period).
    on_invoice = await tracking.ListEntries(tpb.ListEntriesRequest(invoice_id=invoice_id))
    assert [e.entry_id for e in on_invoice.entries] == [inside.entry_id]

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.ClaimUninvoicedEntries(claim(world, invoice_id, 12, 8, now))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    released = await tracking.ReleaseEntries(tpb.ReleaseEntriesRequest(invoice_id=invoice_id))
    assert list(released.entry_ids) == [inside.entry_id]
    assert (
        list((await tracking.ReleaseEntries(tpb.ReleaseEntriesRequest(invoice_id=invoice_id))).entry_ids)
        == []
    )
    entry = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=inside.entry_id))
    assert entry.invoice_id == "" and entry.version == 3
    assert not (await tracking.ListEntries(tpb.ListEntriesRequest(invoice_id=invoice_id))).entries
    audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=inside.entry_id))
    assert [r.action for r in audit.records] == ["created", "claimed", "released"]
    # created + claimed + released
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", inside.entry_id) == 3

    # A voided invoice id never claims again; a fresh invoice gets the freed entries.
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.ClaimUninvoicedEntries(claim(world, invoice_id, 11, 8, now))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    fresh = await tracking.ClaimUninvoicedEntries(claim(world, str(uuid.uuid4()), 11, 8, now))
    assert {e.entry_id for e in fresh.entries} == {inside.entry_id, later.entry_id}


def stored_entry(db, entry_id: str) -> Entry:
    """The entry as the database holds it now."""
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    columns = psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, ENTRY_FIELDS))
    query = psycopg.sql.SQL("SELECT {} FROM time_entries WHERE entry_id = %s").format(columns)
    values = cur.execute(query, (entry_id,)).fetchone()
    assert values is not None
    return Entry(**{**values, "tags": tuple(values["tags"])})


def stored_snapshot(db, entry_id: str) -> dict:
    """The entry as the database holds it now, in the audit log's format (Entry.snapshot)."""
    return stored_entry(db, entry_id).snapshot()


def same_snapshot(logged: dict, stored: dict) -> bool:
    """Equal field by field; timestamps as instants (PostgreSQL writes 00.5, Python 00.500000)."""
    times = ("start_time", "end_time", "created_at", "updated_at")
    as_time = {k: datetime.fromisoformat(v) if k in times and v else v for k, v in logged.items()}
    return as_time == {k: datetime.fromisoformat(v) if k in times and v else v for k, v in stored.items()}


def outbox_events(db, entry_id: str) -> list[entries_pb2.EntryEvent]:
    """The entry's events in outbox order, as the relay publishes them (encoded bodies included)."""
    rows = db.execute(
        "SELECT payload, encoder, body FROM outbox WHERE key = %s ORDER BY id", (entry_id,)
    ).fetchall()
    events = []
    for payload, encoder, body in rows:
        if payload is None:
            assert encoder == ENTRY_EVENT_ENCODER
            payload = encode_entry_event(body)
        events.append(entries_pb2.EntryEvent.FromString(payload))
    return events


async def test_bulk_claim_and_release_audit_the_exact_stored_rows(tracking: Stub, world: World, db) -> None:
    """Audit records and events are built by SQL from the rows it changed: they must match the rows."""
    entries = [await manual(tracking, world, hours_ago(10 - i), hours_ago(9.5 - i)) for i in range(3)]
    invoice_id = str(uuid.uuid4())
    created = {e.entry_id: stored_snapshot(db, e.entry_id) for e in entries}

    claimed = await tracking.ClaimUninvoicedEntries(claim(world, invoice_id, 11, 6))
    assert sorted(e.entry_id for e in entries) == [e.entry_id for e in claimed.entries]
    after_claim = {e.entry_id: stored_entry(db, e.entry_id) for e in entries}
    await tracking.ReleaseEntries(tpb.ReleaseEntriesRequest(invoice_id=invoice_id))

    for e in entries:
        claimed_row = after_claim[e.entry_id]
        audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=e.entry_id))
        records = {r.action: r for r in audit.records}
        assert same_snapshot(json.loads(records["claimed"].before_json), created[e.entry_id])
        assert same_snapshot(json.loads(records["claimed"].after_json), claimed_row.snapshot())
        assert str(claimed_row.invoice_id) == invoice_id
        assert same_snapshot(json.loads(records["released"].before_json), claimed_row.snapshot())
        assert same_snapshot(json.loads(records["released"].after_json), stored_snapshot(db, e.entry_id))
        # The claim's response and events carry the stored rows too, field for field.
        response = next(c for c in claimed.entries if c.entry_id == e.entry_id)
        assert response.version == claimed_row.version == created[e.entry_id]["version"] + 1
        assert (response.task_id, response.duration_seconds, response.hourly_rate, response.invoice_id) == (
            str(claimed_row.task_id) if claimed_row.task_id else "",
            claimed_row.duration_seconds,
            format(claimed_row.hourly_rate, "f"),
            invoice_id,
        )
        created_event, claimed_event, released_event = outbox_events(db, e.entry_id)
        assert claimed_event.WhichOneof("kind") == "claimed"
        assert claimed_event.claimed.entry == snapshot(claimed_row)
        assert released_event.WhichOneof("kind") == "released"
        assert released_event.released.invoice_id == invoice_id
        assert released_event.released.entry == snapshot(stored_entry(db, e.entry_id))
        assert len({created_event.event_id, claimed_event.event_id, released_event.event_id}) == 3


async def test_a_claim_writes_one_audit_record_and_one_event_per_entry_or_nothing(
    tracking: Stub, world: World, db, session_databases
) -> None:
    """The rows, their audit records and their events commit together: a rollback leaves none of them."""
    entries = [
        await manual(tracking, world, hours_ago(20 - 0.5 * i), hours_ago(19.8 - 0.5 * i)) for i in range(30)
    ]
    ids = [e.entry_id for e in entries]
    spec = EntryEventSpec(topic="entries-test", encoder=ENTRY_EVENT_ENCODER)
    start, end = hours_ago(21), hours_ago(0)

    def written(invoice_id: uuid.UUID) -> tuple[int, int, int]:
        return (
            count_rows(db, "SELECT count(*) FROM time_entries WHERE invoice_id = %s", invoice_id),
            count_rows(
                db,
                "SELECT count(*) FROM entry_audit WHERE action = 'claimed' AND entry_id = ANY(%s::uuid[])",
                ids,
            ),
            count_rows(db, "SELECT count(*) FROM outbox WHERE key = ANY(%s) AND body IS NOT NULL", ids),
        )

    def claim(session: AsyncSession, invoice_id: uuid.UUID) -> Awaitable[list[ClaimedRow]]:
        project_id = uuid.UUID(world.project_id)
        statement = claim_statement(
            invoice_id, project_id, start, end, actor=None, now=hours_ago(0), events=spec
        )
        return Repositories.on(session).claims.move(statement)

    engine = create_engine(session_databases["tracking"])
    sessions = session_factory(engine)
    try:
        rolled_back = uuid.uuid4()
        with pytest.raises(RuntimeError, match="invoicing gave up"):
            async with transaction(sessions) as session:
                claimed = await claim(session, rolled_back)
                assert len(claimed) == 30
                raise RuntimeError("invoicing gave up")
        assert written(rolled_back) == (0, 0, 0)

        invoice_id = uuid.uuid4()
        async with transaction(sessions) as session:
            claimed = await claim(session, invoice_id)
        assert [c.entry_id for c in claimed] == sorted(ids)
        assert written(invoice_id) == (30, 30, 30)
    finally:
        await engine.dispose()
    for entry_id in ids:
        (event,) = [e for e in outbox_events(db, entry_id) if e.WhichOneof("kind") == "claimed"]
        assert event.claimed.entry == snapshot(stored_entry(db, entry_id))
        assert event.actor_user_id == ""


# Rows inserted straight into the table by the test below: stopped, billable, half an hour
# each, one user per row (no overlaps), in the given project, minutes apart from `start`.
_BULK_ENTRIES_SQL = """
INSERT INTO time_entries (entry_id, user_id, project_id, start_time, end_time, duration_seconds,
                          is_billable, hourly_rate, currency)
SELECT gen_random_uuid(), gen_random_uuid(), CAST(:project_id AS uuid),
       CAST(:start AS timestamptz) + g * interval '1 minute',
       CAST(:start AS timestamptz) + g * interval '1 minute' + interval '30 minutes',
       1800, true, 100, 'EUR'
FROM generate_series(1, :n) AS g
"""


def plan_nodes(node: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, its init plans and CTEs included."""
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


def rows_read(node: dict) -> int:
    """Rows a scan node went through over all its runs, those its filters dropped included."""
    per_run = (
        node["Actual Rows"]
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
    )
    return int(per_run * node["Actual Loops"])


async def test_a_claims_cost_follows_its_project_period_not_the_table(session_databases, db) -> None:
    """The claim's and the release's statements read the rows of the project's period a bounded
    number of times, whatever the planner believes about them.

    Each locks its rows, then updates the table joined to them. Joined on the entry id
    alone, the planner hashed the whole table when its statistics knew the rows (it read
    all 46,000 rows to claim 3,000). Restricted to the claim's filter but free to nest
    loops, it scanned the locked rows once per row of the period when the rows were too
    new to be in its statistics (it estimated 1 row for 3,000: 9,000,000 rows read). The
    statements run here under EXPLAIN ANALYZE, with their own settings, in a transaction
    that is rolled back; the table is vacuumed and analysed again afterwards.
    """
    spec = EntryEventSpec(topic="entries-test", encoder=ENTRY_EVENT_ENCODER)
    start = hours_ago(24 * 30)
    end = start + timedelta(days=30)
    engine = create_engine(session_databases["tracking"])
    sessions = session_factory(engine)

    async def plan(session, statement: tuple[str, dict]) -> list[dict]:
        sql, params = statement
        result = await session.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), params)
        return plan_nodes(result.scalar_one()[0]["Plan"])

    def claim(invoice_id: uuid.UUID, project_id: uuid.UUID) -> tuple[str, dict]:
        return claim_statement(invoice_id, project_id, start, end, actor=None, now=hours_ago(0), events=spec)

    async def bulk(session, project_id: uuid.UUID, n: int) -> None:
        values = {"project_id": str(project_id), "start": start, "n": n}
        await session.execute(text(_BULK_ENTRIES_SQL), values)

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            async with transaction(sessions) as session:
                # The statements' own settings first (their timeout covers the bulk inserts too).
                await session.execute(text(MOVE_SETTINGS_SQL))
                fresh, analysed, invoice_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
                await bulk(session, uuid.uuid4(), 40_000)
                await bulk(session, fresh, 3_000)
                situations = {
                    "a claim of rows not yet analysed": await plan(session, claim(uuid.uuid4(), fresh))
                }
                await bulk(session, analysed, 3_000)
                await session.execute(text("ANALYZE time_entries"))
                situations["a claim among 46,000 analysed rows"] = await plan(
                    session, claim(invoice_id, analysed)
                )
                await Repositories.on(session).claims.register(invoice_id, analysed, start, end)
                release = release_statement(invoice_id, actor=None, now=hours_ago(0), events=spec)
                situations["the release of that claim"] = await plan(session, release)
                for situation, nodes in situations.items():
                    moved = next(n for n in nodes if n["Node Type"] == "LockRows")["Actual Rows"]
                    assert moved == 3_000, situation
                    # A scan of the whole table, or one run once per locked row, reads far
                    # more than the 3,000 rows of the period.
                    heavy = [
                        (n["Node Type"], n.get("Alias"), rows_read(n))
                        for n in nodes
                        if "Scan" in n["Node Type"] and rows_read(n) > 2 * moved
                    ]
                    assert not heavy, f"{situation}: scans that read more than the period: {heavy}"
                raise RuntimeError("rolled back")
    finally:
        await engine.dispose()
        # The rolled-back rows are dead, and the table's size estimate kept the bulk rows.
        for table in ("time_entries", "entry_audit", "outbox"):
            db.execute(psycopg.sql.SQL("VACUUM (ANALYZE) {}").format(psycopg.sql.Identifier(table)))
