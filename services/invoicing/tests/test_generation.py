"""Generating invoices against the real tracking claim: exact, idempotent, never double-billed."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import ROUND_HALF_UP, Decimal, localcontext

import grpc
import psycopg
import pytest

from conftest import make_billable
from timetracking.events.v1 import invoices_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.tracking.v1 import tracking_pb2 as tpb


def reference_total(
    entries: list[tpb.TimeEntry], tax_rate: str, places: int
) -> tuple[Decimal, Decimal, Decimal]:
    """Independent of lines.py: Decimal at 100 digits, grouped by (task, rate), ROUND_HALF_UP."""
    q = Decimal(1).scaleb(-places)
    groups: dict[tuple[str, str], int] = {}
    for e in entries:
        groups[(e.task_id, e.hourly_rate)] = groups.get((e.task_id, e.hourly_rate), 0) + e.duration_seconds
    with localcontext() as ctx:
        ctx.prec = 100
        subtotal = sum(
            (
                (Decimal(s) * Decimal(rate) / 3600).quantize(q, rounding=ROUND_HALF_UP)
                for (_, rate), s in groups.items()
            ),
            Decimal(0),
        )
        tax = (subtotal * Decimal(tax_rate) / 100).quantize(q, rounding=ROUND_HALF_UP)
    return subtotal, tax, subtotal + tax


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value


def error_code(err: grpc.aio.AioRpcError) -> str:
    return dict(err.trailing_metadata() or ()).get("error-code", "")


async def test_draft_lines_and_totals_match_an_independent_reference(stubs) -> None:
    world = await make_billable(stubs, rate="99.99", tax_rate="19")
    for offset, seconds, task in [
        (0, 451, "Design"),
        (600, 1, "Design"),
        (3600, 3600, "Development"),
        (7200, 7 * 60 + 31, None),
        (9000, 59 * 60 + 59, "Development"),
    ]:
        await world.book(offset, seconds, task)
    invoice = await world.generate()

    assert invoice.status == ipb.INVOICE_STATUS_DRAFT and invoice.number == "" and invoice.currency == "EUR"
    subtotal, tax, total = reference_total(world.entries, "19", 2)
    assert (Decimal(invoice.subtotal), Decimal(invoice.tax), Decimal(invoice.total)) == (subtotal, tax, total)
    assert {d.description for d in invoice.lines} == {"Design", "Development", "Time without a task"}
    billed = [e for line in invoice.lines for e in line.entry_ids]
    assert sorted(billed) == sorted(e.entry_id for e in world.entries)
    assert sum(line.seconds for line in invoice.lines) == sum(e.duration_seconds for e in world.entries)

    # Tracking agrees: every entry now carries this invoice's id and is read-only.
    listed = await stubs.tracking.ListEntries(
        tpb.ListEntriesRequest(invoice_id=invoice.invoice_id, page_size=50)
    )
    assert sorted(e.entry_id for e in listed.entries) == sorted(billed)


@pytest.mark.parametrize(
    ("currency", "rate", "places"), [("JPY", "10000", 0), ("USD", "87.35", 2), ("KWD", "12.5", 3)]
)
async def test_currencies_round_to_their_minor_unit(stubs, currency: str, rate: str, places: int) -> None:
    world = await make_billable(stubs, currency=currency, rate=rate, tax_rate="10")
    for offset, seconds in [(0, 1), (100, 451), (1000, 3601)]:
        await world.book(offset, seconds, "Design")
    invoice = await world.generate()
    _, tax, total = reference_total(world.entries, "10", places)
    assert invoice.currency == currency
    assert Decimal(invoice.total) == total and Decimal(invoice.tax) == tax
    assert Decimal(invoice.total).as_tuple().exponent == -places


async def test_the_same_key_ten_times_at_once_makes_one_invoice(stubs) -> None:
    world = await make_billable(stubs)
    await world.book(0, 3600, "Design")
    key = str(uuid.uuid4())
    results = await asyncio.gather(*(world.generate(key) for _ in range(10)))
    assert len({r.invoice_id for r in results}) == 1
    listed = await stubs.invoicing.ListInvoices(ipb.ListInvoicesRequest(project_id=world.project_id))
    assert len(listed.invoices) == 1

    other_period = world.period
    other_period.end.seconds -= 3600
    reused = await rpc_error(world.generate(key, other_period))
    assert (
        reused.code() == grpc.StatusCode.INVALID_ARGUMENT and error_code(reused) == "idempotency_key_reused"
    )


async def test_twenty_concurrent_generations_never_bill_an_entry_twice(stubs) -> None:
    world = await make_billable(stubs, rate="120.50")
    for i in range(30):
        await world.book(i * 900, 600 + i * 7, "Design" if i % 2 else None)
    results = await asyncio.gather(*(world.generate() for _ in range(20)), return_exceptions=True)
    invoices = [r for r in results if isinstance(r, ipb.Invoice)]
    refusals = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert invoices, refusals
    assert all(error_code(r) == "nothing_to_invoice" for r in refusals), [r.details() for r in refusals]

    billed = [e for inv in invoices for line in inv.lines for e in line.entry_ids]
    assert len(billed) == len(set(billed)) == len(world.entries)  # each entry on exactly one invoice
    by_id = {e.entry_id: e for e in world.entries}
    for inv in invoices:
        mine = [by_id[e] for line in inv.lines for e in line.entry_ids]
        assert (Decimal(inv.subtotal), Decimal(inv.tax), Decimal(inv.total)) == reference_total(mine, "19", 2)


async def test_nothing_to_invoice_is_a_clear_error_that_creates_nothing(stubs) -> None:
    world = await make_billable(stubs)
    err = await rpc_error(world.generate())
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and error_code(err) == "nothing_to_invoice"
    listed = await stubs.invoicing.ListInvoices(ipb.ListInvoicesRequest(project_id=world.project_id))
    assert list(listed.invoices) == []


async def test_bad_requests_name_the_field(stubs) -> None:
    world = await make_billable(stubs)
    backwards = world.period
    backwards.start.seconds, backwards.end.seconds = backwards.end.seconds, backwards.start.seconds
    for request, field in [
        (ipb.GenerateInvoiceRequest(project_id="x", period=world.period, idempotency_key="k"), "project_id"),
        (ipb.GenerateInvoiceRequest(project_id=world.project_id, period=world.period), "idempotency_key"),
        (ipb.GenerateInvoiceRequest(project_id=world.project_id, idempotency_key="k"), "period"),
        (
            ipb.GenerateInvoiceRequest(project_id=world.project_id, period=backwards, idempotency_key="k"),
            "period.end",
        ),
    ]:
        err = await rpc_error(stubs.invoicing.GenerateInvoice(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert json.loads(dict(err.trailing_metadata())["field-violations"])[0]["field"] == field


async def test_fixed_price_bills_the_fee_once_and_non_billable_bills_nothing(stubs) -> None:
    fixed = await make_billable(stubs, billing_type=ppb.BILLING_TYPE_FIXED, budget_amount="5000")
    await fixed.book(0, 7200, "Design")
    invoice = await fixed.generate()
    assert [(line.description.startswith("Fixed fee"), line.amount) for line in invoice.lines] == [
        (True, "5000.00")
    ]
    assert invoice.subtotal == "5000.00" and invoice.total == "5950.00"
    await fixed.book(8000, 3600, "Design")
    again = await rpc_error(fixed.generate())
    assert (
        again.code() == grpc.StatusCode.FAILED_PRECONDITION
        and error_code(again) == "fixed_fee_already_invoiced"
    )
    later = await stubs.tracking.ListEntries(
        tpb.ListEntriesRequest(project_id=fixed.project_id, invoiced=False)
    )
    assert len(later.entries) == 1  # released, not stuck on a failed request

    free = await make_billable(stubs, billing_type=ppb.BILLING_TYPE_NON_BILLABLE)
    await free.book(0, 3600)
    refused = await rpc_error(free.generate())
    assert error_code(refused) == "nothing_to_invoice" and "NON_BILLABLE" in refused.details()


async def test_invoice_events_carry_the_lines_without_entry_ids(stubs, session_databases) -> None:
    """An invoice's event stays small whatever it bills: 100k entry ids made a 3.8 MB message,
    over Kafka's limit, which the relay could never publish (holding back every later event)."""
    world = await make_billable(stubs, rate="50", tax_rate="0")
    for offset in range(3):
        await world.book(offset * 600, 300, "Design")
    invoice = await world.generate()
    assert sum(len(line.entry_ids) for line in invoice.lines) == 3  # the API still lists them

    url = session_databases["invoicing"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT payload FROM outbox WHERE key = %s", (invoice.invoice_id,)).fetchall()
    assert len(rows) == 1
    event = invoices_pb2.InvoiceEvent.FromString(rows[0][0])
    assert (event.transition, event.invoice.invoice_id, event.invoice.total) == (
        "DRAFTED",
        invoice.invoice_id,
        invoice.total,
    )
    without_ids = []
    for line in invoice.lines:
        stripped = ipb.InvoiceLine()
        stripped.CopyFrom(line)
        del stripped.entry_ids[:]
        without_ids.append(stripped)
    assert list(event.invoice.lines) == without_ids
