"""Reporting's gRPC edge."""

from __future__ import annotations

import uuid

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from tt_common.errors import InvalidArgument, NotFound

from .repository import ProbeRepository


class ReportingApi(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def GetPipelineProbe(
        self, request: reporting_pb2.GetPipelineProbeRequest, context: grpc.aio.ServicerContext
    ) -> reporting_pb2.PipelineProbeStatus:
        try:
            probe_id = uuid.UUID(request.probe_id)
        except ValueError:
            raise InvalidArgument.field("probe_id", "must be a UUID") from None
        async with self.sessions() as session:
            probe = await ProbeRepository(session).get(probe_id)
        if probe is None:
            raise NotFound(f"probe {probe_id} has not arrived (yet)")
        status = reporting_pb2.PipelineProbeStatus(
            probe_id=str(probe.probe_id),
            lag_seconds=(probe.received_at - probe.emitted_at).total_seconds(),
            note=probe.note,
        )
        status.emitted_at.FromDatetime(probe.emitted_at)
        status.received_at.FromDatetime(probe.received_at)
        return status
