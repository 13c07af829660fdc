"""Time entries, timers and the audit trail."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from timetracking.tracking.v1 import tracking_pb2 as tpb

from .common import Description, Input, Tags, Timestamp_, dt, dt_or_none, or_none


class EntryOut(BaseModel):
    entry_id: str
    user_id: str
    project_id: str
    task_id: str | None
    description: str
    start_time: datetime
    end_time: datetime | None = Field(description="null while the timer runs")
    duration_seconds: int
    running: bool
    is_billable: bool
    hourly_rate: str = Field(description="snapshot taken when the entry was created")
    currency: str
    tags: list[str]
    invoice_id: str | None = Field(description="set once invoiced; invoiced entries are read-only")
    capped: bool = Field(description="stopped by the system at the 24 h cap")
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, e: tpb.TimeEntry) -> EntryOut:
        return cls(
            entry_id=e.entry_id,
            user_id=e.user_id,
            project_id=e.project_id,
            task_id=or_none(e.task_id),
            description=e.description,
            start_time=dt(e.start_time),
            end_time=dt_or_none(e, "end_time"),
            duration_seconds=e.duration_seconds,
            running=e.running,
            is_billable=e.is_billable,
            hourly_rate=e.hourly_rate,
            currency=e.currency,
            tags=list(e.tags),
            invoice_id=or_none(e.invoice_id),
            capped=e.capped,
            version=e.version,
            created_at=dt(e.created_at),
            updated_at=dt(e.updated_at),
        )


class EntryCreate(Input):
    """A manual entry for the caller. user, rate, billable flag and invoice are not settable."""

    project_id: uuid.UUID
    task_id: uuid.UUID | None = None
    description: Description = ""
    start_time: Timestamp_
    end_time: Timestamp_
    tags: Tags = Field(default_factory=list)


class EntryUpdate(Input):
    """Only the fields sent change; `task_id: null` clears the task."""

    project_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    description: Description | None = None
    start_time: Timestamp_ | None = None
    end_time: Timestamp_ | None = None
    tags: Tags | None = None


class TimerStart(Input):
    project_id: uuid.UUID
    task_id: uuid.UUID | None = None
    description: Description = ""
    tags: Tags = Field(default_factory=list)


class TimerStop(Input):
    entry_id: uuid.UUID | None = Field(default=None, description="stop only if this is the running timer")


class TimerState(BaseModel):
    running: bool
    entry: EntryOut | None = None


class TimerStopped(BaseModel):
    entry: EntryOut
    discarded: bool = Field(description="shorter than 60 s: deleted as accidental")
    capped: bool = Field(description="ran longer than 24 h: stopped at the cap")


AuditAction = Literal[
    "timer_started",
    "timer_stopped",
    "timer_capped",
    "timer_discarded",
    "created",
    "updated",
    "deleted",
    "claimed",
    "released",
]


def _json(raw: str) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class AuditRecordOut(BaseModel):
    audit_id: int
    entry_id: str
    actor_user_id: str | None = Field(description="null: the system (the 24 h sweeper)")
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime

    @classmethod
    def from_pb(cls, r: tpb.AuditRecord) -> AuditRecordOut:
        return cls(
            audit_id=r.audit_id,
            entry_id=r.entry_id,
            actor_user_id=or_none(r.actor_user_id),
            action=r.action,
            before=_json(r.before_json),
            after=_json(r.after_json),
            at=dt(r.at),
        )
