"""The consistency checker against real services: zero differences on what the services made,
then every difference kind, planted directly in the databases, reported with its ids.

Runs on an isolated stack (its own service processes, databases and topics), so the
corruption never reaches the session's shared databases.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from consistency.check import check_and_settle
from consistency.compare import Kind
from tests.support.infra import ROOT, Infra, RunningStack, isolated_stack
from timetracking.common.v1 import types_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.invoicing.v1 import invoicing_pb2_grpc
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc
from ttlocal import services
from ttlocal.config import StackConfig

SETTLE_SECONDS = 60


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


@pytest.fixture(scope="module")
def stack(infra: Infra, test_stack_config: StackConfig) -> Iterator[RunningStack]:
    with isolated_stack(infra, test_stack_config, "consistency", port_shift=70) as running:
        yield running


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consistency", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli_env(stack: RunningStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    return {**env, **{f"{s.upper()}_DATABASE_URL": url for s, url in stack.databases.items()}}


@dataclass
class World:
    """What the services made: uninvoiced entries by name, invoices by name with their entries."""

    user_id: str
    timer_id: str = ""
    entries: dict[str, str] = field(default_factory=dict)
    invoices: dict[str, str] = field(default_factory=dict)
    invoice_entries: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def world(stack: RunningStack) -> AsyncIterator[World]:
    cfg = stack.config
    async with (
        grpc.aio.insecure_channel(cfg.grpc_target("projects")) as p,
        grpc.aio.insecure_channel(cfg.grpc_target("tracking")) as t,
        grpc.aio.insecure_channel(cfg.grpc_target("invoicing")) as i,
    ):
        projects = projects_pb2_grpc.ProjectsServiceStub(p)
        tracking = tracking_pb2_grpc.TrackingServiceStub(t)
        invoicing = invoicing_pb2_grpc.InvoicingServiceStub(i)
        client = await projects.CreateClient(
            ppb.CreateClientRequest(name="Checked", currency="EUR", tax_rate="19", payment_terms_days=14)
        )
        project = await projects.CreateProject(
            ppb.CreateProjectRequest(
                client_id=client.client_id,
                name="Checked project",
                billing_type=ppb.BILLING_TYPE_HOURLY,
                default_hourly_rate="99.99",
            )
        )
        user = await projects.CreateUser(
            ppb.CreateUserRequest(
                name="Checked", email=f"c-{uuid.uuid4().hex[:12]}@example.com", timezone="UTC"
            )
        )
        await projects.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
        )
        task = await projects.CreateTask(ppb.CreateTaskRequest(project_id=project.project_id, name="Design"))
        w = World(user.user_id)
        base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)

        async def book(day: int, slot: int, minutes: int, with_task: bool = True) -> tpb.TimeEntry:
            start = base + timedelta(days=day, hours=slot)
            return await tracking.CreateManualEntry(
                tpb.CreateManualEntryRequest(
                    actor_user_id=w.user_id,
                    user_id=w.user_id,
                    project_id=project.project_id,
                    task_id=task.task_id if with_task else "",
                    description=f"day {day} slot {slot}",
                    start_time=ts(start),
                    end_time=ts(start + timedelta(minutes=minutes)),
                    tags=["checked"],
                )
            )

        async def invoice(day: int, name: str, entries: list[tpb.TimeEntry]) -> str:
            inv = await invoicing.GenerateInvoice(
                ipb.GenerateInvoiceRequest(
                    actor_user_id=w.user_id,
                    project_id=project.project_id,
                    period=types_pb2.Period(
                        start=ts(base + timedelta(days=day)), end=ts(base + timedelta(days=day + 1))
                    ),
                    idempotency_key=str(uuid.uuid4()),
                )
            )
            w.invoices[name] = inv.invoice_id
            w.invoice_entries[name] = [e.entry_id for e in entries]
            return inv.invoice_id

        # Two invoices voided (their entries released), three drafts.
        for day, name in ((0, "V1"), (1, "V2")):
            billed = [await book(day, 1, 60), await book(day, 3, 45, with_task=False)]
            voided = await invoice(day, name, billed)
            await invoicing.VoidInvoice(ipb.TransitionRequest(actor_user_id=w.user_id, invoice_id=voided))
        i1 = [
            await book(2, 1, 60, with_task=False),
            await book(2, 3, 30),
            await book(2, 5, 90),
            await book(2, 7, 15),
        ]
        await invoice(2, "I1", i1)
        await invoice(3, "I2", [await book(3, 1, 60), await book(3, 3, 37)])
        await invoice(4, "I3", [await book(4, 1, 60), await book(4, 3, 61)])
        for slot, name in enumerate("ABCDEFGHU"):
            w.entries[name] = (await book(5, slot * 2, 20 + slot)).entry_id
        # An edit (version 2) and a delete (a tombstone in reporting), both through the API.
        await tracking.UpdateEntry(
            tpb.UpdateEntryRequest(
                actor_user_id=w.user_id, entry_id=w.entries["D"], expected_version=1, description="edited"
            )
        )
        gone = await book(6, 1, 30)
        await tracking.DeleteEntry(tpb.DeleteEntryRequest(actor_user_id=w.user_id, entry_id=gone.entry_id))
        # An entry made and deleted while both its events are in flight is in neither database, so
        # no check (and no settling) can see it; the counts below need its tombstone applied.
        await tombstone_applied(stack.databases["reporting"], gone.entry_id)
        # A running timer: private to tracking, never in reporting.
        w.timer_id = (
            await tracking.StartTimer(
                tpb.StartTimerRequest(
                    actor_user_id=w.user_id, user_id=w.user_id, project_id=project.project_id
                )
            )
        ).entry_id
        yield w


async def tombstone_applied(reporting_url: str, entry_id: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    libpq = reporting_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as c:
        while not c.execute("SELECT 1 FROM entries WHERE entry_id = %s AND deleted", (entry_id,)).fetchone():
            assert time.monotonic() < deadline, f"reporting never applied the delete of {entry_id}"
            await asyncio.sleep(0.2)


def test_what_the_services_made_is_consistent(stack: RunningStack, world: World) -> None:
    result = check_and_settle(stack.databases, SETTLE_SECONDS)
    assert result.differences == [], [d.as_json() for d in result.differences]
    assert result.counts["tracking_entries"] == 2 * 2 + 4 + 2 + 2 + 9 + 1  # the deleted one is gone
    assert (
        result.counts["reporting_entries"] == result.counts["tracking_entries"] - 1 + 1
    )  # - timer + tombstone
    assert result.counts["claimed_entries"] == 8

    cli = run_cli(cli_env(stack))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "consistent: no differences" in cli.stdout


def test_every_planted_difference_is_reported_with_its_ids(stack: RunningStack, world: World) -> None:
    services.stop(stack.config)  # nothing in the background may repair (or add to) what we plant
    e, inv = world.entries, world.invoices
    missing_invoice, pending_invoice, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    i1_e, i1_f, i1_g, i1_h = world.invoice_entries["I1"]
    dbs = {
        s: psycopg.connect(url.replace("+psycopg", ""), autocommit=True) for s, url in stack.databases.items()
    }
    try:
        rep, trk, inv_db = dbs["reporting"], dbs["tracking"], dbs["invoicing"]
        copy = """INSERT INTO entries SELECT %s, user_id, project_id, task_id, description, tags, start_time,
                  end_time, duration_seconds, is_billable, hourly_rate, currency, invoice_id, 1, false,
                  event_occurred_at, applied_at FROM entries WHERE entry_id = %s"""
        rep.execute("DELETE FROM entries WHERE entry_id = %s", (e["A"],))
        rep.execute(copy, (stranger, e["B"]))
        rep.execute("UPDATE entries SET deleted = true WHERE entry_id = %s", (e["C"],))
        rep.execute(copy, (world.timer_id, e["B"]))
        rep.execute("UPDATE entries SET version = 1 WHERE entry_id = %s", (e["D"],))
        rep.execute("UPDATE entries SET version = version + 5 WHERE entry_id = %s", (e["E"],))
        rep.execute(
            "UPDATE entries SET duration_seconds = duration_seconds + 1 WHERE entry_id = %s", (e["F"],)
        )
        trk.execute("UPDATE time_entries SET invoice_id = %s WHERE entry_id = %s", (missing_invoice, e["G"]))
        inv_db.execute(
            """INSERT INTO invoice_requests (idempotency_key, request_hash, invoice_id, project_id,
                                             period_start, period_end, state)
               SELECT 'planted', 'x', %s, project_id, period_start, period_end, 'PENDING'
               FROM invoices WHERE invoice_id = %s""",
            (pending_invoice, inv["I1"]),
        )
        trk.execute("UPDATE time_entries SET invoice_id = %s WHERE entry_id = %s", (pending_invoice, e["H"]))
        inv_db.execute("UPDATE invoices SET entries_released_at = NULL WHERE invoice_id = %s", (inv["V1"],))
        for name in ("V1", "V2"):
            trk.execute(
                "UPDATE time_entries SET invoice_id = %s WHERE entry_id = %s",
                (inv[name], world.invoice_entries[name][0]),
            )
        trk.execute("UPDATE time_entries SET invoice_id = NULL WHERE entry_id = %s", (i1_e,))
        trk.execute("UPDATE time_entries SET invoice_id = %s WHERE entry_id = %s", (inv["I1"], e["U"]))
        trk.execute(
            "UPDATE time_entries SET duration_seconds = duration_seconds - 1 WHERE entry_id = %s", (i1_g,)
        )
        trk.execute("UPDATE time_entries SET hourly_rate = hourly_rate + 1 WHERE entry_id = %s", (i1_h,))
        inv_db.execute(
            """UPDATE invoice_lines SET entry_ids = entry_ids || %s::uuid, amount = amount + 0.01
               WHERE line_id = (SELECT line_id FROM invoice_lines WHERE invoice_id = %s
                                ORDER BY position LIMIT 1)""",
            (i1_f, inv["I2"]),
        )
        inv_db.execute(
            "UPDATE invoices SET subtotal = subtotal + 1, total = total + 1 WHERE invoice_id = %s",
            (inv["I3"],),
        )
    finally:
        for conn in dbs.values():
            conn.close()

    cli = run_cli(cli_env(stack), "--json")
    assert cli.returncode == 1, cli.stdout + cli.stderr
    report = json.loads(cli.stdout)
    reported = {(d["kind"], d.get("entry_id") or d.get("invoice_id")) for d in report["differences"]}
    expected = {
        (Kind.MISSING_IN_REPORTING, e["A"]),
        (Kind.NOT_IN_TRACKING, str(stranger)),
        (Kind.DELETED_ONLY_IN_REPORTING, e["C"]),
        (Kind.RUNNING_TIMER_IN_REPORTING, world.timer_id),
        (Kind.VERSION_LAG, e["D"]),
        (Kind.REPORTING_AHEAD, e["E"]),
        (Kind.FIELD_MISMATCH, e["F"]),
        (Kind.CLAIMED_BY_MISSING_INVOICE, str(missing_invoice)),
        (Kind.CLAIMED_BY_PENDING_GENERATION, str(pending_invoice)),
        (Kind.VOID_RELEASE_PENDING, inv["V1"]),
        (Kind.CLAIMED_AFTER_RELEASE, inv["V2"]),
        (Kind.LINE_ENTRY_NOT_CLAIMED, inv["I1"]),
        (Kind.CLAIMED_NOT_ON_LINES, inv["I1"]),
        (Kind.LINE_SECONDS_MISMATCH, inv["I1"]),
        (Kind.LINE_RATE_MISMATCH, inv["I1"]),
        (Kind.ENTRY_ON_TWO_INVOICES, i1_f),
        (Kind.LINE_AMOUNT_WRONG, inv["I2"]),
        (Kind.INVOICE_TOTALS_WRONG, inv["I3"]),
    }
    assert {k.value for k, _ in expected} == {k.value for k in Kind}, "every kind is planted once"
    assert {(k.value, i) for k, i in expected} <= reported, json.dumps(report, indent=2)
    # Nothing is reported about what was left alone.
    touched = {i for _, i in expected} | {e["G"], e["H"], e["U"], i1_e, i1_g, i1_h, inv["I2"]}
    touched |= {world.invoice_entries[n][0] for n in ("V1", "V2")}
    assert {i for _, i in reported} <= touched, json.dumps(report, indent=2)
    found = {(d["kind"], d.get("entry_id") or d.get("invoice_id")): d for d in report["differences"]}
    assert found[("field_mismatch", e["F"])]["fields"] == ["duration_seconds"]
    assert found[("field_mismatch", e["G"])]["fields"] == ["invoice_id"]
    assert found[("line_entry_not_claimed", inv["I1"])]["entry_ids"] == [i1_e]
    assert found[("line_entry_not_claimed", inv["I2"])]["entry_ids"] == [i1_f]
    assert found[("claimed_not_on_lines", inv["I1"])]["entry_ids"] == [e["U"]]
    assert found[("line_rate_mismatch", inv["I1"])]["entry_ids"] == [i1_h]
    assert i1_g in found[("line_seconds_mismatch", inv["I1"])]["entry_ids"]
    assert found[("claimed_by_missing_invoice", str(missing_invoice))]["entry_ids"] == [e["G"]]

    summary = run_cli(cli_env(stack))
    assert summary.returncode == 1
    assert f"{len(report['differences'])} differences:" in summary.stdout
    assert "claimed_by_missing_invoice (1)" in summary.stdout and str(missing_invoice) in summary.stdout


def test_usage_and_connection_errors_exit_2_naming_what_failed(stack: RunningStack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    missing = run_cli(env)
    assert missing.returncode == 2
    assert "TRACKING_DATABASE_URL" in missing.stderr and "--tracking-url" in missing.stderr

    unreachable = run_cli(
        cli_env(stack), "--tracking-url", "postgresql+psycopg://u:secret@127.0.0.1:1/nowhere"
    )
    assert unreachable.returncode == 2
    assert "tracking database" in unreachable.stderr and "secret" not in unreachable.stderr

    assert run_cli(cli_env(stack), "--settle-seconds", "-1").returncode == 2
    assert run_cli(cli_env(stack), "--settle-seconds", "soon").returncode == 2
