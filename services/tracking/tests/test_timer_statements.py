"""The one-statement paths of timers and manual entries (timer_statements.py) against the real
database and service:
what it answers is what it stored, the entry, its audit record and its event commit together or
not at all, constraint violations still name the field, and a row that changed meanwhile is
left to the locked path."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import psycopg
import pytest
from tracking_testkit import World, backdate_running_timer, count_rows, field_violations, manual

from timetracking.events.v1 import entries_pb2
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc
from tracking.domain import Entry, EntryOverlaps
from tracking.timer_statements import TimerStatements
from tt_common.db import DriverPool

Stub = tracking_pb2_grpc.TrackingServiceStub


def start_request(w: World, user_id: str | None = None) -> tpb.StartTimerRequest:
    user = user_id or w.user_id
    return tpb.StartTimerRequest(
        actor_user_id=user, user_id=user, project_id=w.project_id, task_id=w.task_id, tags=["x"]
    )


@pytest.fixture
async def statements(session_databases: dict[str, str]) -> AsyncIterator[TimerStatements]:
    pool = DriverPool(session_databases["tracking"], size=2)
    try:
        yield TimerStatements(pool, topic="timetracking.entries.v1")
    finally:
        await pool.close()


def running_entry(user: uuid.UUID, start: datetime) -> Entry:
    return Entry(
        entry_id=uuid.uuid4(),
        user_id=user,
        project_id=uuid.uuid4(),
        task_id=None,
        description="direct",
        start_time=start,
        end_time=None,
        duration_seconds=None,
        is_billable=True,
        hourly_rate=Decimal("100.00"),
        currency="EUR",
        tags=("a",),
        invoice_id=None,
        capped=False,
        version=1,
        created_at=start,
        updated_at=start,
    )


async def test_start_and_stop_answer_exactly_what_was_stored_and_audited(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    started = await tracking.StartTimer(start_request(world))
    assert started == await tracking.GetEntry(tpb.GetEntryRequest(entry_id=started.entry_id))
    backdate_running_timer(db, started.entry_id, timedelta(hours=2))

    stopped = await tracking.StopTimer(
        tpb.StopTimerRequest(actor_user_id=world.user_id, user_id=world.user_id)
    )
    stored = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=started.entry_id))
    assert stopped.entry == stored and stored.version == 2 and not stored.running

    audit = (await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=started.entry_id))).records
    assert [r.action for r in audit] == ["timer_started", "timer_stopped"]
    assert all(r.actor_user_id == world.user_id for r in audit)
    after = json.loads(audit[1].after_json)
    before = json.loads(audit[1].before_json)
    assert (after["version"], after["duration_seconds"], after["end_time"] is not None) == (
        2,
        stored.duration_seconds,
        True,
    )
    assert (before["version"], before["end_time"]) == (1, None)
    assert json.loads(audit[0].after_json)["tags"] == ["x"]

    rows = db.execute(
        "SELECT event_id, payload, headers FROM outbox WHERE key = %s", (started.entry_id,)
    ).fetchall()
    assert len(rows) == 1
    event = entries_pb2.EntryEvent.FromString(rows[0][1])
    assert event.event_id == str(rows[0][0]) and event.actor_user_id == world.user_id
    assert event.stopped.entry.version == 2
    assert event.stopped.entry.duration_seconds == stored.duration_seconds


async def test_a_start_overlapping_an_entry_names_the_fields_and_writes_nothing(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    # A manual entry may end a little in the future (clock skew): a timer started now overlaps it.
    now = datetime.now(UTC).replace(microsecond=0)
    await manual(tracking, world, now - timedelta(minutes=10), now + timedelta(seconds=90))
    audits = count_rows(db, "SELECT count(*) FROM entry_audit WHERE after->>'user_id' = %s", world.user_id)

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StartTimer(start_request(world))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v["field"] for v in field_violations(exc.value)] == ["start_time", "end_time"]
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", world.user_id) == 1
    assert (
        count_rows(db, "SELECT count(*) FROM entry_audit WHERE after->>'user_id' = %s", world.user_id)
        == audits
    )


async def test_the_statement_maps_the_constraint_by_name(
    statements: TimerStatements, db: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    now = datetime.now(UTC)
    db.execute(
        """INSERT INTO time_entries (entry_id, user_id, project_id, start_time, end_time,
                                     is_billable, hourly_rate, currency)
           VALUES (%s, %s, %s, %s, %s, true, 100.00, 'EUR')""",
        (uuid.uuid4(), user, uuid.uuid4(), now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    with pytest.raises(EntryOverlaps) as exc:
        await statements.insert_running(running_entry(user, now), user, "timer_started")
    assert [v.field for v in exc.value.violations] == ["start_time", "end_time"]
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", user) == 1


async def test_a_stop_writes_entry_audit_and_event_together_or_not_at_all(
    statements: TimerStatements, db: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    running = running_entry(user, datetime.now(UTC) - timedelta(hours=1))
    assert await statements.insert_running(running, user, "timer_started")
    # A second start while it runs: nothing written, not even an audit record.
    assert not await statements.insert_running(running_entry(user, datetime.now(UTC)), user, "timer_started")
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 1

    now = datetime.now(UTC)
    stopped = running.with_changes(end_time=now, duration_seconds=3600, version=2, updated_at=now)
    taken = uuid.uuid4()  # an event id already in the outbox: the event's insert fails...
    db.execute("INSERT INTO outbox (event_id, topic, key, payload) VALUES (%s, 't', 'k', '\\x00')", (taken,))
    with pytest.raises(Exception, match="outbox"):
        await statements.finish(running, stopped, user, "timer_stopped", (taken, b"payload"))
    # ... and so nothing else happened either.
    row = db.execute(
        "SELECT end_time, version FROM time_entries WHERE entry_id = %s", (running.entry_id,)
    ).fetchone()
    assert row == (None, 1)
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 1
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", str(running.entry_id)) == 0

    event_id = uuid.uuid4()
    assert await statements.finish(running, stopped, user, "timer_stopped", (event_id, b"payload"))
    row = db.execute(
        "SELECT end_time, version FROM time_entries WHERE entry_id = %s", (running.entry_id,)
    ).fetchone()
    assert row == (now, 2)
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 2
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE event_id = %s", event_id) == 1


async def test_a_row_that_changed_since_it_was_read_is_left_alone(
    statements: TimerStatements, db: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    running = running_entry(user, datetime.now(UTC) - timedelta(hours=1))
    assert await statements.insert_running(running, user, "timer_started")
    db.execute("UPDATE time_entries SET version = version + 1 WHERE entry_id = %s", (running.entry_id,))

    now = datetime.now(UTC)
    stopped = running.with_changes(end_time=now, duration_seconds=3600, version=2, updated_at=now)
    assert not await statements.finish(running, stopped, user, "timer_stopped", (uuid.uuid4(), b"p"))
    assert not await statements.discard(running, user, "timer_discarded")
    row = db.execute(
        "SELECT end_time, version FROM time_entries WHERE entry_id = %s", (running.entry_id,)
    ).fetchone()
    assert row == (None, 2)
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 1
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", str(running.entry_id)) == 0


async def test_concurrent_stops_of_one_timer_stop_it_once(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    started = await tracking.StartTimer(start_request(world))
    backdate_running_timer(db, started.entry_id, timedelta(minutes=30))
    results = await asyncio.gather(
        *(tracking.StopTimer(tpb.StopTimerRequest(user_id=world.user_id), timeout=30) for _ in range(10)),
        return_exceptions=True,
    )
    stopped = [r for r in results if isinstance(r, tpb.StopTimerResponse)]
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(stopped) == 1 and len(failed) == 9, results
    assert all(f.code() == grpc.StatusCode.FAILED_PRECONDITION for f in failed)
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", started.entry_id) == 1
    actions = db.execute(
        "SELECT action FROM entry_audit WHERE entry_id = %s ORDER BY audit_id", (started.entry_id,)
    ).fetchall()
    assert actions == [("timer_started",), ("timer_stopped",)]


async def test_a_timer_edited_after_its_start_stops_as_edited(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    # This process remembers the timer it started; the edit makes that memory stale.
    started = await tracking.StartTimer(start_request(world))
    edited = await tracking.UpdateEntry(
        tpb.UpdateEntryRequest(entry_id=started.entry_id, expected_version=1, description="renamed")
    )
    backdate_running_timer(db, started.entry_id, timedelta(minutes=5))
    stopped = await tracking.StopTimer(tpb.StopTimerRequest(user_id=world.user_id))
    stored = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=started.entry_id))
    assert stopped.entry == stored
    assert (stored.description, stored.version) == ("renamed", edited.version + 1)
    assert 300 <= stored.duration_seconds <= 310
    payload = db.execute("SELECT payload FROM outbox WHERE key = %s", (started.entry_id,)).fetchone()
    event = entries_pb2.EntryEvent.FromString(payload[0])
    assert (event.stopped.entry.description, event.stopped.entry.version) == ("renamed", stored.version)


async def test_a_manual_entry_answers_exactly_what_was_stored_audited_and_published(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    end = datetime.now(UTC).replace(microsecond=123456) - timedelta(hours=1)
    created = await manual(tracking, world, end - timedelta(minutes=7, seconds=31), end, tags=["b", "a"])
    stored = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=created.entry_id))
    assert created == stored
    assert (stored.duration_seconds, stored.version, stored.running) == (451, 1, False)

    audit = (await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=created.entry_id))).records
    assert [(r.action, r.actor_user_id, r.before_json) for r in audit] == [("created", world.user_id, "")]
    after = json.loads(audit[0].after_json)
    assert (after["entry_id"], after["duration_seconds"], after["tags"]) == (
        created.entry_id,
        451,
        list(stored.tags),
    )

    rows = db.execute("SELECT event_id, payload FROM outbox WHERE key = %s", (created.entry_id,)).fetchall()
    assert len(rows) == 1
    event = entries_pb2.EntryEvent.FromString(rows[0][1])
    assert event.event_id == str(rows[0][0]) and event.actor_user_id == world.user_id
    published = event.stopped.entry
    assert (published.entry_id, published.version, published.duration_seconds) == (created.entry_id, 1, 451)
    assert published.end_time == stored.end_time and published.hourly_rate == stored.hourly_rate


async def test_a_manual_entry_writes_entry_audit_and_event_together_or_not_at_all(
    statements: TimerStatements, db: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    now = datetime.now(UTC)
    entry = running_entry(user, now - timedelta(hours=2)).with_changes(
        end_time=now - timedelta(hours=1), duration_seconds=3600
    )
    taken = uuid.uuid4()  # an event id already in the outbox: the event's insert fails...
    db.execute("INSERT INTO outbox (event_id, topic, key, payload) VALUES (%s, 't', 'k', '\\x00')", (taken,))
    with pytest.raises(Exception, match="outbox"):
        await statements.insert_stopped(entry, user, "created", (taken, b"payload"))
    # ... and so neither the entry nor its audit record exists.
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", user) == 0
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 0

    await statements.insert_stopped(entry, user, "created", (uuid.uuid4(), b"payload"))
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", user) == 1
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 1
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", str(entry.entry_id)) == 1

    # An overlapping one is refused by the constraint, by name, and writes nothing.
    overlapping = entry.with_changes(entry_id=uuid.uuid4(), start_time=now - timedelta(minutes=90))
    with pytest.raises(EntryOverlaps):
        await statements.insert_stopped(overlapping, user, "created", (uuid.uuid4(), b"payload"))
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", user) == 1
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 1
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", str(overlapping.entry_id)) == 0


async def test_an_overlapping_manual_entry_is_refused_naming_the_entry_it_overlaps(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    first = await manual(tracking, world, end - timedelta(hours=1), end)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await manual(tracking, world, end - timedelta(minutes=30), end + timedelta(minutes=30))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert first.entry_id in (exc.value.details() or "")
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", world.user_id) == 1
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", first.entry_id) == 1


ROUNDS = 3


async def test_concurrent_overlapping_manual_entries_book_one_and_name_it_to_the_others(
    tracking: Stub, world: World, db: psycopg.Connection
) -> None:
    # Two inserts that overlap each other can deadlock in PostgreSQL's exclusion check: the
    # loser must still hear "overlaps", never an internal error.
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    for _ in range(ROUNDS):
        results = await asyncio.gather(
            *(
                manual(tracking, world, end - timedelta(hours=1, minutes=i), end - timedelta(minutes=i))
                for i in range(12)
            ),
            return_exceptions=True,
        )
        booked = [r for r in results if isinstance(r, tpb.TimeEntry)]
        failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(booked) == 1 and len(failed) == 11, results
        assert {f.code() for f in failed} == {grpc.StatusCode.INVALID_ARGUMENT}, results
        assert all("overlaps" in (f.details() or "") for f in failed)
        end -= timedelta(hours=3)
    mine = "SELECT entry_id::text FROM time_entries WHERE user_id = %s"
    booked_ids = [r[0] for r in db.execute(mine, (world.user_id,))]
    assert len(booked_ids) == ROUNDS
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = ANY(%s)", booked_ids) == ROUNDS


async def test_an_insert_aborted_by_a_deadlock_over_an_overlap_reports_the_overlap(
    statements: TimerStatements, session_databases: dict[str, str], db: psycopg.Connection
) -> None:
    """Another transaction holds an uncommitted entry the new one overlaps (so the insert waits on
    it), then books one overlapping the new entry (so it waits on the insert): PostgreSQL aborts
    one of the two. The insert waited first, so its deadlock check (deadlock_timeout after it began
    to wait) finds the cycle first, and the insert is the one aborted. The test waits until the
    insert is seen waiting: a fixed pause once let the other wait first on a busy machine, and it
    was the one aborted."""
    user = uuid.uuid4()
    now = datetime.now(UTC)
    entry = running_entry(user, now - timedelta(hours=2)).with_changes(
        end_time=now - timedelta(hours=1), duration_seconds=3600
    )
    insert = """INSERT INTO time_entries (entry_id, user_id, project_id, start_time, end_time,
                                          is_billable, hourly_rate, currency)
                VALUES (%s, %s, %s, %s, %s, true, 100.00, 'EUR')"""
    url = session_databases["tracking"].replace("postgresql+psycopg", "postgresql")
    timeout = db.execute("SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'").fetchone()
    assert timeout is not None and timeout[0] >= 1000, "the timing below assumes deadlock_timeout >= 1 s"
    with psycopg.connect(url) as other:
        other.execute(
            insert, (uuid.uuid4(), user, uuid.uuid4(), now - timedelta(hours=3), now - timedelta(minutes=110))
        )
        writing = asyncio.create_task(statements.insert_stopped(entry, user, "created", (uuid.uuid4(), b"p")))
        blocked = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
        async with asyncio.timeout(10):
            while not count_rows(db, blocked, other.info.backend_pid):
                await asyncio.sleep(0.02)
        # The insert's deadlock check is now due deadlock_timeout after it began to wait; the cycle
        # must exist by then, and `other` must begin to wait after it (its check comes later).
        await asyncio.sleep(0.1)
        assert not writing.done()
        second = (uuid.uuid4(), user, uuid.uuid4(), now - timedelta(minutes=70), now - timedelta(minutes=50))
        await asyncio.to_thread(other.execute, insert, second)  # waits for the insert: a cycle
        with pytest.raises(EntryOverlaps):
            await writing
        other.rollback()
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", user) == 0
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE actor_user_id = %s", user) == 0
