"""Fault scenarios on the event path: the broker, reporting and invoicing really SIGKILLed by pid
while work is flowing, restarted, and the books checked afterwards.

Each scenario ends with its own consistency check: what tracking holds (durations, claims) is
compared with what reporting and invoicing hold. Every wait has a deadline. Every scenario
restores the component it killed in `finally`, so the stack is healthy for the tests after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest

from tests.support.faults import Stubs, connect, new_project, scalar, ts, until
from tests.support.infra import RunningStack
from timetracking.common.v1 import types_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.reporting.v1 import reporting_pb2 as rpb
from timetracking.tracking.v1 import tracking_pb2 as tpb
from ttlocal import kafka, proc, services


@pytest.fixture(scope="module")
def dbs(session_databases: dict[str, str]) -> Iterator[dict[str, psycopg.Connection]]:
    conns = {s: connect(session_databases[s]) for s in ("tracking", "reporting", "invoicing")}
    try:
        yield conns
    finally:
        for conn in conns.values():
            conn.close()


async def project_total(stubs: Stubs, project_id: str) -> int:
    summary = await stubs.reporting.GetProjectSummary(
        rpb.ProjectSummaryRequest(project_id=project_id), timeout=10
    )
    return summary.totals.total_seconds


def reporting_durations(db: psycopg.Connection, project_id: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT entry_id::text, duration_seconds FROM entries"
        " WHERE project_id = %s AND NOT deleted AND end_time IS NOT NULL",
        (project_id,),
    ).fetchall()
    return {entry_id: int(seconds) for entry_id, seconds in rows}


# --- 1. the broker killed while timers are being stopped --------------------------------------
USERS = 36


async def test_kafka_sigkilled_while_timers_stop_under_load_loses_and_doubles_nothing(
    stubs: Stubs, dbs: dict[str, psycopg.Connection], running_services: RunningStack
) -> None:
    cfg = running_services.config
    project_id, users = await new_project(stubs, USERS)
    # One running timer per user, each started a different number of minutes ago (a test cannot
    # wait an hour): the durations differ, so a mixed-up entry would show in the sums.
    for i, user in enumerate(users):
        entry = await stubs.tracking.StartTimer(
            tpb.StartTimerRequest(actor_user_id=user, user_id=user, project_id=project_id)
        )
        dbs["tracking"].execute(
            "UPDATE time_entries SET start_time = start_time - %s WHERE entry_id = %s AND end_time IS NULL",
            (timedelta(minutes=5 + i, seconds=i), entry.entry_id),
        )

    stopped: dict[str, int] = {}  # entry id -> duration tracking reported
    during_outage = 0
    broker_down = asyncio.Event()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)

    async def stopper() -> None:
        nonlocal during_outage
        while not queue.empty():
            user = queue.get_nowait()
            result = await stubs.tracking.StopTimer(
                tpb.StopTimerRequest(actor_user_id=user, user_id=user), timeout=20
            )
            assert not result.discarded and result.entry.duration_seconds > 0
            stopped[result.entry.entry_id] = result.entry.duration_seconds
            during_outage += broker_down.is_set()
            await asyncio.sleep(0.15)  # a steady stream, so the stops span the outage

    stopping = asyncio.gather(*(stopper() for _ in range(6)))
    try:
        async with asyncio.timeout(60):
            while len(stopped) < USERS // 3:
                await asyncio.sleep(0.02)
        await asyncio.to_thread(proc.kill, cfg, kafka.NAME)
        broker_down.set()
        async with asyncio.timeout(60):
            while len(stopped) < 2 * USERS // 3:
                await asyncio.sleep(0.05)
    finally:
        if proc.running_pid(cfg, kafka.NAME) is None:
            await asyncio.to_thread(kafka.start, cfg)
        broker_down.clear()
    async with asyncio.timeout(90):
        await stopping
    assert len(stopped) == USERS and during_outage > 0

    # Tracking's own record agrees with what StopTimer answered.
    tracked = dict(
        dbs["tracking"]
        .execute(
            "SELECT entry_id::text, duration_seconds FROM time_entries"
            " WHERE project_id = %s AND end_time IS NOT NULL",
            (project_id,),
        )
        .fetchall()
    )
    assert tracked == stopped
    expected = sum(stopped.values())
    await until(
        lambda: project_total(stubs, project_id),
        lambda total: total == expected,
        within=120,
        what=f"reporting's total for {USERS} stops across a broker crash ({during_outage} during it)",
    )
    # Every stopped entry once, with its own duration; no running entry left behind.
    assert reporting_durations(dbs["reporting"], project_id) == stopped
    assert scalar(dbs["reporting"], "SELECT count(*) FROM entries WHERE project_id = %s", project_id) == USERS


# --- 2. reporting killed mid-batch, again and again --------------------------------------------
KILLS = 3


async def test_reporting_sigkilled_three_times_mid_stream_counts_every_entry_once(
    stubs: Stubs, dbs: dict[str, psycopg.Connection], running_services: RunningStack
) -> None:
    """Entries flow through the real pipeline (tracking's API, outbox, Kafka) while reporting is
    killed three times; services/reporting/tests/test_resilience.py covers one kill with events
    written to the topic directly."""
    cfg = running_services.config
    project_id, (user,) = await new_project(stubs, 1)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=60)
    created: dict[str, int] = {}  # entry id -> duration tracking stored
    kills_done = asyncio.Event()

    async def produce() -> None:
        """About 16 entries a second until the kills are over, then a last few."""
        j, after = 0, 0
        while after < 40:
            batch = []
            for _ in range(4):
                start = base + timedelta(hours=j)
                batch.append(
                    stubs.tracking.CreateManualEntry(
                        tpb.CreateManualEntryRequest(
                            actor_user_id=user,
                            user_id=user,
                            project_id=project_id,
                            description=f"steady {j}",
                            start_time=ts(start),
                            end_time=ts(start + timedelta(seconds=600 + (j * 37) % 3000)),
                        ),
                        timeout=20,
                    )
                )
                j += 1
            for entry in await asyncio.gather(*batch):
                created[entry.entry_id] = entry.duration_seconds
            after += 4 if kills_done.is_set() else 0
            await asyncio.sleep(0.25)

    def applied() -> int:
        return scalar(dbs["reporting"], "SELECT count(*) FROM entries WHERE project_id = %s", project_id)

    producing = asyncio.create_task(produce())
    kills: list[tuple[int, int]] = []  # (entries applied, entries created) when each kill landed
    try:
        for _ in range(KILLS):
            # Let reporting apply more events after each restart, then kill it mid-stream.
            target = applied() + 30
            async with asyncio.timeout(90):
                while applied() < target:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(proc.kill, cfg, "reporting")
            kills.append((applied(), len(created)))
            assert not producing.done(), "the stream should still be flowing at each kill"
            await asyncio.to_thread(services.start, cfg, running_services.env)
    finally:
        kills_done.set()
        if proc.running_pid(cfg, "reporting") is None:
            await asyncio.to_thread(services.start, cfg, running_services.env)
    async with asyncio.timeout(120):
        await producing

    expected = sum(created.values())
    await until(
        lambda: project_total(stubs, project_id),
        lambda total: total == expected,
        within=120,
        what=f"reporting's total of {len(created)} entries after {KILLS} kills (applied/created: {kills})",
    )
    assert reporting_durations(dbs["reporting"], project_id) == created


# --- 3. invoicing killed while invoices are being generated --------------------------------------
PROJECTS = 4
ENTRIES_EACH = 6


async def test_invoicing_sigkilled_with_generations_in_flight_leaves_no_orphan_or_double_claim(
    stubs: Stubs, dbs: dict[str, psycopg.Connection], running_services: RunningStack
) -> None:
    """Several GenerateInvoice calls in flight (two competing keys per project) when invoicing is
    SIGKILLed; after the restart no entry is claimed by a missing invoice, none is on two
    invoices, and retrying the same keys invoices every entry exactly once.

    The failpoint variant (exit right after the claim) is services/invoicing/tests/test_recovery.py.
    """
    cfg = running_services.config
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    start = end - timedelta(days=5)
    period = types_pb2.Period(start=ts(start), end=ts(end))
    worlds: list[tuple[str, str]] = []  # (project, user)
    booked: dict[str, set[str]] = {}
    for _ in range(PROJECTS):
        project_id, (user,) = await new_project(stubs, 1)
        worlds.append((project_id, user))
        booked[project_id] = set()
        for i in range(ENTRIES_EACH):
            entry = await stubs.tracking.CreateManualEntry(
                tpb.CreateManualEntryRequest(
                    actor_user_id=user,
                    user_id=user,
                    project_id=project_id,
                    description="billable",
                    start_time=ts(start + timedelta(hours=3 * i)),
                    end_time=ts(start + timedelta(hours=3 * i, seconds=1800 + 60 * i)),
                )
            )
            booked[project_id].add(entry.entry_id)
    keys = {(p, n): f"fault-{n}-{p}" for p, _ in worlds for n in range(2)}

    def generate(project_id: str, user: str, n: int):  # type: ignore[no-untyped-def]
        return stubs.invoicing.GenerateInvoice(
            ipb.GenerateInvoiceRequest(
                actor_user_id=user, project_id=project_id, period=period, idempotency_key=keys[project_id, n]
            ),
            timeout=30,
        )

    projects = [p for p, _ in worlds]

    def claimed() -> int:
        return scalar(
            dbs["tracking"],
            "SELECT count(*) FROM time_entries WHERE project_id = ANY(%s::uuid[]) AND invoice_id IS NOT NULL",
            projects,
        )

    calls = [asyncio.ensure_future(generate(p, u, n)) for p, u in worlds for n in range(2)]
    try:
        # Kill as soon as the first claim is visible: the other calls are still on their way.
        deadline = time.monotonic() + 30
        while claimed() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(proc.kill, cfg, "invoicing")
        orphaned = scalar(
            dbs["tracking"],
            "SELECT count(*) FROM time_entries WHERE project_id = ANY(%s::uuid[]) AND invoice_id IS NOT NULL",
            projects,
        ) - scalar(
            dbs["invoicing"],
            "SELECT sum(cardinality(l.entry_ids)) FROM invoice_lines l JOIN invoices i USING (invoice_id)"
            " WHERE i.project_id = ANY(%s::uuid[])",
            projects,
        )
        print(f"invoicing killed with {claimed()} entries claimed, ~{orphaned} not yet on a saved invoice")
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        if proc.running_pid(cfg, "invoicing") is None:
            await asyncio.to_thread(services.start, cfg, running_services.env)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in errors), errors
    codes = [o.code() for o in errors if isinstance(o, grpc.aio.AioRpcError)]
    crash = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert any(c in crash for c in codes), f"the kill should have cut some calls short: {outcomes}"
    # Besides the cut calls, only a competing key losing the race (conflict / nothing left).
    assert all(c in (*crash, grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION) for c in codes)

    async def claims_consistent() -> dict[str, list[str]]:
        """Every claimed entry's invoice exists and lists it; no entry is on two invoices."""
        on_invoice: dict[str, list[str]] = {}  # entry id -> invoices listing it
        rows = (
            dbs["tracking"]
            .execute(
                "SELECT entry_id::text, invoice_id::text FROM time_entries"
                " WHERE project_id = ANY(%s::uuid[]) AND invoice_id IS NOT NULL",
                (projects,),
            )
            .fetchall()
        )
        for invoice_id in {i for _, i in rows}:
            invoice = await stubs.invoicing.GetInvoice(
                ipb.GetInvoiceRequest(invoice_id=invoice_id), timeout=10
            )
            for line in invoice.lines:
                for entry_id in line.entry_ids:
                    on_invoice.setdefault(entry_id, []).append(invoice_id)
        for entry_id, invoice_id in rows:
            assert on_invoice.get(entry_id) == [invoice_id], (entry_id, invoice_id, on_invoice.get(entry_id))
        return on_invoice

    async def settled() -> dict[str, list[str]] | None:
        try:
            return await claims_consistent()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # a claim the reconciler has not finished yet
                return None
            raise

    await until(settled, lambda r: r is not None, within=60, what="the reconciler settles every claim")

    # The same keys again: each call returns an invoice, and together they invoice every entry once.
    retried = []
    for p, u in worlds:
        for n in range(2):
            try:
                retried.append(await generate(p, u, n))
            except grpc.aio.AioRpcError as exc:  # the competing key found nothing left to bill
                assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc
    on_invoice = await claims_consistent()
    assert set(on_invoice) == set().union(*booked.values())
    assert all(len(invoices) == 1 for invoices in on_invoice.values())
    lines = {e for inv in retried for line in inv.lines for e in line.entry_ids}
    assert lines == set(on_invoice)
