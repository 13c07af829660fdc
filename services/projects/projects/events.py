"""Directory change events, written to the outbox in the change's transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from timetracking.events.v1 import directory_pb2
from timetracking.projects.v1 import projects_pb2 as pb

from .repository import Repository

_KINDS = {
    pb.User: "user_changed",
    pb.Client: "client_changed",
    pb.Project: "project_changed",
    pb.Task: "task_changed",
}


class DirectoryEvents:
    def __init__(self, repo: Repository, topic: str) -> None:
        self.repo = repo
        self.topic = topic

    async def changed(self, snapshot: pb.User | pb.Client | pb.Project | pb.Task, key: str) -> None:
        await self._emit(_KINDS[type(snapshot)], snapshot, key)

    async def member(self, snapshot: pb.ProjectMember, *, removed: bool = False) -> None:
        # Keyed by project: a project's membership and rate changes stay in order.
        await self._emit("member_removed" if removed else "member_changed", snapshot, snapshot.project_id)

    async def rate(self, snapshot: pb.ProjectUserRate, *, removed: bool = False) -> None:
        await self._emit("rate_removed" if removed else "rate_changed", snapshot, snapshot.project_id)

    async def _emit(self, kind: str, snapshot: object, key: str) -> None:
        event_id = uuid.uuid4()
        event = directory_pb2.DirectoryEvent(event_id=str(event_id))
        event.occurred_at.FromDatetime(datetime.now(UTC))
        getattr(event, kind).CopyFrom(snapshot)
        await self.repo.publish(
            topic=self.topic, key=key, payload=event.SerializeToString(), event_id=event_id
        )
