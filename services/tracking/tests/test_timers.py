"""Timers over gRPC against the real stack: one running timer per user, even under a race,
even with Redis stopped; stop, discard, cap; access and billing from projects."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
from tracking_testkit import World, backdate_running_timer, count_rows, field_violations

from tests.support.infra import RunningStack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "deploy" / "local"))

from ttlocal import redis as local_redis

Stub = tracking_pb2_grpc.TrackingServiceStub


def start_request(w: World, user_id: str | None = None, **kw: object) -> tpb.StartTimerRequest:
    user = user_id or w.user_id
    return tpb.StartTimerRequest(
        actor_user_id=user, user_id=user, project_id=w.project_id, task_id=w.task_id, **kw
    )


async def race_starts(
    tracking: Stub, w: World, n: int
) -> tuple[list[tpb.TimeEntry], list[grpc.aio.AioRpcError]]:
    results = await asyncio.gather(
        *(tracking.StartTimer(start_request(w), timeout=30) for _ in range(n)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, tpb.TimeEntry)]
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(started) + len(failed) == n, [
        r for r in results if not isinstance(r, (tpb.TimeEntry, grpc.aio.AioRpcError))
    ]
    return started, failed


def assert_one_winner(
    started: list[tpb.TimeEntry], failed: list[grpc.aio.AioRpcError], db: psycopg.Connection, user_id: str
) -> None:
    assert len(started) == 1, [f.details() for f in failed][:3]
    winner = started[0].entry_id
    for err in failed:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err.details()
        assert winner in err.details()
        assert dict(err.trailing_metadata())["running-entry-id"] == winner
    assert (
        count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s AND end_time IS NULL", user_id)
        == 1
    )


async def test_fifty_concurrent_starts_yield_exactly_one_timer(tracking: Stub, world: World, db) -> None:
    started, failed = await race_starts(tracking, world, 50)
    assert_one_winner(started, failed, db, world.user_id)


async def test_the_invariant_holds_with_redis_stopped(
    tracking: Stub, world: World, db, running_services: RunningStack
) -> None:
    cfg = running_services.config
    local_redis.stop(cfg)
    try:
        started, failed = await race_starts(tracking, world, 50)
        assert_one_winner(started, failed, db, world.user_id)
        stopped = await tracking.StopTimer(tpb.StopTimerRequest(user_id=world.user_id), timeout=10)
        assert stopped.discarded
    finally:
        local_redis.start(cfg)


async def test_start_snapshots_rate_and_billable_and_get_running_shows_it(
    tracking: Stub, world: World
) -> None:
    entry = await tracking.StartTimer(start_request(world, description=" Fix bug ", tags=[" a", "A", "b "]))
    assert entry.running and not entry.HasField("end_time")
    assert (entry.hourly_rate, entry.currency, entry.is_billable) == ("120.00", "EUR", True)
    assert entry.description == "Fix bug" and list(entry.tags) == ["a", "b"]
    assert abs(entry.start_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=5)

    # Later rate changes never touch the snapshot.
    await world.projects.SetProjectUserRate(
        ppb.SetProjectUserRateRequest(
            project_id=world.project_id, user_id=world.user_id, hourly_rate="999.00"
        )
    )
    running = await tracking.GetRunningTimer(tpb.GetRunningTimerRequest(user_id=world.user_id))
    assert running.entry.entry_id == entry.entry_id and running.entry.hourly_rate == "120.00"

    other = await world.new_member()
    assert not (await tracking.GetRunningTimer(tpb.GetRunningTimerRequest(user_id=other))).HasField("entry")


async def test_a_short_timer_is_discarded_and_audited(tracking: Stub, world: World, db) -> None:
    entry = await tracking.StartTimer(start_request(world))
    stopped = await tracking.StopTimer(
        tpb.StopTimerRequest(actor_user_id=world.user_id, user_id=world.user_id)
    )
    assert stopped.discarded and not stopped.capped
    assert stopped.entry.entry_id == entry.entry_id
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE entry_id = %s", entry.entry_id) == 0
    audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=entry.entry_id))
    assert [r.action for r in audit.records] == ["timer_started", "timer_discarded"]
    started, discarded = audit.records
    # What was discarded is exactly the entry that was started (its snapshot is reused, not rebuilt).
    assert json.loads(discarded.before_json) == json.loads(started.after_json)
    assert json.loads(started.after_json)["entry_id"] == entry.entry_id and not discarded.after_json
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", entry.entry_id) == 0


async def test_stop_uses_server_time_and_publishes_entry_stopped(tracking: Stub, world: World, db) -> None:
    entry = await tracking.StartTimer(start_request(world))
    backdate_running_timer(db, entry.entry_id, timedelta(hours=2))
    stopped = await tracking.StopTimer(
        tpb.StopTimerRequest(actor_user_id=world.user_id, user_id=world.user_id)
    )
    assert not stopped.discarded and not stopped.capped
    assert 7200 <= stopped.entry.duration_seconds <= 7210
    assert stopped.entry.version == 2 and not stopped.entry.running
    assert count_rows(db, "SELECT count(*) FROM outbox WHERE key = %s", entry.entry_id) == 1

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StopTimer(tpb.StopTimerRequest(user_id=world.user_id))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_forgotten_timer_is_capped_by_stop_by_the_sweeper_and_never_blocks_a_start(
    tracking: Stub, world: World, db, session_databases: dict[str, str]
) -> None:
    # StopTimer on a timer that ran 30 h: stopped at the 24 h cap, flagged.
    first = await tracking.StartTimer(start_request(world))
    backdate_running_timer(db, first.entry_id, timedelta(hours=30))
    stopped = await tracking.StopTimer(tpb.StopTimerRequest(user_id=world.user_id))
    assert stopped.capped and stopped.entry.capped and stopped.entry.duration_seconds == 86400

    # Starting while a forgotten timer runs caps it and starts the new one.
    user = await world.new_member()
    second = await tracking.StartTimer(start_request(world, user))
    backdate_running_timer(db, second.entry_id, timedelta(hours=26))
    third = await tracking.StartTimer(start_request(world, user))
    assert third.entry_id != second.entry_id
    capped = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=second.entry_id))
    assert capped.capped and capped.duration_seconds == 86400

    # The sweeper (run here once, as the service runs it periodically) caps the rest.
    user = await world.new_member()
    forgotten = await tracking.StartTimer(start_request(world, user))
    backdate_running_timer(db, forgotten.entry_id, timedelta(hours=25))
    from tracking.config import TrackingSettings
    from tracking.main import sweep_forgotten_timers
    from tt_common.db import create_engine, session_factory

    engine = create_engine(session_databases["tracking"])
    try:
        settings = TrackingSettings(
            grpc_port=1,
            database_url=session_databases["tracking"],
            kafka_bootstrap_servers="unused",
            redis_url="redis://unused",
            projects_target="unused",
        )
        # (the service's own sweeper may get there first; either way the timer ends capped)
        await sweep_forgotten_timers(session_factory(engine), settings, once=True)
    finally:
        await engine.dispose()
    swept = await tracking.GetEntry(tpb.GetEntryRequest(entry_id=forgotten.entry_id))
    assert swept.capped and not swept.running
    audit = await tracking.ListEntryAudit(tpb.ListEntryAuditRequest(entry_id=forgotten.entry_id))
    assert audit.records[-1].action == "timer_capped" and audit.records[-1].actor_user_id == ""


async def test_start_needs_access_and_an_active_project(tracking: Stub, world: World, db) -> None:
    outsider = (
        await world.projects.CreateUser(
            ppb.CreateUserRequest(
                name="Outsider",
                email=f"o-{uuid.uuid4().hex[:10]}@example.com",
                role=ppb.ROLE_EMPLOYEE,
                timezone="UTC",
            )
        )
    ).user_id
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StartTimer(start_request(world, user_id=outsider))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED

    other_project = await world.new_project()
    other_task = await world.projects.CreateTask(ppb.CreateTaskRequest(project_id=other_project, name="x"))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StartTimer(
            tpb.StartTimerRequest(
                user_id=world.user_id, project_id=world.project_id, task_id=other_task.task_id
            )
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v["field"] for v in field_violations(exc.value)] == ["task_id"]

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StartTimer(tpb.StartTimerRequest(user_id=world.user_id, project_id=str(uuid.uuid4())))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND

    project = await world.projects.GetProject(ppb.GetProjectRequest(project_id=world.project_id))
    await world.projects.UpdateProject(
        ppb.UpdateProjectRequest(
            project_id=world.project_id, expected_version=project.version, status=ppb.PROJECT_STATUS_ARCHIVED
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StartTimer(start_request(world))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ACTIVE" in exc.value.details()
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", world.user_id) == 0


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"user_id": "nope"}, "user_id"),
        ({"project_id": ""}, "project_id"),
        ({"task_id": "12"}, "task_id"),
        ({"actor_user_id": "x"}, "actor_user_id"),
        ({"tags": ["ok", " "]}, "tags[1]"),
        ({"tags": ["x" * 51]}, "tags[0]"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"description": "d" * 2001}, "description"),
    ],
)
async def test_malformed_start_requests_name_the_field(
    tracking: Stub, world: World, db, request_kw: dict, field: str
) -> None:
    req = start_request(world)
    for key, value in request_kw.items():
        if key == "tags":
            req.tags[:] = value
        else:
            setattr(req, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await tracking.StartTimer(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v["field"] for v in field_violations(exc.value)] == [field]
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", world.user_id) == 0


async def test_projects_down_gives_unavailable_and_writes_nothing(
    tracking: Stub, world: World, db, running_services: RunningStack
) -> None:
    from ttlocal import proc, services

    cfg = running_services.config
    proc.stop(cfg, "projects", timeout=30)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await tracking.StartTimer(start_request(world), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "projects" in exc.value.details()
    finally:
        await asyncio.to_thread(services.start, cfg, running_services.env)
    assert count_rows(db, "SELECT count(*) FROM time_entries WHERE user_id = %s", world.user_id) == 0
    assert count_rows(db, "SELECT count(*) FROM entry_audit WHERE after->>'user_id' = %s", world.user_id) == 0
    # Back once projects is (tracking's channel reconnects with backoff: retry like a client would).
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            entry = await tracking.StartTimer(start_request(world), timeout=10)
            break
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    assert entry.running
