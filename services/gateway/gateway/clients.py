"""gRPC clients of the gateway: one channel per service, a deadline on every call."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from timetracking.reporting.v1 import reporting_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2_grpc
from tt_common.grpc_client import channel

from .config import GatewaySettings


@dataclass
class ServiceClients:
    channels: dict[str, grpc.aio.Channel]
    tracking: tracking_pb2_grpc.TrackingServiceStub
    reporting: reporting_pb2_grpc.ReportingServiceStub
    deadline_s: float

    @classmethod
    def connect(cls, settings: GatewaySettings) -> ServiceClients:
        channels = {
            "projects": channel(settings.projects_target),
            "tracking": channel(settings.tracking_target),
            "reporting": channel(settings.reporting_target),
            "invoicing": channel(settings.invoicing_target),
        }
        return cls(
            channels=channels,
            tracking=tracking_pb2_grpc.TrackingServiceStub(channels["tracking"]),
            reporting=reporting_pb2_grpc.ReportingServiceStub(channels["reporting"]),
            deadline_s=settings.grpc_deadline_s,
        )

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close(grace=None)
