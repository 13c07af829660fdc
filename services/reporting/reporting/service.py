"""The reports: read the model through the repository, apply the rules, return report data.

Nothing here writes; the gRPC edge opens one read-only session per call (the
timesheet reads through its own prepared statements, timesheet_statements.py).
"""

from __future__ import annotations

import uuid
from datetime import date

from tt_common.errors import NotFound

from .reports_repository import Period, ReportsRepository
from .summaries import (
    InvoicePreviewReport,
    ProjectSummaryReport,
    TeamReportData,
    build_invoice_preview,
    build_project_summary,
    build_team_report,
)
from .timesheet import LocalDays, TimesheetReport, build_timesheet, zone_for
from .timesheet_statements import TimesheetStatements


class TimesheetService:
    def __init__(self, statements: TimesheetStatements) -> None:
        self.statements = statements

    async def timesheet(self, user_id: uuid.UUID, from_date: date, to_date: date) -> TimesheetReport:
        """A user who has not reached reporting yet gets UTC days (flagged), not NOT_FOUND:
        their entries may well arrive before the directory event that names their zone."""
        user_name, timezone = await self.statements.user(user_id) or ("", None)
        zone, _, _ = zone_for(timezone)
        start, end = LocalDays(zone).bounds(from_date, to_date)
        return build_timesheet(
            user_id=user_id,
            user_name=user_name,
            timezone=timezone,
            from_date=from_date,
            to_date=to_date,
            rows=await self.statements.entries(user_id, start, end),
        )


class ReportService:
    def __init__(self, repo: ReportsRepository) -> None:
        self.repo = repo

    async def project_summary(self, project_id: uuid.UUID, period: Period | None) -> ProjectSummaryReport:
        project = await self.repo.project(project_id)
        groups = await self.repo.project_groups(project_id, period)
        lifetime = groups if period is None else await self.repo.project_groups(project_id, None)
        if project is None and not lifetime:
            raise NotFound(f"project {project_id} is not known to reporting (yet)")
        task_ids = {g.key[0] for g in groups if g.key[0] is not None}
        return build_project_summary(
            project_id=project_id,
            project_name=project.name if project else "",
            client_id=project.client_id if project else None,
            project_currency=project.currency if project else "",
            budget_hours=project.budget_hours if project else None,
            budget_amount=project.budget_amount if project else None,
            period=period,
            groups=groups,
            lifetime_groups=lifetime,
            task_names=await self.repo.task_names(task_ids),
        )

    async def invoice_preview(self, client_id: uuid.UUID, period: Period) -> InvoicePreviewReport:
        client = await self.repo.client(client_id)
        if client is None:
            raise NotFound(f"client {client_id} is not known to reporting (yet)")
        groups = await self.repo.uninvoiced_billable_by_client(client_id, period)
        return build_invoice_preview(
            client_id=client_id,
            client_name=client.name,
            period=period,
            groups=groups,
            project_names=await self.repo.project_names({g.key[0] for g in groups}),
            task_names=await self.repo.task_names({g.key[1] for g in groups if g.key[1] is not None}),
        )

    async def team_report(self, manager_user_id: uuid.UUID, period: Period) -> TeamReportData:
        """Projects the user manages (project role MANAGER); every project for an ADMIN."""
        manager = await self.repo.user(manager_user_id)
        if manager is None:
            raise NotFound(f"user {manager_user_id} is not known to reporting (yet)")
        project_ids = (
            None if manager.role == "ADMIN" else await self.repo.managed_project_ids(manager_user_id)
        )
        sums = await self.repo.hours_per_project_user(project_ids, period) if project_ids != [] else []
        covered = project_ids if project_ids is not None else sorted({s[0] for s in sums}, key=str)
        return build_team_report(
            manager_user_id=manager_user_id,
            period=period,
            project_ids=covered,
            sums=sums,
            project_names=await self.repo.project_names({s[0] for s in sums}),
            user_names=await self.repo.user_names({s[1] for s in sums}),
        )
