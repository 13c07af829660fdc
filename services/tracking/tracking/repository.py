"""All of tracking's SQL."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tt_common.outbox import enqueue

from .models import outbox


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_event(self, *, topic: str, key: str, payload: bytes, event_id: uuid.UUID) -> None:
        await enqueue(self.session, outbox, topic=topic, key=key, payload=payload, event_id=event_id)
