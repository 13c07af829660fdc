"""Each gRPC service's Prometheus endpoint, scraped before and after real traffic.

The traffic is one billing cycle through the running processes: a client,
project and member in projects, an entry in tracking, the entry arriving in
reporting through Kafka, an invoice generated and sent (so a PDF is rendered).
Then every service's metrics port must show it: calls by method and status
code with their latency, the outboxes drained, the consumer caught up, and the
invoice and PDF timings.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.faults import ts
from tests.support.infra import RunningStack
from timetracking.common.v1 import types_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.invoicing.v1 import invoicing_pb2_grpc
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.reporting.v1 import reporting_pb2 as rpb
from timetracking.reporting.v1 import reporting_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc
from tt_common.metrics import MetricNames as M

GRPC_SERVICES = {
    "projects": "timetracking.projects.v1.ProjectsService",
    "tracking": "timetracking.tracking.v1.TrackingService",
    "reporting": "timetracking.reporting.v1.ReportingService",
    "invoicing": "timetracking.invoicing.v1.InvoicingService",
}
ENTRY_SECONDS = 2 * 3600


@dataclass
class Scrape:
    """One scrape of a metrics port, parsed by prometheus_client's own parser."""

    samples: list[Sample]
    families: set[str]

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.series(name, **labels))

    def series(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]


async def scrape(running: RunningStack, service: str) -> Scrape:
    port = running.config.port(f"{service}_metrics")
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.get(f"http://127.0.0.1:{port}/metrics")
    resp.raise_for_status()
    families = list(text_string_to_metric_families(resp.text))
    return Scrape([s for f in families for s in f.samples], {f.name for f in families})


async def eventually(
    running: RunningStack, service: str, unmet: Callable[[Scrape], list[str]], within: float = 60.0
) -> Scrape:
    """Scrape `service` until `unmet(scrape)` lists nothing; fail naming what is still unmet."""
    deadline = time.monotonic() + within
    while True:
        current = await scrape(running, service)
        missing = unmet(current)
        if not missing:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{service} metrics after {within:.0f}s: " + "; ".join(missing))
        await asyncio.sleep(0.2)


@dataclass
class Traffic:
    before: dict[str, Scrape]
    project_id: str
    invoice: ipb.Invoice


@pytest.fixture(scope="module")
async def traffic(running_services: RunningStack) -> AsyncIterator[Traffic]:
    """Scrape every service, then drive one billing cycle through the gRPC APIs."""
    running = running_services
    before = {service: await scrape(running, service) for service in GRPC_SERVICES}
    cfg = running.config
    async with (
        grpc.aio.insecure_channel(cfg.grpc_target("projects")) as p,
        grpc.aio.insecure_channel(cfg.grpc_target("tracking")) as t,
        grpc.aio.insecure_channel(cfg.grpc_target("reporting")) as r,
        grpc.aio.insecure_channel(cfg.grpc_target("invoicing")) as i,
    ):
        projects = projects_pb2_grpc.ProjectsServiceStub(p)
        tracking = tracking_pb2_grpc.TrackingServiceStub(t)
        reporting = reporting_pb2_grpc.ReportingServiceStub(r)
        invoicing = invoicing_pb2_grpc.InvoicingServiceStub(i)

        client = await projects.CreateClient(
            ppb.CreateClientRequest(
                name=f"Metrics {uuid.uuid4().hex[:8]}", currency="EUR", tax_rate="19", payment_terms_days=14
            ),
            timeout=10,
        )
        project = await projects.CreateProject(
            ppb.CreateProjectRequest(
                client_id=client.client_id,
                name=f"Metrics {uuid.uuid4().hex[:8]}",
                billing_type=ppb.BILLING_TYPE_HOURLY,
                default_hourly_rate="120",
            ),
            timeout=10,
        )
        user = await projects.CreateUser(
            ppb.CreateUserRequest(
                name="Metrics", email=f"m-{uuid.uuid4().hex[:12]}@example.com", timezone="UTC"
            ),
            timeout=10,
        )
        await projects.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await projects.GetUser(ppb.GetUserRequest(user_id="not-a-uuid"), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # A past period of its own (a fresh user and project), like invoicing's tests.
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
        start = end - timedelta(days=1)
        await tracking.CreateManualEntry(
            tpb.CreateManualEntryRequest(
                actor_user_id=user.user_id,
                user_id=user.user_id,
                project_id=project.project_id,
                description="metrics",
                start_time=ts(start + timedelta(hours=1)),
                end_time=ts(start + timedelta(hours=1, seconds=ENTRY_SECONDS)),
            ),
            timeout=10,
        )

        # The entry reaches reporting through the outbox and Kafka.
        deadline = time.monotonic() + 60
        while True:
            try:
                summary = await reporting.GetProjectSummary(
                    rpb.ProjectSummaryRequest(project_id=project.project_id), timeout=10
                )
                if summary.totals.total_seconds == ENTRY_SECONDS:
                    break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            assert time.monotonic() < deadline, "the entry did not reach reporting within 60s"
            await asyncio.sleep(0.2)

        period = types_pb2.Period(start=ts(start), end=ts(end))
        invoice = await invoicing.GenerateInvoice(
            ipb.GenerateInvoiceRequest(
                actor_user_id=user.user_id,
                project_id=project.project_id,
                period=period,
                idempotency_key=str(uuid.uuid4()),
            ),
            timeout=30,
        )
        # The same period again: every entry is claimed, so a generation that fails.
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await invoicing.GenerateInvoice(
                ipb.GenerateInvoiceRequest(
                    actor_user_id=user.user_id,
                    project_id=project.project_id,
                    period=period,
                    idempotency_key=str(uuid.uuid4()),
                ),
                timeout=30,
            )
        assert empty.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        sent = await invoicing.SendInvoice(
            ipb.TransitionRequest(invoice_id=invoice.invoice_id, expected_version=invoice.version), timeout=60
        )
        assert sent.status == ipb.INVOICE_STATUS_SENT
    yield Traffic(before, project.project_id, sent)


def moved_calls(
    before: Scrape, after: Scrape, service: str, expected: dict[tuple[str, str], int]
) -> list[str]:
    """What is missing from `expected`: at least n more calls of (method, code), each timed."""
    full = GRPC_SERVICES[service]
    unmet = []
    for (method, code), n in expected.items():
        handled = {"grpc_service": full, "grpc_method": method, "grpc_code": code}
        moved = after.value(M.GRPC_SERVER_HANDLED, **handled) - before.value(M.GRPC_SERVER_HANDLED, **handled)
        if moved < n:
            unmet.append(f"{method} {code}: +{moved:g}, wanted +{n}")
        timed = {"grpc_service": full, "grpc_method": method}
        count = f"{M.GRPC_SERVER_HANDLING_SECONDS}_count"
        if after.value(count, **timed) - before.value(count, **timed) < n:
            unmet.append(f"{method}: latency not observed")
    return unmet


def outbox_drained(before: Scrape, after: Scrape) -> list[str]:
    unmet = []
    if after.value(M.OUTBOX_PUBLISHED) <= before.value(M.OUTBOX_PUBLISHED):
        unmet.append("no outbox event published")
    for gauge in (M.OUTBOX_PENDING, M.OUTBOX_OLDEST_PENDING_AGE):
        if not after.series(gauge):
            unmet.append(f"{gauge} missing")
        elif after.value(gauge) != 0:
            unmet.append(f"{gauge} = {after.value(gauge):g}, not back to 0")
    return unmet


async def test_projects_counts_calls_by_method_and_final_code(
    running_services: RunningStack, traffic: Traffic
) -> None:
    before = traffic.before["projects"]
    expected = {("CreateProject", "OK"): 1, ("CreateUser", "OK"): 1, ("GetUser", "INVALID_ARGUMENT"): 1}
    await eventually(
        running_services,
        "projects",
        lambda after: moved_calls(before, after, "projects", expected) + outbox_drained(before, after),
    )


async def test_tracking_counts_calls_and_drains_its_outbox(
    running_services: RunningStack, traffic: Traffic
) -> None:
    before = traffic.before["tracking"]
    # Invoicing claimed the entry through tracking's API.
    expected = {("CreateManualEntry", "OK"): 1, ("ClaimUninvoicedEntries", "OK"): 1}
    await eventually(
        running_services,
        "tracking",
        lambda after: moved_calls(before, after, "tracking", expected) + outbox_drained(before, after),
    )


async def test_reporting_shows_consumption_and_a_caught_up_consumer(
    running_services: RunningStack, traffic: Traffic
) -> None:
    before = traffic.before["reporting"]
    entries_topic = running_services.env["REPORTING_TOPIC_ENTRIES"]

    def unmet(after: Scrape) -> list[str]:
        missing = moved_calls(before, after, "reporting", {("GetProjectSummary", "OK"): 1})
        consumed = after.value(M.KAFKA_CONSUMED, topic=entries_topic)
        if consumed <= before.value(M.KAFKA_CONSUMED, topic=entries_topic):
            missing.append("no entry event consumed")
        lag = after.series(M.KAFKA_CONSUMER_LAG, topic=entries_topic)
        if not lag:
            missing.append(f"{M.KAFKA_CONSUMER_LAG} missing for {entries_topic}")
        elif any(s.value != 0 for s in lag):
            missing.append(f"consumer not caught up: {[(s.labels['partition'], s.value) for s in lag]}")
        # Dead letters are counted by topic and reason; poisoning the session's shared
        # topics would disturb other tests, so here the family only has to be exposed.
        if M.KAFKA_DEAD_LETTERED.removesuffix("_total") not in after.families:
            missing.append(f"{M.KAFKA_DEAD_LETTERED} not exposed")
        return missing

    await eventually(running_services, "reporting", unmet)


async def test_invoicing_times_generation_and_pdf_rendering(
    running_services: RunningStack, traffic: Traffic
) -> None:
    before = traffic.before["invoicing"]
    expected = {
        ("GenerateInvoice", "OK"): 1,
        ("GenerateInvoice", "FAILED_PRECONDITION"): 1,
        ("SendInvoice", "OK"): 1,
    }

    def unmet(after: Scrape) -> list[str]:
        missing = moved_calls(before, after, "invoicing", expected) + outbox_drained(before, after)
        for name, labels in (
            (f"{M.INVOICE_GENERATION_SECONDS}_count", {"outcome": "ok"}),
            (f"{M.INVOICE_GENERATION_SECONDS}_count", {"outcome": "error"}),
            (f"{M.INVOICE_PDF_RENDER_SECONDS}_count", {"outcome": "ok"}),
            (f"{M.INVOICE_PDF_BYTES}_count", {}),
        ):
            if after.value(name, **labels) <= before.value(name, **labels):
                missing.append(f"{name}{labels or ''} did not move")
        pdf_bytes = after.value(f"{M.INVOICE_PDF_BYTES}_sum") - before.value(f"{M.INVOICE_PDF_BYTES}_sum")
        if pdf_bytes < 1000:
            missing.append(f"{M.INVOICE_PDF_BYTES}_sum grew by {pdf_bytes:g}, not a PDF")
        return missing

    await eventually(running_services, "invoicing", unmet)
    assert traffic.invoice.number  # sent: numbered, and its PDF rendered


async def test_gateway_counts_requests_by_route_template_and_status(running_services: RunningStack) -> None:
    before = await scrape(running_services, "gateway")
    entry_route = "/v1/time-entries/{entry_id}"
    async with httpx.AsyncClient(base_url=running_services.gateway_url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        for _ in range(3):
            # Unauthenticated: 401, counted under the route's template, never the raw id.
            assert (await http.get(f"/v1/time-entries/{uuid.uuid4()}")).status_code == 401
        assert (await http.get("/no/such/path")).status_code == 404

    def unmet(after: Scrape) -> list[str]:
        wanted = [
            (M.HTTP_SERVER_REQUESTS, {"method": "GET", "route": "/healthz", "code": "200"}, 1),
            (M.HTTP_SERVER_REQUESTS, {"method": "GET", "route": entry_route, "code": "401"}, 3),
            (M.HTTP_SERVER_REQUESTS, {"method": "GET", "route": "unmatched", "code": "404"}, 1),
            (M.HTTP_SERVER_REQUEST_SECONDS + "_count", {"method": "GET", "route": entry_route}, 3),
        ]
        return [
            f"{name}{labels} moved less than {n}"
            for name, labels, n in wanted
            if after.value(name, **labels) - before.value(name, **labels) < n
        ]

    after = await eventually(running_services, "gateway", unmet, within=20)
    assert not [
        s
        for s in after.series(M.HTTP_SERVER_REQUESTS)
        if "/v1/time-entries/" in s.labels["route"] and "{" not in s.labels["route"]
    ], "raw ids must never become labels"
