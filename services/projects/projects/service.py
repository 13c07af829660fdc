"""The directory's rules: validation, invariants, and a change event for every change.

Functions take a Repository (inside the edge's transaction) and a request;
they never commit. Enumerations arrive as proto enum numbers and are stored
by name.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from timetracking.projects.v1 import projects_pb2 as pb
from tt_common.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from tt_common.money import parse_currency, parse_decimal, parse_optional_decimal
from tt_common.pagination import page_size
from tt_common.validation import bounded_text, parse_timezone, parse_uuid

from . import convert, passwords
from .access import AccessDecision, Purpose, decide_access
from .billing import ResolvedRate, resolve_billable, resolve_rate
from .events import DirectoryEvents
from .models import Client, Project, ProjectMember, ProjectUserRate, Task, User
from .repository import Repository

MAX_RATE = Decimal("1000000")
MAX_HOURS = Decimal("1000000")
MAX_AMOUNT = Decimal("1000000000000")


def _rate(value: str, field: str) -> Decimal | None:
    return parse_optional_decimal(value, field, places=2, maximum=MAX_RATE)


def _hours(value: str, field: str) -> Decimal | None:
    return parse_optional_decimal(value, field, places=2, maximum=MAX_HOURS)


def _enum(value: int, names: Mapping[Any, str], field: str, default: str | None = None) -> str:
    if value == 0 and default is not None:
        return default
    if value not in names:
        raise InvalidArgument.field(field, f"must be one of {', '.join(names.values())}")
    return names[value]


def _email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidArgument.field("email", str(exc)) from None


class Directory:
    """The projects service's operations on one unit of work."""

    def __init__(self, repo: Repository, topic: str) -> None:
        self.repo = repo
        self.events = DirectoryEvents(repo, topic)

    async def _touch(self, obj: Any, changed: bool) -> None:
        """Bump version and updated_at when something changed, and flush."""
        if changed:
            obj.version += 1
            if hasattr(obj, "updated_at"):
                obj.updated_at = func.now()
        await self.repo.flush()
        if changed:
            await self.repo.session.refresh(obj)

    # --- users -----------------------------------------------------------------------
    async def create_user(self, req: pb.CreateUserRequest) -> User:
        user = User(
            user_id=uuid.uuid4(),
            name=bounded_text(req.name, "name"),
            email=_email(req.email),
            role=_enum(req.role, convert.ROLE_NAMES, "role", default="EMPLOYEE"),
            default_hourly_rate=_rate(req.default_hourly_rate, "default_hourly_rate"),
            timezone=parse_timezone(req.timezone or "UTC"),
            active=True,
            password_hash=await passwords.hash_password(req.password) if req.password else None,
        )
        await self.repo.add(user)
        await self.repo.session.refresh(user)
        await self.events.changed(convert.user(user), str(user.user_id))
        return user

    async def get_user(self, user_id: str) -> User:
        return await self.repo.get(User, parse_uuid(user_id, "user_id"), "user")

    async def update_user(self, req: pb.UpdateUserRequest) -> User:
        user = await self.repo.get_for_change(
            User, parse_uuid(req.user_id, "user_id"), "user", req.expected_version
        )
        changes: dict[str, Any] = {}
        if req.HasField("name"):
            changes["name"] = bounded_text(req.name, "name")
        if req.HasField("email"):
            changes["email"] = _email(req.email)
        if req.HasField("role"):
            changes["role"] = _enum(req.role, convert.ROLE_NAMES, "role")
        if req.HasField("default_hourly_rate"):
            changes["default_hourly_rate"] = _rate(req.default_hourly_rate, "default_hourly_rate")
        if req.HasField("timezone"):
            changes["timezone"] = parse_timezone(req.timezone)
        if req.HasField("active"):
            changes["active"] = req.active
        await self._apply(user, changes)
        return user

    async def _apply(self, obj: Any, changes: dict[str, Any]) -> None:
        changed = {k: v for k, v in changes.items() if getattr(obj, k) != v}
        for key, value in changed.items():
            setattr(obj, key, value)
        await self._touch(obj, bool(changed))
        if changed:
            snapshot = getattr(convert, type(obj).__name__.lower())(obj)
            await self.events.changed(snapshot, _key(obj))

    async def list_users(self, req: pb.ListUsersRequest) -> tuple[list[User], str]:
        stmt = select(User)
        if req.HasField("role"):
            stmt = stmt.where(User.role == _enum(req.role, convert.ROLE_NAMES, "role"))
        if req.HasField("active"):
            stmt = stmt.where(User.active == req.active)
        if req.email:
            stmt = stmt.where(func.lower(User.email) == req.email.strip().lower())
        rows, token = await self.repo.page(
            stmt, User.created_at, User.user_id, page_size(req.page_size), req.page_token
        )
        return list(rows), token

    async def set_password(self, req: pb.SetPasswordRequest) -> None:
        user = await self.repo.get(User, parse_uuid(req.user_id, "user_id"), "user", for_update=True)
        user.password_hash = await passwords.hash_password(req.password)
        await self.repo.flush()

    async def verify_credentials(self, email: str, password: str) -> User:
        """One error for every failure: unknown email, wrong password, deactivated, no password."""
        user = await self.repo.user_by_email(email.strip()) if email else None
        ok = await passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or not user.active:
            raise Unauthenticated("invalid email or password", error_code="invalid_credentials")
        if user.password_hash and passwords.needs_rehash(user.password_hash):
            user.password_hash = await passwords.hash_password(password)
            await self.repo.flush()
        return user

    # --- clients ---------------------------------------------------------------------
    async def create_client(self, req: pb.CreateClientRequest) -> Client:
        client = Client(
            client_id=uuid.uuid4(),
            name=bounded_text(req.name, "name"),
            currency=parse_currency(req.currency),
            billing_address=bounded_text(
                req.billing_address, "billing_address", max_length=1000, required=False
            ),
            tax_rate=parse_decimal(req.tax_rate or "0", "tax_rate", maximum=Decimal(100)),
            payment_terms_days=_terms(req.payment_terms_days),
            archived=False,
        )
        await self.repo.add(client)
        await self.repo.session.refresh(client)
        await self.events.changed(convert.client(client), str(client.client_id))
        return client

    async def get_client(self, client_id: str) -> Client:
        return await self.repo.get(Client, parse_uuid(client_id, "client_id"), "client")

    async def update_client(self, req: pb.UpdateClientRequest) -> Client:
        client = await self.repo.get_for_change(
            Client, parse_uuid(req.client_id, "client_id"), "client", req.expected_version
        )
        changes: dict[str, Any] = {}
        if req.HasField("name"):
            changes["name"] = bounded_text(req.name, "name")
        if req.HasField("currency"):
            changes["currency"] = parse_currency(req.currency)
        if req.HasField("billing_address"):
            changes["billing_address"] = bounded_text(
                req.billing_address, "billing_address", max_length=1000, required=False
            )
        if req.HasField("tax_rate"):
            changes["tax_rate"] = parse_decimal(req.tax_rate, "tax_rate", maximum=Decimal(100))
        if req.HasField("payment_terms_days"):
            changes["payment_terms_days"] = _terms(req.payment_terms_days)
        if req.HasField("archived"):
            changes["archived"] = req.archived
        await self._apply(client, changes)
        return client

    async def list_clients(self, req: pb.ListClientsRequest) -> tuple[list[Client], str]:
        stmt = select(Client)
        if req.HasField("archived"):
            stmt = stmt.where(Client.archived == req.archived)
        rows, token = await self.repo.page(
            stmt, Client.created_at, Client.client_id, page_size(req.page_size), req.page_token
        )
        return list(rows), token

    # --- projects --------------------------------------------------------------------
    async def create_project(self, req: pb.CreateProjectRequest) -> Project:
        client = await self.repo.get(Client, parse_uuid(req.client_id, "client_id"), "client")
        if client.archived:
            raise FailedPrecondition("client_id: the client is archived")
        project = Project(
            project_id=uuid.uuid4(),
            client_id=client.client_id,
            name=bounded_text(req.name, "name"),
            status="ACTIVE",
            billing_type=_enum(
                req.billing_type, convert.BILLING_TYPE_NAMES, "billing_type", default="HOURLY"
            ),
            budget_hours=_hours(req.budget_hours, "budget_hours"),
            budget_amount=parse_optional_decimal(req.budget_amount, "budget_amount", maximum=MAX_AMOUNT),
            currency=parse_currency(req.currency) if req.currency else client.currency,
            default_hourly_rate=_rate(req.default_hourly_rate, "default_hourly_rate"),
        )
        await self.repo.add(project)
        await self.repo.session.refresh(project)
        await self.events.changed(convert.project(project), str(project.project_id))
        return project

    async def get_project(self, project_id: str) -> Project:
        return await self.repo.get(Project, parse_uuid(project_id, "project_id"), "project")

    async def update_project(self, req: pb.UpdateProjectRequest) -> Project:
        project = await self.repo.get_for_change(
            Project, parse_uuid(req.project_id, "project_id"), "project", req.expected_version
        )
        changes: dict[str, Any] = {}
        if req.HasField("name"):
            changes["name"] = bounded_text(req.name, "name")
        if req.HasField("status"):
            changes["status"] = _enum(req.status, convert.STATUS_NAMES, "status")
        if req.HasField("billing_type"):
            changes["billing_type"] = _enum(req.billing_type, convert.BILLING_TYPE_NAMES, "billing_type")
        if req.HasField("budget_hours"):
            changes["budget_hours"] = _hours(req.budget_hours, "budget_hours")
        if req.HasField("budget_amount"):
            changes["budget_amount"] = parse_optional_decimal(
                req.budget_amount, "budget_amount", maximum=MAX_AMOUNT
            )
        if req.HasField("default_hourly_rate"):
            changes["default_hourly_rate"] = _rate(req.default_hourly_rate, "default_hourly_rate")
        await self._apply(project, changes)
        return project

    async def list_projects(self, req: pb.ListProjectsRequest) -> tuple[list[Project], str]:
        stmt = select(Project)
        if req.client_id:
            stmt = stmt.where(Project.client_id == parse_uuid(req.client_id, "client_id"))
        if req.statuses:
            names = [_enum(s, convert.STATUS_NAMES, "statuses") for s in req.statuses]
            stmt = stmt.where(Project.status.in_(names))
        if req.member_user_id:
            member = parse_uuid(req.member_user_id, "member_user_id")
            stmt = stmt.where(
                Project.project_id.in_(
                    select(ProjectMember.project_id).where(ProjectMember.user_id == member)
                )
            )
        rows, token = await self.repo.page(
            stmt, Project.created_at, Project.project_id, page_size(req.page_size), req.page_token
        )
        return list(rows), token

    # --- tasks -----------------------------------------------------------------------
    async def create_task(self, req: pb.CreateTaskRequest) -> Task:
        project = await self.repo.get(Project, parse_uuid(req.project_id, "project_id"), "project")
        if project.status == "ARCHIVED":
            raise FailedPrecondition("project_id: the project is ARCHIVED")
        task = Task(
            task_id=uuid.uuid4(),
            project_id=project.project_id,
            name=bounded_text(req.name, "name"),
            estimated_hours=_hours(req.estimated_hours, "estimated_hours"),
            is_billable=req.is_billable if req.HasField("is_billable") else None,
            archived=False,
        )
        await self.repo.add(task)
        await self.repo.session.refresh(task)
        await self.events.changed(convert.task(task), str(task.task_id))
        return task

    async def get_task(self, task_id: str) -> Task:
        return await self.repo.get(Task, parse_uuid(task_id, "task_id"), "task")

    async def update_task(self, req: pb.UpdateTaskRequest) -> Task:
        task = await self.repo.get_for_change(
            Task, parse_uuid(req.task_id, "task_id"), "task", req.expected_version
        )
        if req.clear_is_billable and req.HasField("is_billable"):
            raise InvalidArgument.field("clear_is_billable", "cannot be combined with is_billable")
        changes: dict[str, Any] = {}
        if req.HasField("name"):
            changes["name"] = bounded_text(req.name, "name")
        if req.HasField("estimated_hours"):
            changes["estimated_hours"] = _hours(req.estimated_hours, "estimated_hours")
        if req.HasField("is_billable"):
            changes["is_billable"] = req.is_billable
        if req.clear_is_billable:
            changes["is_billable"] = None
        if req.HasField("archived"):
            changes["archived"] = req.archived
        await self._apply(task, changes)
        return task

    async def list_tasks(self, req: pb.ListTasksRequest) -> tuple[list[Task], str]:
        project_id = parse_uuid(req.project_id, "project_id")
        await self.repo.get(Project, project_id, "project")
        stmt = select(Task).where(Task.project_id == project_id)
        if req.HasField("archived"):
            stmt = stmt.where(Task.archived == req.archived)
        rows, token = await self.repo.page(
            stmt, Task.created_at, Task.task_id, page_size(req.page_size), req.page_token
        )
        return list(rows), token

    # --- members and rates -------------------------------------------------------------
    async def add_member(self, req: pb.AddProjectMemberRequest) -> ProjectMember:
        project = await self.repo.get(Project, parse_uuid(req.project_id, "project_id"), "project")
        user = await self.repo.get(User, parse_uuid(req.user_id, "user_id"), "user")
        if not user.active:
            raise FailedPrecondition("user_id: the user is deactivated")
        member = ProjectMember(
            project_id=project.project_id,
            user_id=user.user_id,
            project_role=_enum(
                req.project_role, convert.PROJECT_ROLE_NAMES, "project_role", default="MEMBER"
            ),
        )
        await self.repo.add(member)
        await self.repo.session.refresh(member)
        await self.events.member(convert.member(member))
        return member

    async def _member(self, project_id: str, user_id: str) -> ProjectMember:
        pid, uid = parse_uuid(project_id, "project_id"), parse_uuid(user_id, "user_id")
        member = await self.repo.member(pid, uid)
        if member is None:
            raise NotFound("the user is not a member of the project")
        return member

    async def update_member(self, req: pb.UpdateProjectMemberRequest) -> ProjectMember:
        member = await self._member(req.project_id, req.user_id)
        role = _enum(req.project_role, convert.PROJECT_ROLE_NAMES, "project_role")
        if role != member.project_role:
            member.project_role = role
            await self._touch(member, True)
            await self.events.member(convert.member(member))
        return member

    async def remove_member(self, req: pb.RemoveProjectMemberRequest) -> None:
        member = await self._member(req.project_id, req.user_id)
        rate = await self.repo.rate(member.project_id, member.user_id)
        if rate is not None:
            # The rate goes with the membership; recorded entries keep their snapshots.
            snapshot = convert.rate(rate)
            await self.repo.delete_rate(member.project_id, member.user_id)
            await self.events.rate(snapshot, removed=True)
        snapshot_member = convert.member(member)
        await self.repo.delete_member(member.project_id, member.user_id)
        await self.events.member(snapshot_member, removed=True)

    async def list_members(self, req: pb.ListProjectMembersRequest) -> tuple[list[ProjectMember], str]:
        if bool(req.project_id) == bool(req.user_id):
            raise InvalidArgument.field("project_id", "give exactly one of project_id or user_id")
        stmt = select(ProjectMember)
        if req.project_id:
            stmt = stmt.where(ProjectMember.project_id == parse_uuid(req.project_id, "project_id"))
            id_col = ProjectMember.user_id
        else:
            stmt = stmt.where(ProjectMember.user_id == parse_uuid(req.user_id, "user_id"))
            id_col = ProjectMember.project_id
        rows, token = await self.repo.page(
            stmt, ProjectMember.created_at, id_col, page_size(req.page_size), req.page_token
        )
        return list(rows), token

    async def set_rate(self, req: pb.SetProjectUserRateRequest) -> ProjectUserRate:
        amount = parse_decimal(req.hourly_rate, "hourly_rate", maximum=MAX_RATE)
        member = await self._member(req.project_id, req.user_id)
        rate = await self.repo.rate(member.project_id, member.user_id)
        if rate is None:
            rate = ProjectUserRate(project_id=member.project_id, user_id=member.user_id, hourly_rate=amount)
            await self.repo.add(rate)
            await self.repo.session.refresh(rate)
        elif rate.hourly_rate != amount:
            rate.hourly_rate = amount
            await self._touch(rate, True)
        else:
            return rate
        await self.events.rate(convert.rate(rate))
        return rate

    async def delete_rate(self, req: pb.DeleteProjectUserRateRequest) -> None:
        pid, uid = parse_uuid(req.project_id, "project_id"), parse_uuid(req.user_id, "user_id")
        rate = await self.repo.rate(pid, uid)
        if rate is None:
            raise NotFound("no project-specific rate for this user")
        snapshot = convert.rate(rate)
        await self.repo.delete_rate(pid, uid)
        await self.events.rate(snapshot, removed=True)

    async def list_rates(self, project_id: str) -> list[ProjectUserRate]:
        pid = parse_uuid(project_id, "project_id")
        await self.repo.get(Project, pid, "project")
        return list(await self.repo.rates_of(pid))

    # --- the domain calls ----------------------------------------------------------------
    async def check_access(
        self, req: pb.CheckAccessRequest
    ) -> tuple[AccessDecision, User, Project, str | None]:
        purpose = Purpose(_enum(req.purpose, {1: "BOOK_TIME", 2: "READ", 3: "MANAGE"}, "purpose"))
        user = await self.get_user(req.user_id)
        project = await self.get_project(req.project_id)
        member = await self.repo.member(project.project_id, user.user_id)
        role = member.project_role if member else None
        decision = decide_access(
            purpose=purpose,
            user_active=user.active,
            user_role=user.role,
            project_status=project.status,
            project_role=role,
        )
        return decision, user, project, role

    async def resolve_billing(self, req: pb.ResolveBillingRequest) -> tuple[ResolvedRate, bool, Project]:
        user_id = parse_uuid(req.user_id, "user_id")
        project_id = parse_uuid(req.project_id, "project_id")
        task_id = parse_uuid(req.task_id, "task_id") if req.task_id else None
        project, user, project_user_rate = await self.repo.billing_inputs(user_id, project_id)
        if project is None:
            raise NotFound("project not found")
        if user is None:
            raise NotFound("user not found")
        task_override: bool | None = None
        if task_id is not None:
            task = await self.repo.session.get(Task, task_id)
            if task is None or task.project_id != project.project_id:
                raise InvalidArgument.field("task_id", "no such task in this project")
            task_override = task.is_billable
        rate = resolve_rate(project_user_rate, user.default_hourly_rate, project.default_hourly_rate)
        return rate, resolve_billable(project.billing_type, task_override), project


def _terms(days: int) -> int:
    if not 0 <= days <= 365:
        raise InvalidArgument.field("payment_terms_days", "between 0 and 365")
    return days


_KEY_ATTRS: dict[type, str] = {User: "user_id", Client: "client_id", Project: "project_id", Task: "task_id"}


def _key(obj: Any) -> str:
    """The Kafka key of an entity's events: its own id."""
    return str(getattr(obj, _KEY_ATTRS[type(obj)]))
