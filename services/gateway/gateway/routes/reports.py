"""Reports: timesheet, project summary, client invoice preview, team report.

JSON by default; CSV with `?format=csv` or `Accept: text/csv`. Reports count
under the tighter "heavy" rate-limit quota.

Who sees what: your own timesheet (ADMIN: anyone's; a timesheet spans all of a
user's projects, so a project manager does not see it whole); a project's summary:
its MANAGERs and ADMINs; a client's invoice preview (which spans all the client's
projects): ADMINs; the team report: the projects the caller manages (ADMIN: all).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from timetracking.common.v1 import types_pb2
from timetracking.reporting.v1 import reporting_pb2 as rpb
from tt_common.errors import InvalidArgument

from ..access import may_see_project_report, may_see_timesheet, visible_or_404
from ..auth import CurrentPrincipal, heavy_quota
from ..schemas.common import Timestamp_, ts
from ..schemas.reports import (
    InvoicePreview,
    ProjectSummary,
    ReportFormat,
    TeamReport,
    Timesheet,
    from_pb,
)
from ..state import Gateway, GatewayDep
from . import COMMON, problems

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(heavy_quota)])

MAX_RANGE_DAYS = 366
FormatQuery = Annotated[ReportFormat | None, Query(alias="format", description="json (default) or csv")]


def _responses(model: type, *extra: int) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "content": {
                "application/json": {},
                "text/csv": {"schema": {"type": "string"}},
            },
            "description": f"the {model.__name__} (CSV with format=csv or Accept: text/csv)",
        },
        **COMMON,
        **problems(*extra),
    }


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


async def _export(gw: Gateway, **report: Any) -> Response:
    resp = await gw.clients.read(
        gw.clients.reporting.ExportReport,
        rpb.ExportReportRequest(format=rpb.EXPORT_FORMAT_CSV, **report),
        deadline_s=gw.settings.report_deadline_s,
    )
    filename = "".join(c for c in resp.filename if c.isalnum() or c in "._-") or "report.csv"
    return Response(
        resp.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _period(start: Any, end: Any) -> types_pb2.Period:
    if end <= start:
        raise InvalidArgument.field("end", "must be after start")
    return types_pb2.Period(start=ts(start), end=ts(end))


@router.get("/timesheet", response_model=Timesheet, responses=_responses(Timesheet, 404))
async def timesheet(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    request: Request,
    from_date: Annotated[date, Query(description="first local day, YYYY-MM-DD")],
    to_date: Annotated[date, Query(description="last local day (inclusive)")],
    user_id: Annotated[uuid.UUID | None, Query(description="default: you")] = None,
    fmt: FormatQuery = None,
) -> Any:
    """A user's time per local day (in their time zone) and per project, with the entries."""
    target = str(user_id) if user_id else principal.user_id
    visible_or_404(may_see_timesheet(principal, target), "user")
    if not date(1970, 1, 1) <= from_date <= to_date < date(2100, 1, 1):
        raise InvalidArgument.field("to_date", "must not be before from_date (1970-2099)")
    if to_date - from_date > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidArgument.field("to_date", f"at most {MAX_RANGE_DAYS} days after from_date")
    req = rpb.TimesheetRequest(user_id=target, from_date=from_date.isoformat(), to_date=to_date.isoformat())
    if wants_csv(request, fmt):
        return await _export(gw, timesheet=req)
    resp = await gw.clients.read(
        gw.clients.reporting.GetTimesheet, req, deadline_s=gw.settings.report_deadline_s
    )
    return from_pb(Timesheet, resp)


@router.get(
    "/projects/{project_id}/summary", response_model=ProjectSummary, responses=_responses(ProjectSummary, 404)
)
async def project_summary(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    request: Request,
    project_id: uuid.UUID,
    start: Annotated[
        Timestamp_ | None, Query(description="entries starting at or after (default: all time)")
    ] = None,
    end: Annotated[Timestamp_ | None, Query(description="entries starting before")] = None,
    fmt: FormatQuery = None,
) -> Any:
    """Hours per task, billable vs non-billable, amounts, and budget use (80 % / 100 % flags)."""
    rights = await gw.access.project(principal, str(project_id))
    visible_or_404(may_see_project_report(principal, rights), "project")
    req = rpb.ProjectSummaryRequest(project_id=str(project_id))
    if start is not None or end is not None:
        if start is None or end is None:
            raise InvalidArgument.field(
                "start" if start is None else "end", "give both start and end, or neither"
            )
        req.period.CopyFrom(_period(start, end))
    if wants_csv(request, fmt):
        return await _export(gw, project_summary=req)
    resp = await gw.clients.read(
        gw.clients.reporting.GetProjectSummary, req, deadline_s=gw.settings.report_deadline_s
    )
    return from_pb(ProjectSummary, resp)


@router.get(
    "/clients/{client_id}/invoice-preview",
    response_model=InvoicePreview,
    responses=_responses(InvoicePreview, 404),
)
async def invoice_preview(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    request: Request,
    client_id: uuid.UUID,
    start: Annotated[Timestamp_, Query()],
    end: Annotated[Timestamp_, Query()],
    fmt: FormatQuery = None,
) -> Any:
    """Per project of the client: the uninvoiced billable hours and amount of the period (ADMIN)."""
    visible_or_404(principal.is_admin, "client")
    req = rpb.InvoicePreviewRequest(client_id=str(client_id), period=_period(start, end))
    if wants_csv(request, fmt):
        return await _export(gw, invoice_preview=req)
    resp = await gw.clients.read(
        gw.clients.reporting.GetInvoicePreview, req, deadline_s=gw.settings.report_deadline_s
    )
    return from_pb(InvoicePreview, resp)


@router.get("/team", response_model=TeamReport, responses=_responses(TeamReport, 404))
async def team_report(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    request: Request,
    start: Annotated[Timestamp_, Query()],
    end: Annotated[Timestamp_, Query()],
    fmt: FormatQuery = None,
) -> Any:
    """Hours per user per project over the projects you manage (an ADMIN: every project)."""
    req = rpb.TeamReportRequest(manager_user_id=principal.user_id, period=_period(start, end))
    if wants_csv(request, fmt):
        return await _export(gw, team_report=req)
    resp = await gw.clients.read(
        gw.clients.reporting.GetTeamReport, req, deadline_s=gw.settings.report_deadline_s
    )
    return from_pb(TeamReport, resp)
