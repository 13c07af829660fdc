"""Reporting's write-side SQL: pipeline probes and the read model's upserts.

Report queries live in reports_repository.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import (
    PipelineProbe,
    ReportClient,
    ReportEntry,
    ReportProject,
    ReportProjectMember,
    ReportTask,
    ReportUser,
)

_TABLES: dict[str, Any] = {
    "entries": ReportEntry,
    "users": ReportUser,
    "clients": ReportClient,
    "projects": ReportProject,
    "tasks": ReportTask,
    "project_members": ReportProjectMember,
}

# Memberships are the one copy without a usable version: projects deletes the
# row on removal, so a re-added member starts again at version 1. Their events
# are keyed by project id, so Kafka keeps them in order and they apply in
# stream order (a replay re-applies the same sequence and ends in the same state).
STREAM_ORDERED = frozenset({"project_members"})


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


class ReadModelRepository:
    """Upserts of event snapshots: the last version wins; older or equal versions change nothing."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert_many(self, table_name: str, rows: list[dict[str, Any]]) -> None:
        """Apply snapshots (at most one per row) with INSERT ... ON CONFLICT DO UPDATE,
        sent as one executemany (psycopg batches it into multi-row statements)."""
        if not rows:
            return
        table: Table = _TABLES[table_name].__table__
        keys = [c.name for c in table.primary_key.columns]
        # clock_timestamp, not now(): now() is the batch transaction's start, which
        # would hide the time the batch spent being applied from the lag figures.
        stmt = insert(table).values(applied_at=func.clock_timestamp())
        update = {name: stmt.excluded[name] for name in [*rows[0], "applied_at"] if name not in keys}
        where = None if table_name in STREAM_ORDERED else table.c.version < stmt.excluded.version
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=keys, set_=update, where=where), rows
        )
