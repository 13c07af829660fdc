"""Fault scenarios on the dependencies: Redis, the PostgreSQL cluster and the projects service
really SIGKILLed by pid while requests flow, restarted, and the books checked afterwards.

What a caller sees during each outage is part of the check: gRPC answers UNAVAILABLE, the gateway
503 problem+json with Retry-After, never a 500 and never a hang past the deadline. After each
restart the services recover on their own: the test asserts that no service process was restarted
(same pids) and that requests succeed again within a bounded time. Every killed component is
restarted in `finally`, so the stack is healthy for the tests after these.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
import redis as redis_sync

from tests.support.faults import Stubs, connect, new_project, scalar, start_component, ts, until
from tests.support.infra import Infra, RunningStack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.reporting.v1 import reporting_pb2 as rpb
from timetracking.tracking.v1 import tracking_pb2 as tpb
from ttlocal import postgres, proc, services
from ttlocal.config import SERVICES, StackConfig

PASSWORD = "fault tolerant horse battery"
PROBLEM_JSON = "application/problem+json"
GATEWAY_DEADLINE_S = 5.0  # GATEWAY_GRPC_DEADLINE_S: no answer may take (much) longer
GRPC_TIMEOUT_S = 10.0  # the deadline of the test's own gRPC calls in the PostgreSQL outage


@pytest.fixture(scope="module")
async def http(running_services: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_services.gateway_url, timeout=30) as client:
        yield client


def service_pids(cfg: StackConfig) -> dict[str, int | None]:
    return {s: proc.running_pid(cfg, s) for s in SERVICES}


async def bearer(stubs: Stubs, http: httpx.AsyncClient, user_id: str) -> dict[str, str]:
    """The user's Authorization header, logged in through the gateway (waiting out the login quota)."""
    user = await stubs.projects.GetUser(ppb.GetUserRequest(user_id=user_id))
    for _ in range(30):
        resp = await http.post(
            "/v1/auth/token", json={"grant_type": "password", "email": user.email, "password": PASSWORD}
        )
        if resp.status_code != 429:
            break
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def assert_retry_later(resp: httpx.Response) -> None:
    """A dependency outage as the gateway must answer it: 503 problem+json with Retry-After."""
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON), resp.headers
    assert int(resp.headers["Retry-After"]) > 0
    body = resp.json()
    assert body["status"] == 503 and body["code"] and body["detail"], body


async def readiness(http: httpx.AsyncClient) -> dict[str, object]:
    """The gateway's /readyz: every dependency listed, "ok" when all answer."""
    return dict((await http.get("/readyz")).json())


def ready(report: dict[str, object]) -> bool:
    return report.get("status") == "ok"


@dataclass
class Outcome:
    """One call's result: `ok` with the entry id, or the gRPC code / HTTP status that refused it."""

    user: str
    via: str  # grpc | http | http-key
    result: str  # "ok", a gRPC code name, or an HTTP status
    entry_id: str
    seconds: float
    code: str = ""  # problem+json code


async def timed(outcome: Awaitable[Outcome]) -> Outcome:
    began = time.monotonic()
    done = await outcome
    done.seconds = time.monotonic() - began
    return done


# --- 1. Redis killed while timers are being started ------------------------------------------------
USERS = 18
STARTS = ("grpc", "http", "grpc", "http-key")  # several concurrent starts per user, two paths


async def test_redis_killed_during_concurrent_timer_starts_never_two_running_and_resumes(
    stubs: Stubs,
    http: httpx.AsyncClient,
    running_services: RunningStack,
    session_databases: dict[str, str],
    infra: Infra,
) -> None:
    """Tracking serialises starts in PostgreSQL while its Redis lock is gone (fail open, the partial
    unique index as the safety net); the gateway lets requests through its rate limiter (fail open)
    and refuses Idempotency-Key requests with 503 (fail closed: it cannot promise at most once)."""
    cfg = running_services.config
    pids = service_pids(cfg)
    project_id, users = await new_project(stubs, USERS, password=PASSWORD)
    headers = {u: await bearer(stubs, http, u) for u in users}  # one at a time: argon2 is slow

    async def start(user: str, via: str) -> Outcome:
        if via == "grpc":
            try:
                entry = await stubs.tracking.StartTimer(
                    tpb.StartTimerRequest(actor_user_id=user, user_id=user, project_id=project_id), timeout=10
                )
                return Outcome(user, via, "ok", entry.entry_id, 0)
            except grpc.aio.AioRpcError as exc:
                return Outcome(user, via, exc.code().name, "", 0)
        extra = {"Idempotency-Key": str(uuid.uuid4())} if via == "http-key" else {}
        resp = await http.post(
            "/v1/timer/start", headers={**headers[user], **extra}, json={"project_id": project_id}
        )
        if resp.status_code == 201:
            return Outcome(user, via, "ok", resp.json()["entry_id"], 0)
        if resp.status_code == 503:
            assert_retry_later(resp)
        return Outcome(user, via, str(resp.status_code), "", 0, resp.json().get("code", ""))

    outcomes: list[Outcome] = []
    redis_down = asyncio.Event()
    during: set[str] = set()  # users whose starts ran while Redis was down
    queue: asyncio.Queue[str] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)

    async def starter() -> None:
        while not queue.empty():
            user = queue.get_nowait()
            down = redis_down.is_set()
            outcomes.extend(await asyncio.gather(*(timed(start(user, v)) for v in STARTS)))
            if down and redis_down.is_set():
                during.add(user)
            await asyncio.sleep(0.1)

    starting = asyncio.gather(*(starter() for _ in range(3)))
    try:
        async with asyncio.timeout(60):
            while len(outcomes) < len(STARTS) * USERS // 4:
                await asyncio.sleep(0.01)
        await asyncio.to_thread(proc.kill, cfg, "redis")
        redis_down.set()
        # The outage lasts until enough users ran start to end inside it (not a count of outcomes:
        # the starts in flight when the kill began, and all made while it ran, do not count).
        async with asyncio.timeout(60):
            while len(during) < 6 and not queue.empty():
                await asyncio.sleep(0.02)
    finally:
        redis_down.clear()
        if proc.running_pid(cfg, "redis") is None:
            await start_component(cfg.profile, "redis")
    async with asyncio.timeout(60):
        await starting
    assert len(during) >= 4, f"too few starts ran during the outage: {sorted(during)}"

    # What callers saw: one start per user won; the rest were told which timer runs (409), or,
    # with an Idempotency-Key while Redis was away, to retry later (503). Never a 500.
    seen = Counter((o.via, o.result, o.code) for o in outcomes)
    allowed = {
        ("grpc", "ok", ""),
        ("grpc", "ALREADY_EXISTS", ""),
        ("http", "ok", ""),
        ("http", "409", "timer_already_running"),
        ("http-key", "ok", ""),
        ("http-key", "409", "timer_already_running"),
        ("http-key", "503", "unavailable"),
    }
    assert set(seen) <= allowed, seen
    assert seen[("http-key", "503", "unavailable")] > 0, f"no keyed request met the outage: {seen}"
    assert max(o.seconds for o in outcomes) < 10, "a start hung"
    won = {o.user: o.entry_id for o in outcomes if o.result == "ok"}
    assert Counter(o.user for o in outcomes if o.result == "ok") == Counter(users), seen

    # What the database holds: exactly the winners, each running alone, each with its audit record.
    with connect(session_databases["tracking"]) as db:
        rows = db.execute(
            "SELECT user_id::text, entry_id::text, end_time IS NULL FROM time_entries WHERE project_id = %s",
            (project_id,),
        ).fetchall()
        assert {u: e for u, e, _ in rows} == won and len(rows) == USERS
        assert all(running for _, _, running in rows)
        audited = scalar(
            db,
            "SELECT count(DISTINCT entry_id) FROM entry_audit"
            " WHERE entry_id = ANY(%s::uuid[]) AND action = 'timer_started'",
            list(won.values()),
        )
        assert audited == USERS

    # Redis is back: without restarting anything, keyed requests work and replay again ...
    user = users[0]
    key = {"Idempotency-Key": str(uuid.uuid4())}

    async def keyed_stop() -> httpx.Response:
        return await http.post("/v1/timer/stop", headers={**headers[user], **key}, json={})

    first = await until(
        keyed_stop, lambda r: r.status_code != 503, within=20, what="a keyed request after Redis"
    )
    assert first.status_code == 200, first.text
    replay = await keyed_stop()
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true", replay.text
    assert replay.json() == first.json()

    # ... and tracking takes its Redis lock around starts again (after its bypass window).
    server = redis_sync.Redis.from_url(infra.redis_url)
    try:

        async def start_uses_redis() -> bool:
            server.config_resetstat()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stubs.tracking.StartTimer(
                    tpb.StartTimerRequest(actor_user_id=users[1], user_id=users[1], project_id=project_id)
                )
            assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
            stats = server.info("commandstats")
            return stats.get("cmdstat_set", {}).get("calls", 0) >= 1

        await until(start_uses_redis, bool, within=20, what="tracking's timer lock in Redis again")
    finally:
        server.close()
    assert service_pids(cfg) == pids, "no service may have been restarted"
    await until(lambda: readiness(http), ready, within=30, what="the stack ready again")


# --- 2. the PostgreSQL cluster killed while requests flow ---------------------------------------------
WRITERS = 6  # users writing entries (half through the gateway, half over gRPC)
STOPPERS = 8  # users whose running timers are stopped across the outage


async def test_postgresql_killed_while_requests_flow_services_reconnect_without_restart(
    stubs: Stubs,
    http: httpx.AsyncClient,
    running_services: RunningStack,
    session_databases: dict[str, str],
) -> None:
    """The whole cluster (one database per service, as in the local runner) is SIGKILLed: the
    services' pools drop the dead connections (pre-ping) and reconnect on their own."""
    cfg = running_services.config
    pids = service_pids(cfg)
    project_id, users = await new_project(stubs, WRITERS + STOPPERS, password=PASSWORD)
    writers, stoppers = users[:WRITERS], users[WRITERS:]
    headers = {u: await bearer(stubs, http, u) for u in writers[::2]}
    with connect(session_databases["tracking"]) as db:
        for i, user in enumerate(stoppers):
            entry = await stubs.tracking.StartTimer(
                tpb.StartTimerRequest(actor_user_id=user, user_id=user, project_id=project_id)
            )
            db.execute(
                "UPDATE time_entries SET start_time = start_time - %s WHERE entry_id = %s",
                (timedelta(minutes=10 + i), entry.entry_id),
            )

    outcomes: list[tuple[float, str, str, float]] = []  # (at, via, result, seconds)
    succeeded: dict[str, int] = {}  # entry id -> duration the caller was told
    stop = asyncio.Event()
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=20)

    async def write_entries(n: int, user: str) -> None:
        """Manual entries in the user's own hours, one after another; a failed slot is not retried
        (its commit may have landed: the final check accepts that, it must just be complete)."""
        slot = 0
        while not stop.is_set():
            start = base + timedelta(days=n, minutes=30 * slot)
            end = start + timedelta(minutes=20, seconds=slot)
            slot += 1
            began = time.monotonic()
            if user in headers:
                resp = await http.post(
                    "/v1/time-entries",
                    headers=headers[user],
                    json={
                        "project_id": project_id,
                        "start_time": start.isoformat(),
                        "end_time": end.isoformat(),
                    },
                )
                result = str(resp.status_code)
                if resp.status_code == 201:
                    succeeded[resp.json()["entry_id"]] = resp.json()["duration_seconds"]
                elif resp.status_code == 503:
                    assert_retry_later(resp)
                via = "http"
            else:
                try:
                    entry = await stubs.tracking.CreateManualEntry(
                        tpb.CreateManualEntryRequest(
                            actor_user_id=user,
                            user_id=user,
                            project_id=project_id,
                            start_time=ts(start),
                            end_time=ts(end),
                        ),
                        timeout=GRPC_TIMEOUT_S,
                    )
                    succeeded[entry.entry_id] = entry.duration_seconds
                    result = "OK"
                except grpc.aio.AioRpcError as exc:
                    result = exc.code().name
                via = "grpc"
            outcomes.append((time.monotonic(), via, result, time.monotonic() - began))
            await asyncio.sleep(0.1)

    async def stop_timers() -> None:
        """Each running timer stopped over gRPC, retried until it succeeds."""
        pending = list(stoppers)
        while pending:
            user = pending[0]
            began = time.monotonic()
            try:
                resp = await stubs.tracking.StopTimer(
                    tpb.StopTimerRequest(actor_user_id=user, user_id=user), timeout=GRPC_TIMEOUT_S
                )
                succeeded[resp.entry.entry_id] = resp.entry.duration_seconds
                pending.pop(0)
                result = "OK"
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # the failed stop had committed
                    pending.pop(0)
                result = exc.code().name
            outcomes.append((time.monotonic(), "grpc-stop", result, time.monotonic() - began))
            await asyncio.sleep(0.6)

    flowing = [asyncio.create_task(write_entries(n, u)) for n, u in enumerate(writers)]
    stopping = asyncio.create_task(stop_timers())
    kill_began = killed_at = restarted_at = 0.0

    async def recovered() -> set[str]:
        return {via for at, via, result, _ in outcomes if at > restarted_at and result in ("OK", "201")}

    try:
        try:
            await asyncio.sleep(1.5)
            kill_began = time.monotonic()
            await asyncio.to_thread(postgres.kill, cfg)
            killed_at = time.monotonic()
            await asyncio.sleep(3)
        finally:
            if proc.running_pid(cfg, "postgres") is None:
                await start_component(cfg.profile, "postgres")
            restarted_at = time.monotonic()
        # Every kind of request succeeds again within a bounded time, with nothing restarted.
        await until(recovered, lambda v: v >= {"http", "grpc"}, within=30, what="writes after the restart")
        async with asyncio.timeout(60):
            await stopping
        await asyncio.sleep(1)
    finally:
        stop.set()
        stopping.cancel()
        await asyncio.gather(*flowing, stopping, return_exceptions=True)
    first_ok = min(at for at, _, result, _ in outcomes if at > restarted_at and result in ("OK", "201"))
    print(Counter((via, result) for _, via, result, _ in outcomes), f"{time.monotonic() - restarted_at:.1f}s")
    print(f"postgresql down {restarted_at - killed_at:.1f}s; writes ok {first_ok - restarted_at:.1f}s after")
    assert service_pids(cfg) == pids, "no service may have been restarted"

    # During the outage: UNAVAILABLE and 503 + Retry-After, or, for a call that was waiting on the
    # database when it died, the caller's own deadline (504 from the gateway); never a 500, and no
    # answer later than the caller's deadline. (Usually every call fails fast; in about one full
    # suite run in eight on a busy 2-core machine the calls in flight at the kill waited until the
    # restart instead: the timeline below shows when.)
    results = Counter((via, result) for _, via, result, _ in outcomes)
    timeline = "\n".join(
        f"{at - seconds - kill_began:+6.2f}s..{at - kill_began:+6.2f}s {via} {result}"
        for at, via, result, seconds in sorted(outcomes)
        if seconds > 1 or result not in ("OK", "201", "503", "UNAVAILABLE")
    )
    print(
        f"killed after {killed_at - kill_began:.2f}s, restarted {restarted_at - kill_began:.2f}s\n{timeline}"
    )
    assert set(results) <= {
        ("http", "201"),
        ("http", "503"),
        ("http", "504"),
        ("grpc", "OK"),
        ("grpc", "UNAVAILABLE"),
        ("grpc-stop", "OK"),
        ("grpc-stop", "UNAVAILABLE"),
        ("grpc-stop", "FAILED_PRECONDITION"),
    }, results
    assert sum(n for (_, result), n in results.items() if result not in ("OK", "201")), (
        f"the outage went unseen: {results}"
    )
    deadline = {"http": GATEWAY_DEADLINE_S, "grpc": GRPC_TIMEOUT_S, "grpc-stop": GRPC_TIMEOUT_S}
    late = [(via, round(seconds, 2)) for _, via, _, seconds in outcomes if seconds > deadline[via] + 1]
    assert not late, f"answered after the caller's deadline: {late}"

    # Nothing half-written: every acknowledged write is there; every entry has its audit record and
    # the outbox row of its event; every stopped entry reaches reporting once.
    with connect(session_databases["tracking"]) as db:
        stored = dict(
            db.execute(
                "SELECT entry_id::text, duration_seconds FROM time_entries"
                " WHERE project_id = %s AND end_time IS NOT NULL",
                (project_id,),
            ).fetchall()
        )
        assert (
            scalar(
                db, "SELECT count(*) FROM time_entries WHERE project_id = %s AND end_time IS NULL", project_id
            )
            == 0
        )
        assert succeeded.items() <= stored.items(), "an acknowledged write was lost"
        ids = list(stored)
        unaudited = db.execute(
            "SELECT e FROM unnest(%s::uuid[]) AS e WHERE NOT EXISTS (SELECT 1 FROM entry_audit a"
            " WHERE a.entry_id = e AND a.action IN ('created', 'timer_stopped'))",
            (ids,),
        ).fetchall()
        assert unaudited == []
        without_event = db.execute(
            "SELECT e FROM unnest(%s::text[]) AS e WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = e)",
            (ids,),
        ).fetchall()
        assert without_event == []

    async def reported() -> dict[str, int]:
        with connect(session_databases["reporting"]) as db:
            rows = db.execute(
                "SELECT entry_id::text, duration_seconds FROM entries WHERE project_id = %s AND NOT deleted",
                (project_id,),
            ).fetchall()
        return {e: int(s) for e, s in rows}

    await until(reported, lambda r: r == stored, within=60, what=f"reporting holds the {len(stored)} entries")
    print(f"reporting caught up {time.monotonic() - restarted_at:.1f}s after the restart")
    summary = await stubs.reporting.GetProjectSummary(rpb.ProjectSummaryRequest(project_id=project_id))
    assert summary.totals.total_seconds == sum(stored.values())
    await until(lambda: readiness(http), ready, within=30, what="the stack ready again")


# --- 3. the projects service killed ----------------------------------------------------------------


async def test_projects_killed_callers_answer_503_and_nothing_is_written(
    stubs: Stubs,
    http: httpx.AsyncClient,
    running_services: RunningStack,
    session_databases: dict[str, str],
) -> None:
    """Tracking resolves access and billing through projects before writing: with projects gone a
    start or a manual entry writes nothing and says UNAVAILABLE. The users are fresh, so tracking's
    cache of granted bookings (TRACKING_PROJECTS_CACHE_TTL_S) holds nothing to hide the outage."""
    cfg = running_services.config
    pids = service_pids(cfg)
    project_id, (http_user, grpc_user) = await new_project(stubs, 2, password=PASSWORD)
    auth = await bearer(stubs, http, http_user)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    start_body = {"project_id": project_id, "description": "during the projects outage"}
    now = datetime.now(UTC).replace(microsecond=0)

    def grpc_start() -> Awaitable[tpb.TimeEntry]:
        return stubs.tracking.StartTimer(
            tpb.StartTimerRequest(actor_user_id=grpc_user, user_id=grpc_user, project_id=project_id),
            timeout=10,
        )

    def grpc_manual() -> Awaitable[tpb.TimeEntry]:
        return stubs.tracking.CreateManualEntry(
            tpb.CreateManualEntryRequest(
                actor_user_id=grpc_user,
                user_id=grpc_user,
                project_id=project_id,
                start_time=ts(now - timedelta(hours=3)),
                end_time=ts(now - timedelta(hours=2)),
            ),
            timeout=10,
        )

    await asyncio.to_thread(proc.kill, cfg, "projects")
    try:
        for call in (grpc_start, grpc_manual):
            began = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
            assert "projects" in (refused.value.details() or "")
            assert time.monotonic() - began < GATEWAY_DEADLINE_S

        for method, path, body, extra in (
            ("POST", "/v1/timer/start", start_body, key),  # tracking -> projects
            (
                "POST",
                "/v1/time-entries",
                {
                    "project_id": project_id,
                    "start_time": (now - timedelta(hours=5)).isoformat(),
                    "end_time": (now - timedelta(hours=4)).isoformat(),
                },
                {},
            ),
            ("GET", "/v1/me", None, {}),  # projects directly
            ("GET", f"/v1/projects/{project_id}", None, {}),
        ):
            began = time.monotonic()
            resp = await http.request(method, path, headers={**auth, **extra}, json=body)
            assert_retry_later(resp)
            assert time.monotonic() - began < GATEWAY_DEADLINE_S + 1, (path, time.monotonic() - began)

        with connect(session_databases["tracking"]) as db:
            written = scalar(
                db,
                "SELECT count(*) FROM time_entries WHERE user_id = ANY(%s::uuid[])",
                [http_user, grpc_user],
            )
            assert written == 0, "a refused call wrote an entry"
    finally:
        if proc.running_pid(cfg, "projects") is None:
            await asyncio.to_thread(services.start, cfg, running_services.env)

    # Projects is back: the same calls work, without restarting anyone else. The keyed start was
    # refused with a 503, which is not stored, so the same key now really starts the timer.
    others = {s: p for s, p in service_pids(cfg).items() if s != "projects"}
    assert others == {s: p for s, p in pids.items() if s != "projects"}
    entry = await until(grpc_start, lambda e: bool(e.entry_id), within=20, what="StartTimer after projects")
    manual = await until(
        grpc_manual, lambda e: bool(e.entry_id), within=20, what="a manual entry after projects"
    )

    async def keyed_start() -> httpx.Response:
        return await http.post("/v1/timer/start", headers={**auth, **key}, json=start_body)

    started = await until(keyed_start, lambda r: r.status_code != 503, within=20, what="the keyed start")
    assert started.status_code == 201, started.text
    # The gateway's own channel to projects last failed during the outage; its first call after
    # may still meet the channel's reconnect backoff (at most 2 s) and answer 503 + Retry-After.
    me = await until(
        lambda: http.get("/v1/me", headers=auth), lambda r: r.status_code != 503, within=20, what="GET /v1/me"
    )
    assert me.status_code == 200, me.text
    with connect(session_databases["tracking"]) as db:
        rows = db.execute(
            "SELECT entry_id::text FROM time_entries WHERE user_id = ANY(%s::uuid[]) ORDER BY created_at",
            ([http_user, grpc_user],),
        ).fetchall()
    assert {r[0] for r in rows} == {entry.entry_id, manual.entry_id, started.json()["entry_id"]}
    await until(lambda: readiness(http), ready, within=30, what="the stack ready again")
