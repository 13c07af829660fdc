"""Reporting's gRPC edge: parse, open one session, run the report, convert."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.reporting.v1 import reporting_pb2 as pb
from timetracking.reporting.v1 import reporting_pb2_grpc
from tt_common.errors import InvalidArgument, NotFound

from . import exports, wire
from .reports_repository import ReportsRepository
from .repository import ProbeRepository
from .service import ReportService, TimesheetService


class ReportingApi(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], timesheets: TimesheetService) -> None:
        self.sessions = sessions
        self.timesheets = timesheets

    @asynccontextmanager
    async def _reports(self) -> AsyncIterator[ReportService]:
        # One snapshot for the whole report: totals and lines agree even while events apply.
        async with self.sessions() as session, session.begin():
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield ReportService(ReportsRepository(session))

    async def GetPipelineProbe(
        self, request: pb.GetPipelineProbeRequest, context: grpc.aio.ServicerContext
    ) -> pb.PipelineProbeStatus:
        try:
            probe_id = uuid.UUID(request.probe_id)
        except ValueError:
            raise InvalidArgument.field("probe_id", "must be a UUID") from None
        async with self.sessions() as session:
            probe = await ProbeRepository(session).get(probe_id)
        if probe is None:
            raise NotFound(f"probe {probe_id} has not arrived (yet)")
        status = pb.PipelineProbeStatus(
            probe_id=str(probe.probe_id),
            lag_seconds=(probe.received_at - probe.emitted_at).total_seconds(),
            note=probe.note,
        )
        status.emitted_at.FromDatetime(probe.emitted_at)
        status.received_at.FromDatetime(probe.received_at)
        return status

    async def GetTimesheet(
        self, request: pb.TimesheetRequest, context: grpc.aio.ServicerContext
    ) -> pb.Timesheet:
        return wire.timesheet(await self.timesheets.timesheet(*wire.timesheet_args(request)))

    async def GetProjectSummary(
        self, request: pb.ProjectSummaryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProjectSummary:
        args = wire.project_summary_args(request)
        async with self._reports() as reports:
            return wire.project_summary(await reports.project_summary(*args))

    async def GetInvoicePreview(
        self, request: pb.InvoicePreviewRequest, context: grpc.aio.ServicerContext
    ) -> pb.InvoicePreview:
        args = wire.invoice_preview_args(request)
        async with self._reports() as reports:
            return wire.invoice_preview(await reports.invoice_preview(*args))

    async def GetTeamReport(
        self, request: pb.TeamReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.TeamReport:
        args = wire.team_report_args(request)
        async with self._reports() as reports:
            return wire.team_report(await reports.team_report(*args))

    async def ExportReport(
        self, request: pb.ExportReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportReportResponse:
        fmt = {
            pb.EXPORT_FORMAT_UNSPECIFIED: "csv",
            pb.EXPORT_FORMAT_CSV: "csv",
            pb.EXPORT_FORMAT_XLSX: "xlsx",
        }
        if request.format not in fmt:
            raise InvalidArgument.field("format", "must be CSV or XLSX")
        kind = request.WhichOneof("report")
        if kind is None:
            raise InvalidArgument.field("report", "choose one of timesheet, project_summary, ...")
        if kind == "timesheet":
            table = exports.timesheet_table(
                await self.timesheets.timesheet(*wire.timesheet_args(request.timesheet))
            )
        else:
            table = await self._export_table(request)
        content_type, filename, content = exports.render(table, fmt[request.format])
        return pb.ExportReportResponse(content_type=content_type, filename=filename, content=content)

    async def _export_table(self, request: pb.ExportReportRequest) -> exports.Table:
        """The reports other than the timesheet, in one snapshot like their gRPC calls."""
        async with self._reports() as reports:
            match request.WhichOneof("report"):
                case "project_summary":
                    return exports.project_summary_table(
                        await reports.project_summary(*wire.project_summary_args(request.project_summary))
                    )
                case "invoice_preview":
                    return exports.invoice_preview_table(
                        await reports.invoice_preview(*wire.invoice_preview_args(request.invoice_preview))
                    )
                case _:
                    return exports.team_report_table(
                        await reports.team_report(*wire.team_report_args(request.team_report))
                    )
