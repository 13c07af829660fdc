"""All of the projects service's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tt_common.errors import AlreadyExists, Conflict, DomainError, InvalidArgument, NotFound
from tt_common.outbox import enqueue
from tt_common.pagination import keyset_page

from .models import ApiToken, Client, Project, ProjectMember, ProjectUserRate, Task, User, outbox

M = TypeVar("M")

# Constraint name -> the error a caller should see. The database is the last word on
# uniqueness and references; these turn its refusals into errors that name the field.
_CONSTRAINT_ERRORS: dict[str, DomainError] = {
    "uq_users_email_ci": AlreadyExists("email: already used by another user", error_code="email_taken"),
    "uq_projects_client_name_ci": AlreadyExists("name: the client already has a project with this name"),
    "uq_tasks_project_name_ci": AlreadyExists("name: the project already has a task with this name"),
    "pk_project_members": AlreadyExists("user_id: already a member of the project"),
    "fk_project_user_rates_member": InvalidArgument.field(
        "user_id", "a rate needs the user to be a project member"
    ),
    "fk_projects_client_id_clients": InvalidArgument.field("client_id", "no such client"),
    "fk_project_members_user_id_users": InvalidArgument.field("user_id", "no such user"),
}


def _translate(exc: IntegrityError) -> DomainError | None:
    name = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    return _CONSTRAINT_ERRORS.get(name or "")


class Repository:
    """One unit of work's data access; the caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- generic -------------------------------------------------------------------
    async def add(self, obj: Any) -> None:
        self.session.add(obj)
        await self.flush()

    async def flush(self) -> None:
        try:
            await self.session.flush()
        except IntegrityError as exc:
            mapped = _translate(exc)
            if mapped is None:
                raise
            raise mapped from None

    async def get(self, model: type[M], key: Any, what: str, *, for_update: bool = False) -> M:
        obj = await self.session.get(model, key, with_for_update=for_update, populate_existing=for_update)
        if obj is None:
            raise NotFound(f"{what} not found")
        return obj

    async def get_for_change(self, model: type[M], key: Any, what: str, expected_version: int) -> M:
        """Row-locked for the update; a stale `expected_version` is a conflict."""
        obj = await self.get(model, key, what, for_update=True)
        current = obj.version  # type: ignore[attr-defined]
        if expected_version and expected_version != current:
            raise Conflict(
                f"{what} changed (version {current}, you sent {expected_version}); reload and retry"
            )
        return obj

    async def page(
        self, stmt: Select[Any], created_col: Any, id_col: Any, size: int, token: str
    ) -> tuple[Sequence[Any], str]:
        return await keyset_page(self.session, stmt, created_col, id_col, size, token)

    # --- lookups -------------------------------------------------------------------
    async def user_by_email(self, email: str) -> User | None:
        return (
            await self.session.execute(select(User).where(func.lower(User.email) == email.lower()))
        ).scalar_one_or_none()

    async def member(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectMember | None:
        return await self.session.get(ProjectMember, (project_id, user_id))

    async def rate(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectUserRate | None:
        return await self.session.get(ProjectUserRate, (project_id, user_id))

    async def billing_inputs(
        self, user_id: uuid.UUID, project_id: uuid.UUID
    ) -> tuple[Project | None, User | None, Decimal | None]:
        """Project, user and project-user rate in one round trip."""
        row = (
            await self.session.execute(
                select(Project, User, ProjectUserRate.hourly_rate)
                .select_from(Project)
                .join(User, User.user_id == user_id, isouter=True)
                .join(
                    ProjectUserRate,
                    and_(
                        ProjectUserRate.project_id == Project.project_id, ProjectUserRate.user_id == user_id
                    ),
                    isouter=True,
                )
                .where(Project.project_id == project_id)
            )
        ).first()
        if row is None:
            return None, await self.session.get(User, user_id), None
        return row[0], row[1], row[2]

    async def delete_member(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(ProjectMember).where(
                ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
            )
        )

    async def delete_rate(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(ProjectUserRate).where(
                ProjectUserRate.project_id == project_id, ProjectUserRate.user_id == user_id
            )
        )

    async def rates_of(self, project_id: uuid.UUID) -> Sequence[ProjectUserRate]:
        return (
            (
                await self.session.execute(
                    select(ProjectUserRate)
                    .where(ProjectUserRate.project_id == project_id)
                    .order_by(ProjectUserRate.user_id)
                )
            )
            .scalars()
            .all()
        )

    # --- API tokens ------------------------------------------------------------------
    async def count_active_tokens(self, user_id: uuid.UUID) -> int:
        stmt = select(func.count()).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        return int((await self.session.execute(stmt)).scalar_one())

    async def token_with_owner(self, token_hash: str) -> tuple[ApiToken, User] | None:
        row = (
            await self.session.execute(
                select(ApiToken, User)
                .join(User, User.user_id == ApiToken.user_id)
                .where(ApiToken.token_hash == token_hash)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    # --- the outbox ----------------------------------------------------------------
    async def publish(self, *, topic: str, key: str, payload: bytes, event_id: uuid.UUID) -> None:
        await enqueue(self.session, outbox, topic=topic, key=key, payload=payload, event_id=event_id)


__all__ = ["ApiToken", "Client", "Project", "ProjectMember", "ProjectUserRate", "Repository", "Task", "User"]
