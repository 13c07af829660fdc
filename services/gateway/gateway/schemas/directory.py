"""Users, clients, projects, tasks, members and project-user rates."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from timetracking.projects.v1 import projects_pb2 as ppb

from .common import Amount, Currency, Hours, Input, Name, Percent, Rate, dt, or_none

RoleName = Literal["EMPLOYEE", "MANAGER", "ADMIN"]
ProjectStatus = Literal["ACTIVE", "COMPLETED", "ARCHIVED"]
BillingType = Literal["HOURLY", "FIXED", "NON_BILLABLE"]
ProjectRole = Literal["MEMBER", "MANAGER"]

ROLES: dict[str, ppb.Role] = {
    "EMPLOYEE": ppb.ROLE_EMPLOYEE,
    "MANAGER": ppb.ROLE_MANAGER,
    "ADMIN": ppb.ROLE_ADMIN,
}
STATUSES: dict[str, ppb.ProjectStatus] = {
    "ACTIVE": ppb.PROJECT_STATUS_ACTIVE,
    "COMPLETED": ppb.PROJECT_STATUS_COMPLETED,
    "ARCHIVED": ppb.PROJECT_STATUS_ARCHIVED,
}
BILLING: dict[str, ppb.BillingType] = {
    "HOURLY": ppb.BILLING_TYPE_HOURLY,
    "FIXED": ppb.BILLING_TYPE_FIXED,
    "NON_BILLABLE": ppb.BILLING_TYPE_NON_BILLABLE,
}
PROJECT_ROLES: dict[str, ppb.ProjectRole] = {
    "MEMBER": ppb.PROJECT_ROLE_MEMBER,
    "MANAGER": ppb.PROJECT_ROLE_MANAGER,
}


def _name_of(table: dict[str, Any], value: int, default: str) -> str:
    return next((k for k, v in table.items() if v == value), default)


Email = Annotated[str, StringConstraints(min_length=3, max_length=320)]
Timezone = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256, strip_whitespace=False)]
Address = Annotated[str, StringConstraints(max_length=1000)]


# --- users ---------------------------------------------------------------------------------
class UserOut(BaseModel):
    user_id: str
    name: str
    email: str
    role: RoleName
    default_hourly_rate: str | None
    timezone: str
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, u: ppb.User) -> UserOut:
        return cls(
            user_id=u.user_id,
            name=u.name,
            email=u.email,
            role=_name_of(ROLES, u.role, "EMPLOYEE"),  # type: ignore[arg-type]
            default_hourly_rate=or_none(u.default_hourly_rate),
            timezone=u.timezone,
            active=u.active,
            version=u.version,
            created_at=dt(u.created_at),
            updated_at=dt(u.updated_at),
        )


class UserCreate(Input):
    name: Name
    email: Email
    role: RoleName = "EMPLOYEE"
    default_hourly_rate: Rate | None = None
    timezone: Timezone = "UTC"
    password: Password | None = Field(default=None, description="without one the user cannot log in yet")


class UserUpdate(Input):
    name: Name | None = None
    email: Email | None = None
    role: RoleName | None = None
    default_hourly_rate: Rate | None = None
    timezone: Timezone | None = None
    active: bool | None = None


# --- clients -------------------------------------------------------------------------------
class ClientOut(BaseModel):
    client_id: str
    name: str
    currency: str
    billing_address: str
    tax_rate: str
    payment_terms_days: int
    archived: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, c: ppb.Client) -> ClientOut:
        return cls(
            client_id=c.client_id,
            name=c.name,
            currency=c.currency,
            billing_address=c.billing_address,
            tax_rate=c.tax_rate,
            payment_terms_days=c.payment_terms_days,
            archived=c.archived,
            version=c.version,
            created_at=dt(c.created_at),
            updated_at=dt(c.updated_at),
        )


class ClientCreate(Input):
    name: Name
    currency: Currency
    billing_address: Address = ""
    tax_rate: Percent = "0"
    payment_terms_days: int = Field(default=30, ge=0, le=365)


class ClientUpdate(Input):
    name: Name | None = None
    currency: Currency | None = None
    billing_address: Address | None = None
    tax_rate: Percent | None = None
    payment_terms_days: int | None = Field(default=None, ge=0, le=365)
    archived: bool | None = None


# --- projects ------------------------------------------------------------------------------
class ProjectOut(BaseModel):
    project_id: str
    client_id: str
    name: str
    status: ProjectStatus
    billing_type: BillingType
    budget_hours: str | None
    budget_amount: str | None
    currency: str
    default_hourly_rate: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, p: ppb.Project) -> ProjectOut:
        return cls(
            project_id=p.project_id,
            client_id=p.client_id,
            name=p.name,
            status=_name_of(STATUSES, p.status, "ACTIVE"),  # type: ignore[arg-type]
            billing_type=_name_of(BILLING, p.billing_type, "HOURLY"),  # type: ignore[arg-type]
            budget_hours=or_none(p.budget_hours),
            budget_amount=or_none(p.budget_amount),
            currency=p.currency,
            default_hourly_rate=or_none(p.default_hourly_rate),
            version=p.version,
            created_at=dt(p.created_at),
            updated_at=dt(p.updated_at),
        )


class ProjectCreate(Input):
    client_id: uuid.UUID
    name: Name
    billing_type: BillingType = "HOURLY"
    budget_hours: Hours | None = None
    budget_amount: Amount | None = None
    currency: Currency | None = Field(default=None, description="default: the client's currency")
    default_hourly_rate: Rate | None = None


class ProjectUpdate(Input):
    name: Name | None = None
    status: ProjectStatus | None = None
    billing_type: BillingType | None = None
    budget_hours: Hours | None = None
    budget_amount: Amount | None = None
    default_hourly_rate: Rate | None = None


# --- tasks ---------------------------------------------------------------------------------
class TaskOut(BaseModel):
    task_id: str
    project_id: str
    name: str
    estimated_hours: str | None
    is_billable: bool | None = Field(description="null: the project's default")
    archived: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, t: ppb.Task) -> TaskOut:
        return cls(
            task_id=t.task_id,
            project_id=t.project_id,
            name=t.name,
            estimated_hours=or_none(t.estimated_hours),
            is_billable=t.is_billable if t.HasField("is_billable") else None,
            archived=t.archived,
            version=t.version,
            created_at=dt(t.created_at),
            updated_at=dt(t.updated_at),
        )


class TaskCreate(Input):
    name: Name
    estimated_hours: Hours | None = None
    is_billable: bool | None = None


class TaskUpdate(Input):
    name: Name | None = None
    estimated_hours: Hours | None = None
    is_billable: bool | None = Field(default=None, description="null together with clear_is_billable")
    clear_is_billable: bool = False
    archived: bool | None = None


# --- members and rates ---------------------------------------------------------------------
class MemberOut(BaseModel):
    project_id: str
    user_id: str
    project_role: ProjectRole
    version: int
    created_at: datetime

    @classmethod
    def from_pb(cls, m: ppb.ProjectMember) -> MemberOut:
        return cls(
            project_id=m.project_id,
            user_id=m.user_id,
            project_role=_name_of(PROJECT_ROLES, m.project_role, "MEMBER"),  # type: ignore[arg-type]
            version=m.version,
            created_at=dt(m.created_at),
        )


class MemberCreate(Input):
    user_id: uuid.UUID
    project_role: ProjectRole = "MEMBER"


class MemberUpdate(Input):
    project_role: ProjectRole


class RateOut(BaseModel):
    project_id: str
    user_id: str
    hourly_rate: str
    version: int
    updated_at: datetime

    @classmethod
    def from_pb(cls, r: ppb.ProjectUserRate) -> RateOut:
        return cls(
            project_id=r.project_id,
            user_id=r.user_id,
            hourly_rate=r.hourly_rate,
            version=r.version,
            updated_at=dt(r.updated_at),
        )


class RateSet(Input):
    hourly_rate: Rate
