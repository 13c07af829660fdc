"""Invoicing's own metrics (names in tt_common.metrics.MetricNames)."""

from __future__ import annotations

from prometheus_client import Histogram

from tt_common.metrics import MetricNames

# A claim over gRPC plus a few transactions: tens of ms, seconds for 10,000 entries.
GENERATION_SECONDS = Histogram(
    MetricNames.INVOICE_GENERATION_SECONDS,
    "GenerateInvoice end to end (validation excluded), by outcome ok/error",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
# WeasyPrint in a worker process: under a second usually; the first render also starts the worker.
PDF_RENDER_SECONDS = Histogram(
    MetricNames.INVOICE_PDF_RENDER_SECONDS,
    "Rendering one invoice PDF in the worker pool, by outcome ok/error",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PDF_BYTES = Histogram(
    MetricNames.INVOICE_PDF_BYTES,
    "Size of rendered invoice PDFs",
    buckets=(10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000),
)
