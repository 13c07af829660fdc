"""Reporting's read-side SQL: the report queries over the read model.

Every query counts stopped (end_time set), not deleted entries only. Periods
are half-open [start, end) on the entry's start time, the definition tracking
uses for invoice claims. The timesheet reads through timesheet_statements.py:
every entry overlapping its local days, cut by timesheet.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from .models import ReportClient, ReportEntry, ReportProject, ReportProjectMember, ReportTask, ReportUser

E = ReportEntry


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MoneyGroup:
    """Sums of one group of entries: seconds and sum(duration_seconds x rate), exact."""

    key: tuple
    currency: str
    is_billable: bool
    invoiced: bool
    seconds: int
    seconds_x_rate: Decimal


def _counted() -> ColumnElement[bool]:
    return and_(E.deleted.is_(False), E.end_time.is_not(None))


def _in_period(period: Period | None) -> ColumnElement[bool]:
    if period is None:
        return true()
    return and_(E.start_time >= period.start, E.start_time < period.end)


class ReportsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- directory copies --------------------------------------------------------
    async def user(self, user_id: uuid.UUID) -> ReportUser | None:
        return await self.session.get(ReportUser, user_id)

    async def project(self, project_id: uuid.UUID) -> ReportProject | None:
        return await self.session.get(ReportProject, project_id)

    async def client(self, client_id: uuid.UUID) -> ReportClient | None:
        return await self.session.get(ReportClient, client_id)

    async def task_names(self, task_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not task_ids:
            return {}
        rows = await self.session.execute(
            select(ReportTask.task_id, ReportTask.name).where(ReportTask.task_id.in_(task_ids))
        )
        return {r.task_id: r.name for r in rows}

    async def project_names(self, project_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not project_ids:
            return {}
        rows = await self.session.execute(
            select(ReportProject.project_id, ReportProject.name).where(
                ReportProject.project_id.in_(project_ids)
            )
        )
        return {r.project_id: r.name for r in rows}

    async def user_names(self, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not user_ids:
            return {}
        rows = await self.session.execute(
            select(ReportUser.user_id, ReportUser.name).where(ReportUser.user_id.in_(user_ids))
        )
        return {r.user_id: r.name for r in rows}

    async def managed_project_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self.session.execute(
            select(ReportProjectMember.project_id).where(
                ReportProjectMember.user_id == user_id,
                ReportProjectMember.project_role == "MANAGER",
                ReportProjectMember.removed.is_(False),
            )
        )
        return list(rows.scalars())

    # --- money -------------------------------------------------------------------
    async def project_groups(self, project_id: uuid.UUID, period: Period | None) -> list[MoneyGroup]:
        """Sums per (task, invoice, billable, currency) of a project's entries in the period."""
        stmt = (
            select(
                E.task_id,
                E.invoice_id,
                E.is_billable,
                E.currency,
                func.sum(E.duration_seconds).label("seconds"),
                func.sum(E.duration_seconds * E.hourly_rate).label("seconds_x_rate"),
            )
            .where(E.project_id == project_id, _counted(), _in_period(period))
            .group_by(E.task_id, E.invoice_id, E.is_billable, E.currency)
        )
        return [
            MoneyGroup(
                key=(r.task_id, r.invoice_id),
                currency=r.currency,
                is_billable=r.is_billable,
                invoiced=r.invoice_id is not None,
                seconds=int(r.seconds),
                seconds_x_rate=Decimal(r.seconds_x_rate),
            )
            for r in await self.session.execute(stmt)
        ]

    async def uninvoiced_billable_by_client(self, client_id: uuid.UUID, period: Period) -> list[MoneyGroup]:
        """Sums per (project, task, currency) of a client's uninvoiced billable entries in the period."""
        stmt = (
            select(
                E.project_id,
                E.task_id,
                E.currency,
                func.sum(E.duration_seconds).label("seconds"),
                func.sum(E.duration_seconds * E.hourly_rate).label("seconds_x_rate"),
            )
            .join(ReportProject, ReportProject.project_id == E.project_id)
            .where(
                ReportProject.client_id == client_id,
                _counted(),
                _in_period(period),
                E.is_billable.is_(True),
                E.invoice_id.is_(None),
            )
            .group_by(E.project_id, E.task_id, E.currency)
        )
        return [
            MoneyGroup(
                key=(r.project_id, r.task_id),
                currency=r.currency,
                is_billable=True,
                invoiced=False,
                seconds=int(r.seconds),
                seconds_x_rate=Decimal(r.seconds_x_rate),
            )
            for r in await self.session.execute(stmt)
        ]

    # --- team --------------------------------------------------------------------
    async def hours_per_project_user(
        self, project_ids: list[uuid.UUID] | None, period: Period
    ) -> list[tuple[uuid.UUID, uuid.UUID, int, int]]:
        """(project, user, seconds, billable seconds) in the period; all projects when None."""
        stmt = (
            select(
                E.project_id,
                E.user_id,
                func.sum(E.duration_seconds).label("seconds"),
                func.coalesce(func.sum(E.duration_seconds).filter(E.is_billable.is_(True)), 0).label(
                    "billable"
                ),
            )
            .where(_counted(), _in_period(period))
            .group_by(E.project_id, E.user_id)
        )
        if project_ids is not None:
            stmt = stmt.where(E.project_id.in_(project_ids))
        return [
            (r.project_id, r.user_id, int(r.seconds), int(r.billable))
            for r in await self.session.execute(stmt)
        ]
