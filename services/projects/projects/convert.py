"""ORM rows to wire messages (the API never exposes models, e.g. password hashes)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.projects.v1 import projects_pb2 as pb
from tt_common.money import format_decimal

from .models import ApiToken, Client, Project, ProjectMember, ProjectUserRate, Task, User

ROLES = {"EMPLOYEE": pb.ROLE_EMPLOYEE, "MANAGER": pb.ROLE_MANAGER, "ADMIN": pb.ROLE_ADMIN}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
STATUSES = {
    "ACTIVE": pb.PROJECT_STATUS_ACTIVE,
    "COMPLETED": pb.PROJECT_STATUS_COMPLETED,
    "ARCHIVED": pb.PROJECT_STATUS_ARCHIVED,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
BILLING_TYPES = {
    "HOURLY": pb.BILLING_TYPE_HOURLY,
    "FIXED": pb.BILLING_TYPE_FIXED,
    "NON_BILLABLE": pb.BILLING_TYPE_NON_BILLABLE,
}
BILLING_TYPE_NAMES = {v: k for k, v in BILLING_TYPES.items()}
PROJECT_ROLES = {"MEMBER": pb.PROJECT_ROLE_MEMBER, "MANAGER": pb.PROJECT_ROLE_MANAGER}
PROJECT_ROLE_NAMES = {v: k for k, v in PROJECT_ROLES.items()}


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def user(u: User) -> pb.User:
    return pb.User(
        user_id=str(u.user_id),
        name=u.name,
        email=u.email,
        role=ROLES[u.role],
        default_hourly_rate=format_decimal(u.default_hourly_rate),
        timezone=u.timezone,
        active=u.active,
        version=u.version,
        created_at=ts(u.created_at),
        updated_at=ts(u.updated_at),
    )


def client(c: Client) -> pb.Client:
    return pb.Client(
        client_id=str(c.client_id),
        name=c.name,
        currency=c.currency,
        billing_address=c.billing_address,
        tax_rate=format_decimal(c.tax_rate),
        payment_terms_days=c.payment_terms_days,
        archived=c.archived,
        version=c.version,
        created_at=ts(c.created_at),
        updated_at=ts(c.updated_at),
    )


def project(p: Project) -> pb.Project:
    return pb.Project(
        project_id=str(p.project_id),
        client_id=str(p.client_id),
        name=p.name,
        status=STATUSES[p.status],
        billing_type=BILLING_TYPES[p.billing_type],
        budget_hours=format_decimal(p.budget_hours),
        budget_amount=format_decimal(p.budget_amount),
        currency=p.currency,
        default_hourly_rate=format_decimal(p.default_hourly_rate),
        version=p.version,
        created_at=ts(p.created_at),
        updated_at=ts(p.updated_at),
    )


def task(t: Task) -> pb.Task:
    out = pb.Task(
        task_id=str(t.task_id),
        project_id=str(t.project_id),
        name=t.name,
        estimated_hours=format_decimal(t.estimated_hours),
        archived=t.archived,
        version=t.version,
        created_at=ts(t.created_at),
        updated_at=ts(t.updated_at),
    )
    if t.is_billable is not None:
        out.is_billable = t.is_billable
    return out


def member(m: ProjectMember) -> pb.ProjectMember:
    return pb.ProjectMember(
        project_id=str(m.project_id),
        user_id=str(m.user_id),
        project_role=PROJECT_ROLES[m.project_role],
        version=m.version,
        created_at=ts(m.created_at),
    )


def rate(r: ProjectUserRate) -> pb.ProjectUserRate:
    return pb.ProjectUserRate(
        project_id=str(r.project_id),
        user_id=str(r.user_id),
        hourly_rate=format_decimal(r.hourly_rate),
        version=r.version,
        updated_at=ts(r.updated_at),
    )


def api_token(t: ApiToken) -> pb.ApiToken:
    return pb.ApiToken(
        token_id=str(t.token_id),
        user_id=str(t.user_id),
        name=t.name,
        prefix=t.prefix,
        created_at=ts(t.created_at),
    )
