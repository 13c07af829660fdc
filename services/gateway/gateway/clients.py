"""gRPC clients of the gateway: one channel per service, a deadline on every call.

`Rpc.read` retries a call that failed with UNAVAILABLE (the service was not
reached, so nothing happened) within the same overall deadline: safe for
reads. Writes go through `Rpc.write`, never retried here: a client retries
with its Idempotency-Key instead, which is what makes a write safe to repeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from timetracking.invoicing.v1 import invoicing_pb2_grpc
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.reporting.v1 import reporting_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2_grpc
from tt_common.grpc_client import channel, traced_call

from .config import GatewaySettings

R = TypeVar("R")

READ_ATTEMPTS = 3
RETRY_BACKOFF_S = (0.05, 0.2)


@dataclass
class ServiceClients:
    channels: dict[str, grpc.aio.Channel]
    projects: projects_pb2_grpc.ProjectsServiceStub
    tracking: tracking_pb2_grpc.TrackingServiceStub
    reporting: reporting_pb2_grpc.ReportingServiceStub
    invoicing: invoicing_pb2_grpc.InvoicingServiceStub
    deadline_s: float
    report_deadline_s: float
    invoice_deadline_s: float

    @classmethod
    def connect(cls, settings: GatewaySettings) -> ServiceClients:
        channels = {
            # Trace context goes into each call's metadata (traced_call), not through the
            # interceptor machinery: a twentieth of the gateway's CPU per request.
            "projects": channel(settings.projects_target, interceptor=False),
            "tracking": channel(settings.tracking_target, interceptor=False),
            "reporting": channel(settings.reporting_target, interceptor=False),
            "invoicing": channel(settings.invoicing_target, interceptor=False),
        }
        return cls(
            channels=channels,
            projects=projects_pb2_grpc.ProjectsServiceStub(channels["projects"]),
            tracking=tracking_pb2_grpc.TrackingServiceStub(channels["tracking"]),
            reporting=reporting_pb2_grpc.ReportingServiceStub(channels["reporting"]),
            invoicing=invoicing_pb2_grpc.InvoicingServiceStub(channels["invoicing"]),
            deadline_s=settings.grpc_deadline_s,
            report_deadline_s=settings.report_deadline_s,
            invoice_deadline_s=settings.invoice_deadline_s,
        )

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close(grace=None)

    async def read(
        self, method: Callable[..., Awaitable[R]], request: Any, *, deadline_s: float | None = None
    ) -> R:
        """A read: deadline on the whole, retried on UNAVAILABLE while time remains."""
        budget = deadline_s or self.deadline_s
        until = time.monotonic() + budget
        for attempt in range(READ_ATTEMPTS):
            remaining = until - time.monotonic()
            try:
                return await traced_call(method, request, deadline_s=max(remaining, 0.01))
            except grpc.aio.AioRpcError as exc:
                last = attempt == READ_ATTEMPTS - 1
                if exc.code() != grpc.StatusCode.UNAVAILABLE or last:
                    raise
                pause = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                if until - time.monotonic() <= pause:
                    raise
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def write(
        self, method: Callable[..., Awaitable[R]], request: Any, *, deadline_s: float | None = None
    ) -> R:
        """A write: one attempt with a deadline; failures surface as problem+json."""
        return await traced_call(method, request, deadline_s=deadline_s or self.deadline_s)
