"""Invoice generation for many entries, and PDF rendering for long invoices.

    .venv/bin/python bench/invoice_generation.py                 # own stack (test profile), 1k/10k/100k
    .venv/bin/python bench/invoice_generation.py --entries 1000  # fewer sizes
    .venv/bin/python bench/invoice_generation.py --existing dev  # against `make up`'s stack

Generation: the entries are bulk-loaded into tracking's database (setup, not
measured), then one GenerateInvoice over gRPC is timed end to end: tracking's
atomic claim, the lines, the totals and the saved draft. Ceiling, same run: the
claim's UPDATE alone, straight at PostgreSQL, for the same number of rows.
PDF: the real template rendered by WeasyPrint in this process, for invoices of
1, 10 and 50 pages (after one warm-up render of a one-page invoice). Ceiling,
same run: a minimal WeasyPrint document of the same page count (plain tables
with the same number of rows, no stylesheet).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import grpc
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import (  # noqa: E402
    cpu_seconds,
    machine_info,
    ratio,
    service_pids,
    start_own_stack,
    write_result,
)

from timetracking.common.v1 import types_pb2  # noqa: E402
from timetracking.invoicing.v1 import invoicing_pb2 as ipb  # noqa: E402
from timetracking.invoicing.v1 import invoicing_pb2_grpc  # noqa: E402
from timetracking.projects.v1 import projects_pb2 as ppb  # noqa: E402
from timetracking.projects.v1 import projects_pb2_grpc  # noqa: E402
from ttlocal.config import StackConfig  # noqa: E402

SLOT = timedelta(minutes=15)
SLOTS_PER_USER = 30_000  # ~312 days of back-to-back quarter hours: within one invoice period


async def make_project(
    projects: projects_pb2_grpc.ProjectsServiceStub, users: int
) -> tuple[str, list[str], list[str]]:
    client = await projects.CreateClient(
        ppb.CreateClientRequest(name=f"Bench {uuid.uuid4().hex[:6]}", currency="EUR", tax_rate="19")
    )
    project = await projects.CreateProject(
        ppb.CreateProjectRequest(client_id=client.client_id, name="Bench", default_hourly_rate="100")
    )
    user_ids = []
    for _ in range(users):
        user = await projects.CreateUser(
            ppb.CreateUserRequest(name="Bench", email=f"bench-{uuid.uuid4().hex[:10]}@example.com")
        )
        await projects.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
        )
        user_ids.append(user.user_id)
    task_ids = []
    for i in range(10):
        task = await projects.CreateTask(
            ppb.CreateTaskRequest(project_id=project.project_id, name=f"Task {i}")
        )
        task_ids.append(task.task_id)
    return project.project_id, user_ids, task_ids


def load_entries(
    tracking_db: str, project_id: str, users: list[str], tasks: list[str], n: int, start: datetime
) -> None:
    """Bulk-load n stopped, billable, uninvoiced entries (COPY; the setup, not the measurement)."""
    with psycopg.connect(tracking_db) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY time_entries (entry_id, user_id, project_id, task_id, description, start_time, end_time,"
            " duration_seconds, is_billable, hourly_rate, currency) FROM STDIN"
        ) as copy:
            for i in range(n):
                user, slot = users[i // SLOTS_PER_USER], i % SLOTS_PER_USER
                begin = start + slot * SLOT
                seconds = 600 + (i % 300)  # odd durations: 10 to 15 minutes
                copy.write_row(
                    (
                        uuid.uuid4(),
                        user,
                        project_id,
                        tasks[i % len(tasks)],
                        "bench",
                        begin,
                        begin + timedelta(seconds=seconds),
                        seconds,
                        True,
                        Decimal("100.00"),
                        "EUR",
                    )
                )
        conn.commit()


CLAIM_UPDATE = (
    "UPDATE time_entries SET invoice_id = %s, version = version + 1 WHERE project_id = %s"
    " AND invoice_id IS NULL AND is_billable AND end_time IS NOT NULL RETURNING entry_id"
)


def ceiling_claim(tracking_db: str, project_id: str) -> tuple[float, float]:
    """The claim's core UPDATE straight at PostgreSQL, rolled back: the floor under GenerateInvoice.

    Returns the wall time, and the server's own execution time of the same UPDATE by
    EXPLAIN ANALYZE (TIMING OFF), which other load on the machine distorts less.
    """
    with psycopg.connect(tracking_db) as conn:
        t0 = time.perf_counter()
        conn.execute(CLAIM_UPDATE, (uuid.uuid4(), project_id)).fetchall()
        elapsed = time.perf_counter() - t0
        conn.rollback()
        plan = conn.execute(
            "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + CLAIM_UPDATE, (uuid.uuid4(), project_id)
        ).fetchone()
        conn.rollback()
    assert plan is not None
    return elapsed, plan[0][0]["Execution Time"] / 1000


async def outbox_drained(tracking_db: str, timeout_s: float = 600) -> float:
    """Wait until tracking's relay has published every event; the perf_counter() instant it had."""
    deadline = time.perf_counter() + timeout_s
    with psycopg.connect(tracking_db, autocommit=True) as conn:
        while time.perf_counter() < deadline:
            row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
            if row is not None and row[0] == 0:
                return time.perf_counter()
            await asyncio.sleep(0.05)
    raise TimeoutError("tracking's outbox was not drained")


async def bench_generation(cfg: StackConfig, tracking_db: str, sizes: list[int]) -> list[dict]:
    results = []
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    async with (
        grpc.aio.insecure_channel(cfg.grpc_target("projects")) as pch,
        grpc.aio.insecure_channel(cfg.grpc_target("invoicing"), options=options) as ich,
    ):
        projects = projects_pb2_grpc.ProjectsServiceStub(pch)
        invoicing = invoicing_pb2_grpc.InvoicingServiceStub(ich)
        for n in sizes:
            users = -(-n // SLOTS_PER_USER)
            project_id, user_ids, task_ids = await make_project(projects, users)
            start = datetime(date.today().year - 1, 1, 1, tzinfo=UTC)
            load_entries(tracking_db, project_id, user_ids, task_ids, n, start)
            ceiling, ceiling_exec = ceiling_claim(tracking_db, project_id)
            period = types_pb2.Period()
            period.start.FromDatetime(start)
            period.end.FromDatetime(start + timedelta(days=366))
            await outbox_drained(tracking_db)  # earlier sizes' events out of the way
            pids = service_pids(cfg, ["tracking", "invoicing"])
            cpu0 = {name: cpu_seconds([pid]) for name, pid in pids.items()}
            t0 = time.perf_counter()
            invoice = await invoicing.GenerateInvoice(
                ipb.GenerateInvoiceRequest(
                    project_id=project_id, period=period, idempotency_key=str(uuid.uuid4())
                ),
                timeout=300,
            )
            elapsed = time.perf_counter() - t0
            cpu1 = {name: cpu_seconds([pid]) for name, pid in pids.items()}
            # The claim's events leave through tracking's relay after the call: its CPU counts too.
            drained = await outbox_drained(tracking_db) - t0
            cpu_relay = cpu_seconds([pids["tracking"]]) - cpu1["tracking"]
            billed = sum(len(line.entry_ids) for line in invoice.lines)
            assert billed == n, f"billed {billed} of {n}"
            results.append(
                {
                    "entries": n,
                    "generate_s": round(elapsed, 3),
                    "ceiling_claim_update_s": round(ceiling, 3),
                    "ceiling_claim_update_exec_s": round(ceiling_exec, 3),
                    # Process CPU (user + system), least distorted by other load on the machine.
                    "cpu_tracking_s": round(cpu1["tracking"] - cpu0["tracking"], 2),
                    "cpu_invoicing_s": round(cpu1["invoicing"] - cpu0["invoicing"], 2),
                    "cpu_tracking_relay_after_s": round(cpu_relay, 2),
                    "events_published_after_s": round(drained, 2),
                    "ratio_to_ceiling": round(ratio(elapsed, ceiling, "lower") or 0, 1),
                    "lines": len(invoice.lines),
                    "total": invoice.total,
                }
            )
            print(
                f"  {n:>7} entries: GenerateInvoice {elapsed:6.2f} s  (claim UPDATE alone {ceiling:5.2f} s,"
                f" x{elapsed / ceiling:.1f}; its execution {ceiling_exec:5.2f} s),"
                f" {len(invoice.lines)} lines, total {invoice.total} EUR\n"
                f"           CPU during the call: tracking {cpu1['tracking'] - cpu0['tracking']:.2f} s,"
                f" invoicing {cpu1['invoicing'] - cpu0['invoicing']:.2f} s; then tracking's relay"
                f" {cpu_relay:.2f} s until every event was published ({drained:.1f} s after the call began)"
            )
    return results


def invoice_pdf_context(n_lines: int) -> dict:
    """The real template's context for an invoice of `n_lines` lines."""
    from invoicing.pdf import invoice_context

    lines = [
        SimpleNamespace(
            description=f"Task {i}: feature work",
            entry_ids=[1] * 3,
            seconds=3600 + i,
            hourly_rate=Decimal("120.50"),
            amount=Decimal("120.53"),
        )
        for i in range(n_lines)
    ]
    invoice = SimpleNamespace(
        currency="EUR",
        number="INV-2026-000001",
        invoice_date=date.today(),
        due_date=date.today(),
        payment_terms_days=14,
        period_start=datetime(2026, 1, 1, tzinfo=UTC),
        period_end=datetime(2026, 2, 1, tzinfo=UTC),
        subtotal=Decimal("1000"),
        tax_rate=Decimal("19"),
        tax=Decimal("190"),
        total=Decimal("1190"),
    )
    return invoice_context(
        invoice,
        lines,
        client=SimpleNamespace(name="Acme", billing_address="Street 1"),
        project_name="Bench",
        seller={"name": "Agency", "address": "Road 2", "tax_id": "", "bank_details": ""},
    )


def bench_pdf(pages: list[int]) -> list[dict]:
    """The real template for invoices of about `pages` pages, each beside a minimal document."""
    from pypdf import PdfReader

    from invoicing.pdf import render_pdf

    # Warm-up, once: fonts, the template and WeasyPrint's caches (a one-page invoice suffices).
    render_pdf(invoice_pdf_context(11))
    minimal_pdf(1, 11)
    results = []
    for target in pages:
        n_lines = max(1, target * 22 - 10)  # about 22 lines a page after the first page's header blocks
        ctx = invoice_pdf_context(n_lines)
        t0, cpu0 = time.perf_counter(), time.process_time()
        pdf = render_pdf(ctx)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        got = len(PdfReader(io.BytesIO(pdf)).pages)
        ceiling_s, ceiling_pages = minimal_pdf(got, n_lines)
        results.append(
            {
                "pages": got,
                "lines": n_lines,
                "render_s": round(elapsed, 3),
                "render_cpu_s": round(cpu, 3),  # this process's CPU: what other load barely moves
                "bytes": len(pdf),
                "ceiling_minimal_pdf_s": round(ceiling_s, 3),
                "ceiling_pages": ceiling_pages,
            }
        )
        print(
            f"  {got:>3} pages ({n_lines} lines): {elapsed:5.2f} s (CPU {cpu:5.2f} s), {len(pdf) // 1024} KiB"
            f"  (minimal WeasyPrint document of {ceiling_pages} pages: {ceiling_s:5.2f} s)"
        )
    return results


def minimal_pdf(pages: int, rows: int) -> tuple[float, int]:
    """The PDF ceiling: WeasyPrint alone, `pages` pages of plain tables holding `rows` rows in all,
    under the same garbage-collector setting as the product's render (what is left is the template's)."""
    from pypdf import PdfReader
    from weasyprint import HTML

    from invoicing.pdf import no_full_collections

    per_page = -(-rows // pages)
    body = "".join(
        '<table style="page-break-after: always">'
        + "".join(
            f"<tr><td>Task {i}: feature work</td><td>1:00</td><td>120.50</td><td>120.53</td></tr>"
            for i in range(p * per_page, min(rows, (p + 1) * per_page))
        )
        + "</table>"
        for p in range(pages)
    )
    t0 = time.perf_counter()
    with no_full_collections():
        pdf = HTML(string=f"<html><body>{body}</body></html>").write_pdf()
    elapsed = time.perf_counter() - t0
    return elapsed, len(PdfReader(io.BytesIO(pdf)).pages)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--pages", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--existing", metavar="PROFILE", choices=["dev", "test"])
    args = parser.parse_args()
    cfg = StackConfig.load(args.existing or "test")
    result: dict = {"benchmark": "invoicing"}
    print("PDF rendering (WeasyPrint, in process):")
    result["pdf"] = bench_pdf(args.pages)
    if args.entries:
        with ExitStack() as cleanup:
            tracking_db = cfg.database_url("tracking")
            if not args.existing:
                tracking_db = start_own_stack(cfg, cleanup).databases["tracking"]
            tracking_db = tracking_db.replace("postgresql+psycopg", "postgresql")
            print("Invoice generation (GenerateInvoice over gRPC, claim included):")
            result["generation"] = asyncio.run(bench_generation(cfg, tracking_db, args.entries))
            result["machine"] = machine_info(tracking_db, cfg)
    else:
        result["machine"] = machine_info(cfg=cfg)
    print(f"  written to {write_result('invoicing', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
