"""Reporting's read model, built from events only (never from tracking's tables)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tt_common.db import make_metadata
from tt_common.inbox import processed_events_table


class Base(DeclarativeBase):
    metadata = make_metadata()


class PipelineProbe(Base):
    """A probe that went gateway -> tracking outbox -> Kafka -> here."""

    __tablename__ = "pipeline_probes"

    probe_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    emitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")


processed_events = processed_events_table(Base.metadata)
