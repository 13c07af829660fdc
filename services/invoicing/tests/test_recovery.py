"""Invoicing killed between claim and save: after restart no entry is claimed by a missing invoice."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from conftest import make_billable
from tests.support.infra import RunningStack
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.tracking.v1 import tracking_pb2 as tpb
from ttlocal import proc, services


def restart_invoicing(stack: RunningStack, **extra_env: str) -> None:
    proc.stop(stack.config, "invoicing", timeout=30)
    services.start(stack.config, {**stack.env, **extra_env})


async def test_a_crash_between_claim_and_save_is_completed_by_the_reconciler(stubs, running_services) -> None:
    world = await make_billable(stubs, rate="88.00")
    for i in range(5):
        await world.book(i * 3600, 1800 + i, "Design")

    # The failpoint makes invoicing exit(137) right after tracking claimed the entries.
    restart_invoicing(
        running_services, INVOICING_FAILPOINT="after_claim", INVOICING_RECONCILE_INTERVAL_S="3600"
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as crashed:
            await world.generate("crash-key-" + world.project_id)
        assert crashed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        deadline = time.monotonic() + 20
        while proc.running_pid(running_services.config, "invoicing") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert proc.running_pid(running_services.config, "invoicing") is None, "invoicing should have died"

        # The entries are claimed, and no invoice exists yet: exactly the state to recover from.
        claimed = await stubs.tracking.ListEntries(
            tpb.ListEntriesRequest(project_id=world.project_id, invoiced=True)
        )
        assert len(claimed.entries) == 5
        invoice_id = claimed.entries[0].invoice_id
    finally:
        restart_invoicing(running_services)  # normal settings: reconcile every second, grace 3 s

    async with asyncio.timeout(60):
        while True:
            try:
                invoice = await stubs.invoicing.GetInvoice(ipb.GetInvoiceRequest(invoice_id=invoice_id))
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
                await asyncio.sleep(0.5)
    assert invoice.status == ipb.INVOICE_STATUS_DRAFT
    assert sorted(e for line in invoice.lines for e in line.entry_ids) == sorted(
        e.entry_id for e in world.entries
    )

    # Every claimed entry of the project points at an invoice that exists; the same key returns it.
    claimed = await stubs.tracking.ListEntries(
        tpb.ListEntriesRequest(project_id=world.project_id, invoiced=True)
    )
    for entry in claimed.entries:
        await stubs.invoicing.GetInvoice(ipb.GetInvoiceRequest(invoice_id=entry.invoice_id))
    again = await world.generate("crash-key-" + world.project_id)
    assert again.invoice_id == invoice_id
