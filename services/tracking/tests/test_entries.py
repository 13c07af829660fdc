"""Manual entries and edits over gRPC: bad input names the field and writes nothing,
overlaps are refused, concurrent edits have one winner, invoiced entries are
read-only, and every change is audited."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from tracking_testkit import World, count_rows, field_violations, hours_ago, manual, ts

from timetracking.common.v1 import types_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub


async def expect_error(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    assert exc.value.code() == code, exc.value.details()
    return exc.value


def rows_of(db: psycopg.Connection, user_id: str) -> int:
    return count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", user_id)


async def test_manual_entry_is_stored_with_snapshots_audited_and_published(
    tracking: Stub, world: World, db
) -> None:
    start, end = hours_ago(5), hours_ago(3)
    entry = await manual(tracking, world, start, end, tags=["x", " x ", "Y"])
    assert entry.start_time.ToDatetime(tzinfo=UTC) == start and entry.end_time.ToDatetime(tzinfo=UTC) == end
    assert entry.duration_seconds == 7200 and entry.hourly_rate == "120.00" and entry.is_billable
    assert list(entry.tags) == ["x", "Y"] and entry.version == 1
    audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=entry.entry_id))
    (record,) = audit.records
    assert record.action == "created" and record.actor_user_id == world.user_id and record.before_json == ""
    assert json.loads(record.after_json)["hourly_rate"] == "120.00"
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", entry.entry_id) == 1


async def test_overlap_is_refused_naming_the_other_entry_and_back_to_back_is_fine(
    tracking: Stub, world: World, db
) -> None:
    first = await manual(tracking, world, hours_ago(6), hours_ago(4))
    err = await expect_error(
        manual(tracking, world, hours_ago(5), hours_ago(3)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert first.entry_id in err.details()
    assert {v["field"] for v in field_violations(err)} == {"start_time", "end_time"}
    await manual(tracking, world, hours_ago(4), hours_ago(3))  # [) bounds: touching is fine
    assert rows_of(db, world.user_id) == 2

    # A running timer blocks entries after its start.
    timer = await tracking.StartTimer(
        tpb.StartTimerRequest(user_id=world.user_id, project_id=world.project_id)
    )
    err = await expect_error(
        manual(tracking, world, datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert timer.entry_id in err.details()


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (lambda: hours_ago(2), lambda: hours_ago(3), "end_time"),  # end before start
        (lambda: hours_ago(2), lambda: hours_ago(2), "end_time"),  # empty
        (lambda: hours_ago(30), lambda: hours_ago(5), "end_time"),  # longer than 24 h
        (lambda: hours_ago(1), lambda: datetime.now(UTC) + timedelta(hours=1), "end_time"),  # future
        (lambda: datetime.now(UTC) + timedelta(hours=1), lambda: hours_ago(-2), "start_time"),  # future
        (lambda: datetime(1970, 1, 1, tzinfo=UTC), lambda: datetime(1970, 1, 1, 1, tzinfo=UTC), "start_time"),
        (lambda: None, lambda: hours_ago(1), "start_time"),  # missing
        (lambda: hours_ago(2), lambda: None, "end_time"),
    ],
)
async def test_bad_periods_name_the_field_and_write_nothing(
    tracking: Stub, world: World, db, start, end, field: str
) -> None:
    req = tpb.CreateManualEntryRequest(user_id=world.user_id, project_id=world.project_id)
    if start() is not None:
        req.start_time.CopyFrom(ts(start()))
    if end() is not None:
        req.end_time.CopyFrom(ts(end()))
    err = await expect_error(tracking.CreateManualEntry(req), grpc.StatusCode.INVALID_ARGUMENT)
    assert [v["field"] for v in field_violations(err)] == [field]
    assert rows_of(db, world.user_id) == 0


async def test_malformed_timestamp_and_ids_are_refused(tracking: Stub, world: World, db) -> None:
    req = tpb.CreateManualEntryRequest(user_id=world.user_id, project_id=world.project_id)
    req.start_time.seconds, req.start_time.nanos = 1_700_000_000, 2_000_000_000
    req.end_time.CopyFrom(ts(hours_ago(1)))
    err = await expect_error(tracking.CreateManualEntry(req), grpc.StatusCode.INVALID_ARGUMENT)
    assert [v["field"] for v in field_violations(err)] == ["start_time"]
    err = await expect_error(
        tracking.GetEntry(tpb.GetEntryRequest(entry_id="not-a-uuid")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert [v["field"] for v in field_violations(err)] == ["entry_id"]
    await expect_error(
        tracking.GetEntry(tpb.GetEntryRequest(entry_id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )
    assert rows_of(db, world.user_id) == 0


async def test_concurrent_edits_have_exactly_one_winner(tracking: Stub, world: World) -> None:
    entry = await manual(tracking, world, hours_ago(3), hours_ago(2))

    def edit(text: str) -> tpb.UpdateEntryRequest:
        return tpb.UpdateEntryRequest(
            actor_user_id=world.user_id,
            entry_id=entry.entry_id,
            expected_version=entry.version,
            description=text,
        )

    results = await asyncio.gather(
        *(tracking.UpdateEntry(edit(f"edit {i}")) for i in range(10)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, tpb.TimeEntry)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(e.code() == grpc.StatusCode.ABORTED for e in losers)
    current = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=entry.entry_id))
    assert current.version == 2 and current.description == winners[0].description
    audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=entry.entry_id))
    assert [r.action for r in audit.records] == ["created", "updated"]


async def test_edit_changing_project_or_user_re_resolves_rate_and_billable(
    tracking: Stub, world: World, db
) -> None:
    entry = await manual(tracking, world, hours_ago(3), hours_ago(2))
    unbillable = await world.new_project(billing_type=ppb.BILLING_TYPE_NON_BILLABLE, rate="50.00")
    await world.projects.AddProjectMember(
        ppb.AddProjectMemberRequest(project_id=unbillable, user_id=world.user_id)
    )
    moved = await tracking.UpdateEntry(
        tpb.UpdateEntryRequest(
            entry_id=entry.entry_id,
            expected_version=1,
            project_id=unbillable,
            task_id="",
            tags=tpb.TagList(tags=["q"]),
        )
    )
    assert moved.project_id == unbillable and not moved.is_billable and moved.task_id == ""
    assert moved.hourly_rate == "80.00"  # the user's default rate beats the project default
    assert list(moved.tags) == ["q"] and moved.version == 2

    # Moving to a user without access is refused, and nothing changes.
    outsider = (
        await world.projects.CreateUser(
            ppb.CreateUserRequest(name="O", email=f"o-{uuid.uuid4().hex[:10]}@example.com", timezone="UTC")
        )
    ).user_id
    await expect_error(
        tracking.UpdateEntry(
            tpb.UpdateEntryRequest(entry_id=entry.entry_id, expected_version=2, user_id=outsider)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # A time change that would make the entry too long names the field.
    err = await expect_error(
        tracking.UpdateEntry(
            tpb.UpdateEntryRequest(entry_id=entry.entry_id, expected_version=2, start_time=ts(hours_ago(27)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [v["field"] for v in field_violations(err)] == ["end_time"]
    assert (await tracking.GetEntry(tpb.GetEntryRequest(entry_id=entry.entry_id))).version == 2

    # A missing expected_version is refused.
    err = await expect_error(
        tracking.UpdateEntry(tpb.UpdateEntryRequest(entry_id=entry.entry_id, description="x")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [v["field"] for v in field_violations(err)] == ["expected_version"]


async def test_invoiced_entries_are_read_only_and_delete_is_audited(tracking: Stub, world: World, db) -> None:
    kept = await manual(tracking, world, hours_ago(8), hours_ago(7))
    gone = await manual(tracking, world, hours_ago(6), hours_ago(5))
    invoice_id = str(uuid.uuid4())
    period = types_pb2.Period(start=ts(hours_ago(8.5)), end=ts(hours_ago(7.5)))
    claimed = await tracking.ClaimUninvoicedEntries(
        tpb.ClaimUninvoicedEntriesRequest(invoice_id=invoice_id, project_id=world.project_id, period=period)
    )
    assert [e.entry_id for e in claimed.entries] == [kept.entry_id]
    version = claimed.entries[0].version
    err = await expect_error(
        tracking.UpdateEntry(
            tpb.UpdateEntryRequest(entry_id=kept.entry_id, expected_version=version, description="x")
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert invoice_id in err.details()
    await expect_error(
        tracking.DeleteEntry(tpb.DeleteEntryRequest(entry_id=kept.entry_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    await expect_error(
        tracking.DeleteEntry(tpb.DeleteEntryRequest(entry_id=gone.entry_id, expected_version=7)),
        grpc.StatusCode.ABORTED,
    )
    await tracking.DeleteEntry(tpb.DeleteEntryRequest(actor_user_id=world.user_id, entry_id=gone.entry_id))
    await expect_error(
        tracking.GetEntry(tpb.GetEntryRequest(entry_id=gone.entry_id)), grpc.StatusCode.NOT_FOUND
    )
    audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=gone.entry_id))
    assert [r.action for r in audit.records] == ["created", "deleted"]
    assert (
        audit.records[-1].after_json == ""
        and json.loads(audit.records[-1].before_json)["entry_id"] == gone.entry_id
    )
    # created, claimed (kept) / created, deleted (gone): one event per change of a stopped entry.
    assert (
        count_rows(db, "SELECT count(*) FROM outbox WHERE key = ANY(%s)", [kept.entry_id, gone.entry_id]) == 4
    )


async def test_list_filters_and_paginates(tracking: Stub, world: World) -> None:
    made = [
        await manual(
            tracking, world, hours_ago(20 - i), hours_ago(19.5 - i), tags=["even" if i % 2 == 0 else "odd"]
        )
        for i in range(7)
    ]
    seen: list[str] = []
    token = ""
    while True:
        page = await tracking.ListEntries(
            tpb.ListEntriesRequest(user_id=world.user_id, page_size=3, page_token=token)
        )
        seen += [e.entry_id for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == [e.entry_id for e in reversed(made)]  # newest first, each once

    evens = await tracking.ListEntries(tpb.ListEntriesRequest(user_id=world.user_id, tags=[" even"]))
    assert {e.entry_id for e in evens.entries} == {e.entry_id for e in made[::2]}
    window = await tracking.ListEntries(
        tpb.ListEntriesRequest(
            project_id=world.project_id,
            # The entries' own starts, not a second clock reading: a second that ticks
            # between creating and filtering must not move the window off made[2].
            period=types_pb2.Period(start=made[2].start_time, end=made[4].start_time),
            billable=True,
            invoiced=False,
        )
    )
    assert [e.entry_id for e in window.entries] == [made[3].entry_id, made[2].entry_id]
    err = await expect_error(
        tracking.ListEntries(tpb.ListEntriesRequest(page_token="garbage!")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert [v["field"] for v in field_violations(err)] == ["page_token"]
