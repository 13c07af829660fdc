"""Events written straight to the topics the running reporting service consumes.

Tests build the same protobuf events tracking and projects publish, so they
exercise reporting alone (tracking's implementation is not involved).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer

from reporting.timesheet import TimesheetEntryRow
from timetracking.events.v1 import directory_pb2, entries_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.timestamps import epoch_micros

T = TypeVar("T")


@dataclass(frozen=True)
class Topics:
    entries: str
    directory: str
    dead_letter: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Topics:
        return cls(
            env["REPORTING_TOPIC_ENTRIES"],
            env["REPORTING_TOPIC_DIRECTORY"],
            env["REPORTING_TOPIC_DEAD_LETTER"],
        )


def new_id() -> str:
    return str(uuid.uuid4())


def at(zone: str, *args: int) -> datetime:
    """A local wall-clock time in `zone`, as a UTC instant."""
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


def reference_days(entries: list[tuple[datetime, datetime]], zone: str) -> dict[str, int]:
    """Seconds per local date, walking each entry minute by minute with zoneinfo."""
    tz, seconds = ZoneInfo(zone), Counter[str]()
    for start, end in entries:
        t = start
        while t < end:
            seconds[t.astimezone(tz).date().isoformat()] += 60
            t += timedelta(minutes=1)
    return dict(seconds)


def entry_row(
    start: datetime, end: datetime, *, billable: bool = True, project: uuid.UUID | None = None
) -> TimesheetEntryRow:
    """A timesheet row as the repository returns it, for the pure cutting tests."""
    return TimesheetEntryRow(
        entry_id=str(uuid.uuid4()),
        project_id=str(project or uuid.uuid4()),
        project_name="P",
        task_id=None,
        task_name=None,
        description="",
        tags=[],
        start_micros=epoch_micros(start),
        end_micros=epoch_micros(end),
        duration_seconds=int((end - start).total_seconds()),
        is_billable=billable,
        invoice_id=None,
    )


def snapshot(
    *,
    entry_id: str,
    user_id: str,
    project_id: str,
    start: datetime,
    end: datetime | None,
    version: int,
    rate: str = "100.00",
    billable: bool = True,
    task_id: str = "",
    invoice_id: str = "",
    currency: str = "EUR",
    description: str = "work",
) -> entries_pb2.TimeEntrySnapshot:
    snap = entries_pb2.TimeEntrySnapshot(
        entry_id=entry_id,
        user_id=user_id,
        project_id=project_id,
        task_id=task_id,
        description=description,
        duration_seconds=int((end - start).total_seconds()) if end else 0,
        is_billable=billable,
        hourly_rate=rate,
        currency=currency,
        invoice_id=invoice_id,
        version=version,
    )
    snap.start_time.FromDatetime(start)
    if end is not None:
        snap.end_time.FromDatetime(end)
    snap.created_at.FromDatetime(start)
    snap.updated_at.FromDatetime(end or start)
    return snap


def entry_event(kind: str, snap: entries_pb2.TimeEntrySnapshot) -> entries_pb2.EntryEvent:
    event = entries_pb2.EntryEvent(event_id=new_id(), actor_user_id=snap.user_id)
    event.occurred_at.FromDatetime(datetime.now(UTC))
    body = {
        "stopped": entries_pb2.EntryStopped,
        "edited": entries_pb2.EntryEdited,
        "deleted": entries_pb2.EntryDeleted,
        "claimed": entries_pb2.EntriesClaimed,
        "released": entries_pb2.EntriesReleased,
    }[kind](entry=snap)
    getattr(event, kind).CopyFrom(body)
    return event


def directory_event(kind: str, message: Any) -> directory_pb2.DirectoryEvent:
    event = directory_pb2.DirectoryEvent(event_id=new_id())
    event.occurred_at.FromDatetime(datetime.now(UTC))
    getattr(event, kind).CopyFrom(message)
    return event


class EventWriter:
    """Produces entry and directory events; `partition` pins ordering-sensitive sequences."""

    def __init__(self, producer: AIOKafkaProducer, topics: Topics) -> None:
        self.producer = producer
        self.topics = topics

    async def raw(self, topic: str, value: bytes, key: str, partition: int | None = None) -> None:
        await self.producer.send_and_wait(topic, value, key=key.encode(), partition=partition)

    async def entry(
        self, kind: str, snap: entries_pb2.TimeEntrySnapshot, partition: int | None = None
    ) -> None:
        event = entry_event(kind, snap)
        await self.raw(self.topics.entries, event.SerializeToString(), snap.entry_id, partition)

    async def directory(self, kind: str, message: Any, key: str) -> None:
        await self.raw(self.topics.directory, directory_event(kind, message).SerializeToString(), key)

    async def user(self, *, tz: str, role: int = ppb.ROLE_EMPLOYEE, name: str = "", version: int = 1) -> str:
        user_id = new_id()
        user = ppb.User(
            user_id=user_id, name=name or f"user {user_id[:6]}", role=role, timezone=tz, active=True
        )
        user.version = version
        await self.directory("user_changed", user, user_id)
        return user_id

    async def client(self, name: str = "Client", currency: str = "EUR") -> str:
        client_id = new_id()
        await self.directory(
            "client_changed",
            ppb.Client(client_id=client_id, name=name, currency=currency, version=1),
            client_id,
        )
        return client_id

    async def project(
        self,
        client_id: str,
        name: str,
        *,
        currency: str = "EUR",
        budget_hours: str = "",
        budget_amount: str = "",
    ) -> str:
        project_id = new_id()
        project = ppb.Project(
            project_id=project_id,
            client_id=client_id,
            name=name,
            status=ppb.PROJECT_STATUS_ACTIVE,
            billing_type=ppb.BILLING_TYPE_HOURLY,
            budget_hours=budget_hours,
            budget_amount=budget_amount,
            currency=currency,
            version=1,
        )
        await self.directory("project_changed", project, project_id)
        return project_id

    async def task(self, project_id: str, name: str) -> str:
        task_id = new_id()
        await self.directory(
            "task_changed", ppb.Task(task_id=task_id, project_id=project_id, name=name, version=1), task_id
        )
        return task_id

    async def member(self, project_id: str, user_id: str, role: int = ppb.PROJECT_ROLE_MEMBER) -> None:
        member = ppb.ProjectMember(project_id=project_id, user_id=user_id, project_role=role, version=1)
        await self.directory("member_changed", member, project_id)


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, within: float = 30.0, what: str = ""
) -> T:
    """Poll `probe` until `ok(result)`; fail with the last result at the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if ok(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s: {what}\nlast: {result}")
        await asyncio.sleep(0.1)


def day_seconds(timesheet: Any) -> dict[str, int]:
    return {d.date: d.seconds for d in timesheet.days if d.seconds}


def iso(d: date) -> str:
    return d.isoformat()
