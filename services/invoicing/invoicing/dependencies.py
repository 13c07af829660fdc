"""The services invoicing calls: projects (project, client, task names) and tracking (claims)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.common.v1 import types_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc
from tt_common.errors import Unavailable
from tt_common.grpc_calls import call
from tt_common.grpc_client import channel
from tt_common.logging import get_logger

from .config import InvoicingSettings

log = get_logger(__name__)


def _period(start: datetime, end: datetime) -> types_pb2.Period:
    a, b = Timestamp(), Timestamp()
    a.FromDatetime(start)
    b.FromDatetime(end)
    return types_pb2.Period(start=a, end=b)


class Dependencies:
    def __init__(self, settings: InvoicingSettings) -> None:
        self._channels = [channel(settings.projects_target), channel(settings.tracking_target)]
        self.projects = projects_pb2_grpc.ProjectsServiceStub(self._channels[0])
        self.tracking = tracking_pb2_grpc.TrackingServiceStub(self._channels[1])
        self.deadline_s = settings.dependency_deadline_s
        self.claim_attempts = settings.claim_attempts
        self.claim_deadline_s = settings.claim_deadline_s

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close(grace=None)

    async def project(self, project_id: uuid.UUID) -> ppb.Project:
        return await call(
            self.projects.GetProject,
            ppb.GetProjectRequest(project_id=str(project_id)),
            dependency="projects",
            deadline_s=self.deadline_s,
        )

    async def client(self, client_id: str) -> ppb.Client:
        return await call(
            self.projects.GetClient,
            ppb.GetClientRequest(client_id=client_id),
            dependency="projects",
            deadline_s=self.deadline_s,
        )

    async def task_names(self, project_id: uuid.UUID) -> dict[uuid.UUID, str]:
        names: dict[uuid.UUID, str] = {}
        token = ""
        while True:
            page = await call(
                self.projects.ListTasks,
                ppb.ListTasksRequest(project_id=str(project_id), page_size=200, page_token=token),
                dependency="projects",
                deadline_s=self.deadline_s,
            )
            names.update({uuid.UUID(t.task_id): t.name for t in page.tasks})
            token = page.next_page_token
            if not token:
                return names

    async def claim(
        self,
        invoice_id: uuid.UUID,
        project_id: uuid.UUID,
        start: datetime,
        end: datetime,
        actor: uuid.UUID | None,
    ) -> tpb.ClaimUninvoicedEntriesResponse:
        """Claim with retries: safe, because tracking's claim is idempotent per invoice id."""
        request = tpb.ClaimUninvoicedEntriesRequest(
            actor_user_id=str(actor) if actor else "",
            invoice_id=str(invoice_id),
            project_id=str(project_id),
            period=_period(start, end),
        )
        return await self._retrying(self.tracking.ClaimUninvoicedEntries, request)

    async def release(self, invoice_id: uuid.UUID, actor: uuid.UUID | None) -> tpb.ReleaseEntriesResponse:
        request = tpb.ReleaseEntriesRequest(
            actor_user_id=str(actor) if actor else "", invoice_id=str(invoice_id)
        )
        return await self._retrying(self.tracking.ReleaseEntries, request)

    async def _retrying(self, method: Any, request: Any) -> Any:
        delay = 0.2
        for attempt in range(1, self.claim_attempts + 1):
            try:
                return await call(method, request, dependency="tracking", deadline_s=self.claim_deadline_s)
            except Unavailable:
                if attempt == self.claim_attempts:
                    raise
                log.warning("tracking unavailable; retrying", attempt=attempt, delay_s=delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
