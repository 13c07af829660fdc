"""DRAFT -> SENT -> PAID, OVERDUE, VOID: guarded transitions, gapless numbers, the PDF in S3."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta

import boto3
import grpc
import httpx
import psycopg
import pytest
from botocore.client import Config
from pypdf import PdfReader

from conftest import make_billable
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.tracking.v1 import tracking_pb2 as tpb


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value


async def draft(stubs, hours: int = 2) -> tuple[object, ipb.Invoice]:  # type: ignore[no-untyped-def]
    world = await make_billable(stubs, rate="150.00")
    for i in range(hours):
        await world.book(i * 3600, 3600, "Design")
    return world, await world.generate()


async def wait_for_pdf(stubs, invoice_id: str) -> ipb.Invoice:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(60):
        while True:
            invoice = await stubs.invoicing.GetInvoice(ipb.GetInvoiceRequest(invoice_id=invoice_id))
            if invoice.pdf_available:
                return invoice
            await asyncio.sleep(0.3)


def s3(infra):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=infra.s3_endpoint,
        aws_access_key_id=infra.s3_access_key,
        aws_secret_access_key=infra.s3_secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


async def test_send_numbers_renders_a_pdf_and_freezes_the_invoice(stubs, infra, tmp_path) -> None:
    _, invoice = await draft(stubs)
    sent = await stubs.invoicing.SendInvoice(
        ipb.TransitionRequest(invoice_id=invoice.invoice_id, expected_version=invoice.version)
    )
    year = datetime.now(UTC).year
    assert sent.status == ipb.INVOICE_STATUS_SENT and re.fullmatch(rf"INV-{year}-\d{{6}}", sent.number)
    assert sent.invoice_date == datetime.now(UTC).date().isoformat()
    assert sent.due_date == (datetime.now(UTC).date() + timedelta(days=14)).isoformat()
    sent = await wait_for_pdf(stubs, invoice.invoice_id)

    body = (
        s3(infra).get_object(Bucket=infra.s3_bucket, Key=f"invoices/{invoice.invoice_id}.pdf")["Body"].read()
    )
    assert body.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    assert sent.number in text
    assert "357.00" in text  # 2 h x 150.00 = 300.00 + 19 % = 357.00
    assert "Page 1 of 1" in text

    url = await stubs.invoicing.GetInvoicePdfUrl(ipb.GetInvoicePdfUrlRequest(invoice_id=invoice.invoice_id))
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url.url)).content == body

    # Render page 1 to PNG (kept for a person to look at when the test runs with --basetemp).
    import pypdfium2

    page = pypdfium2.PdfDocument(body)[0]
    image = page.render(scale=1.5).to_pil()
    image.save(tmp_path / "invoice-page-1.png")
    assert image.getextrema() != ((255, 255), (255, 255), (255, 255))  # not blank

    # Immutable: a second send, a void and an edit of its entries are refused.
    again = await rpc_error(stubs.invoicing.SendInvoice(ipb.TransitionRequest(invoice_id=invoice.invoice_id)))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "SENT" in again.details()
    void = await rpc_error(stubs.invoicing.VoidInvoice(ipb.TransitionRequest(invoice_id=invoice.invoice_id)))
    assert void.code() == grpc.StatusCode.FAILED_PRECONDITION and "invoice is SENT" in void.details()
    entry_id = invoice.lines[0].entry_ids[0]
    entry = await stubs.tracking.GetEntry(tpb.GetEntryRequest(entry_id=entry_id))
    edit = await rpc_error(
        stubs.tracking.UpdateEntry(
            tpb.UpdateEntryRequest(entry_id=entry_id, expected_version=entry.version, description="changed")
        )
    )
    assert edit.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_paid_and_illegal_transitions(stubs) -> None:
    _, invoice = await draft(stubs, hours=1)
    early = await rpc_error(
        stubs.invoicing.MarkInvoicePaid(ipb.MarkInvoicePaidRequest(invoice_id=invoice.invoice_id))
    )
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION and "invoice is DRAFT" in early.details()
    sent = await stubs.invoicing.SendInvoice(ipb.TransitionRequest(invoice_id=invoice.invoice_id))
    stale = await rpc_error(
        stubs.invoicing.MarkInvoicePaid(
            ipb.MarkInvoicePaidRequest(invoice_id=invoice.invoice_id, expected_version=sent.version - 1)
        )
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    future = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    bad_date = await rpc_error(
        stubs.invoicing.MarkInvoicePaid(
            ipb.MarkInvoicePaidRequest(invoice_id=invoice.invoice_id, paid_on=future)
        )
    )
    assert bad_date.code() == grpc.StatusCode.INVALID_ARGUMENT
    paid = await stubs.invoicing.MarkInvoicePaid(
        ipb.MarkInvoicePaidRequest(invoice_id=invoice.invoice_id, payment_reference="BANK-REF-42")
    )
    assert paid.status == ipb.INVOICE_STATUS_PAID and paid.payment_reference == "BANK-REF-42"
    for call in (stubs.invoicing.SendInvoice, stubs.invoicing.VoidInvoice):
        err = await rpc_error(call(ipb.TransitionRequest(invoice_id=invoice.invoice_id)))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "invoice is PAID" in err.details()


async def test_void_releases_the_entries_so_they_can_be_invoiced_again(stubs) -> None:
    world, invoice = await draft(stubs)
    voided = await stubs.invoicing.VoidInvoice(ipb.TransitionRequest(invoice_id=invoice.invoice_id))
    assert voided.status == ipb.INVOICE_STATUS_VOID
    still = await stubs.tracking.ListEntries(tpb.ListEntriesRequest(invoice_id=invoice.invoice_id))
    assert list(still.entries) == []
    again = await world.generate()
    assert again.invoice_id != invoice.invoice_id and again.total == invoice.total


async def test_concurrent_sends_get_gapless_consecutive_numbers(stubs) -> None:
    drafts = [(await draft(stubs, hours=1))[1] for _ in range(6)]
    sent = await asyncio.gather(
        *(stubs.invoicing.SendInvoice(ipb.TransitionRequest(invoice_id=d.invoice_id)) for d in drafts)
    )
    numbers = sorted(int(s.number.rsplit("-", 1)[1]) for s in sent)
    assert numbers == list(range(numbers[0], numbers[0] + 6))


async def test_an_invoice_past_its_due_date_becomes_overdue(
    stubs, session_databases, running_services
) -> None:
    _, invoice = await draft(stubs, hours=1)
    await stubs.invoicing.SendInvoice(ipb.TransitionRequest(invoice_id=invoice.invoice_id))
    url = session_databases["invoicing"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, autocommit=True) as db:  # time travel: the due date passed
        db.execute(
            "UPDATE invoices SET due_date = current_date - 1 WHERE invoice_id = %s", (invoice.invoice_id,)
        )
    async with asyncio.timeout(30):
        while True:
            got = await stubs.invoicing.GetInvoice(ipb.GetInvoiceRequest(invoice_id=invoice.invoice_id))
            if got.status == ipb.INVOICE_STATUS_OVERDUE:
                break
            await asyncio.sleep(0.5)
    paid = await stubs.invoicing.MarkInvoicePaid(ipb.MarkInvoicePaidRequest(invoice_id=invoice.invoice_id))
    assert paid.status == ipb.INVOICE_STATUS_PAID


async def test_list_filters_and_pages(stubs) -> None:
    world, first = await draft(stubs, hours=1)
    await stubs.invoicing.SendInvoice(ipb.TransitionRequest(invoice_id=first.invoice_id))
    await world.book(20_000, 1800, "Design")
    second = await world.generate()
    sent_only = await stubs.invoicing.ListInvoices(
        ipb.ListInvoicesRequest(project_id=world.project_id, statuses=[ipb.INVOICE_STATUS_SENT])
    )
    assert [i.invoice_id for i in sent_only.invoices] == [first.invoice_id]
    page1 = await stubs.invoicing.ListInvoices(
        ipb.ListInvoicesRequest(client_id=world.client_id, page_size=1)
    )
    page2 = await stubs.invoicing.ListInvoices(
        ipb.ListInvoicesRequest(client_id=world.client_id, page_size=1, page_token=page1.next_page_token)
    )
    assert {page1.invoices[0].invoice_id, page2.invoices[0].invoice_id} == {
        first.invoice_id,
        second.invoice_id,
    }
    assert page2.next_page_token == ""
