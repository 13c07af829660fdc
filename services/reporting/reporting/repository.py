"""All of reporting's SQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import PipelineProbe


class ProbeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, probe_id: uuid.UUID, emitted_at: datetime, note: str) -> None:
        await self.session.execute(
            insert(PipelineProbe)
            .values(probe_id=probe_id, emitted_at=emitted_at, note=note)
            .on_conflict_do_nothing(index_elements=["probe_id"])
        )

    async def get(self, probe_id: uuid.UUID) -> PipelineProbe | None:
        return (
            await self.session.execute(select(PipelineProbe).where(PipelineProbe.probe_id == probe_id))
        ).scalar_one_or_none()
