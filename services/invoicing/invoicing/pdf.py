"""Invoice PDFs: a Jinja2 template rendered by WeasyPrint in a worker process.

WeasyPrint is CPU-bound and holds the GIL for seconds on long invoices, so it
never runs on the event loop: `PdfRenderer` hands the work to a process pool.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from babel.numbers import format_currency, format_decimal

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def money(amount: Decimal, currency: str) -> str:
    return format_currency(amount, currency, locale="en_GB", currency_digits=True)


def render_html(context: dict[str, Any]) -> str:
    return _environment().get_template("invoice.html").render(**context)


@contextmanager
def no_full_collections() -> Iterator[None]:
    """No full (oldest-generation) garbage collection while inside; one at the end.

    A long invoice builds hundreds of thousands of boxes and styles that all stay
    alive until the PDF is written, so every full collection CPython starts meanwhile
    walks them all and frees nothing: a sixth of a 50-page render's CPU. Young
    collections still run; the one full collection at the end frees the render's
    cycles, so memory does not grow from one invoice to the next.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.collect()


def render_pdf(context: dict[str, Any]) -> bytes:
    """Runs in a worker process: HTML from the template, then the PDF."""
    from weasyprint import HTML

    with no_full_collections():
        return HTML(string=render_html(context), base_url=str(TEMPLATES)).write_pdf()


def invoice_context(
    invoice: Any, lines: list[Any], *, client: Any, project_name: str, seller: dict[str, str]
) -> dict:
    """Plain, picklable data for the template (formatted for people)."""
    cur = invoice.currency

    def day(d: date | None) -> str:
        return d.isoformat() if d else ""

    start, end = invoice.period_start.date(), invoice.period_end.date()
    return {
        "seller": seller,
        "client": {"name": client.name, "billing_address": client.billing_address},
        "project": {"name": project_name},
        "invoice": {
            "number": invoice.number,
            "invoice_date": day(invoice.invoice_date),
            "due_date": day(invoice.due_date),
            "payment_terms_days": invoice.payment_terms_days,
            "period_label": f"{start.isoformat()} to {end.isoformat()} (exclusive)",
            "subtotal": money(invoice.subtotal, cur),
            "tax_rate": format_decimal(invoice.tax_rate, locale="en_GB"),
            "tax": money(invoice.tax, cur),
            "total": money(invoice.total, cur),
        },
        "lines": [
            {
                "description": line.description,
                "entry_count": len(line.entry_ids),
                "hours": format_decimal(
                    (Decimal(line.seconds) / 3600).quantize(Decimal("0.01")),
                    locale="en_GB",
                    format="#,##0.00",
                ),
                "rate": money(line.hourly_rate, cur) if line.hourly_rate is not None else "fixed",
                "amount": money(line.amount, cur),
            }
            for line in lines
        ],
    }


class PdfRenderer:
    """A pool of rendering processes, started with "spawn": forking a process that
    runs gRPC's threads is unsafe (the child can crash or hang)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"))

    async def render(self, context: dict[str, Any]) -> bytes:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, render_pdf, context)
        except BrokenProcessPool:
            # A worker died (out of memory, killed): replace the pool; the caller retries later.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
