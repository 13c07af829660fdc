"""Idempotent consumers: remember which event ids were applied.

Each consuming service declares `processed_events_table(metadata)` in its own
database. `first_delivery` claims an event id inside the consumer's
transaction; a replay or duplicate finds it taken and becomes a no-op.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Column, DateTime, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("topic", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def first_delivery(session: AsyncSession, table: Table, event_id: uuid.UUID, topic: str) -> bool:
    """True the first time `event_id` is seen (in this transaction's view), False after."""
    result = await session.execute(
        insert(table)
        .values(event_id=event_id, topic=topic)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.event_id)
    )
    return result.first() is not None
