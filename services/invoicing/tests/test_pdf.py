"""The invoice PDF as a reader sees it: every page numbered and headed, totals at the end."""

from __future__ import annotations

import gc
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from pypdf import PdfReader

from invoicing import pdf
from invoicing.pdf import invoice_context, render_pdf


def context(n_lines: int) -> dict:
    lines = [
        SimpleNamespace(
            description=f"Task {i}: feature work",
            entry_ids=["e"] * (1 + i % 3),
            seconds=5400,
            hourly_rate=Decimal("120.50"),
            amount=Decimal("180.75"),
        )
        for i in range(n_lines)
    ]
    invoice = SimpleNamespace(
        currency="EUR",
        number="INV-2026-000042",
        invoice_date=date(2026, 3, 1),
        due_date=date(2026, 3, 15),
        payment_terms_days=14,
        period_start=datetime(2026, 2, 1, tzinfo=UTC),
        period_end=datetime(2026, 3, 1, tzinfo=UTC),
        subtotal=Decimal("180.75") * n_lines,
        tax_rate=Decimal("19"),
        tax=(Decimal("180.75") * n_lines * Decimal("0.19")).quantize(Decimal("0.01")),
        total=(Decimal("180.75") * n_lines * Decimal("1.19")).quantize(Decimal("0.01")),
    )
    return invoice_context(
        invoice,
        lines,
        client=SimpleNamespace(name="Acme GmbH", billing_address="Street 1\n10115 Berlin"),
        project_name="Website",
        seller={"name": "Agency Ltd", "address": "Road 2\nLondon", "tax_id": "GB123", "bank_details": ""},
    )


def test_a_long_invoice_numbers_and_heads_every_page_and_ends_with_the_totals() -> None:
    pages = PdfReader(io.BytesIO(render_pdf(context(60)))).pages
    texts = [page.extract_text() for page in pages]
    assert len(texts) >= 3
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {len(texts)}" in text
        assert "INV-2026-000042" in text and "Agency Ltd" in text  # the running header
        if "feature work" in text:
            assert "Description" in text and "Amount" in text  # the table's head, repeated
    assert "Bill to".upper() in texts[0].upper() and "Acme GmbH" in texts[0]
    every = "\n".join(texts)
    assert all(f"Task {i}: feature work" in every for i in range(60))
    assert "€180.75" in every and "1.50" in every  # amount and hours, formatted
    assert "Total due" in texts[-1] and "€12,905.55" in texts[-1]  # 60 x 180.75 x 1.19


def test_rendering_leaves_the_process_garbage_collector_as_it_found_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = gc.get_threshold()
    render_pdf(context(1))
    assert gc.get_threshold() == before

    def broken(_: dict) -> str:
        raise RuntimeError("template error")

    monkeypatch.setattr(pdf, "render_html", broken)
    with pytest.raises(RuntimeError):
        render_pdf(context(1))
    assert gc.get_threshold() == before
