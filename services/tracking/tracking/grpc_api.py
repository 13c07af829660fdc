"""Tracking's gRPC edge: each call opens one transaction and commits once."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from tt_common.db import transaction

from . import service
from .config import TrackingSettings
from .repository import OutboxRepository


class TrackingApi(tracking_pb2_grpc.TrackingServiceServicer):
    def __init__(self, settings: TrackingSettings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions

    async def EmitPipelineProbe(
        self, request: tracking_pb2.EmitPipelineProbeRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.EmitPipelineProbeResponse:
        async with transaction(self.sessions) as session:
            probe = await service.emit_pipeline_probe(
                OutboxRepository(session), topic=self.settings.topic_system, note=request.note
            )
        response = tracking_pb2.EmitPipelineProbeResponse(probe_id=str(probe.probe_id))
        response.emitted_at.FromDatetime(probe.emitted_at)
        return response
