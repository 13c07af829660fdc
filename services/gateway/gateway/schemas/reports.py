"""Reports as JSON (the same figures the CSV exports carry)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict

ReportFormat = Literal["json", "csv"]

M = TypeVar("M", bound=BaseModel)


def from_pb(model: type[M], msg: Message) -> M:
    raw: dict[str, Any] = MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return model.model_validate(raw)


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Money(Out):
    amount: str
    currency: str


class Period(Out):
    start: datetime | None = None
    end: datetime | None = None


class EntryDay(Out):
    date: str
    seconds: int


class TimesheetDay(Out):
    date: str
    seconds: int
    hours: str
    billable_seconds: int
    billable_hours: str


class TimesheetProject(Out):
    project_id: str
    project_name: str
    seconds: int
    hours: str
    billable_seconds: int
    billable_hours: str


class TimesheetEntry(Out):
    entry_id: str
    project_id: str
    project_name: str
    task_id: str
    task_name: str
    description: str
    tags: list[str]
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_seconds: int
    is_billable: bool
    invoice_id: str
    days: list[EntryDay]


class Timesheet(Out):
    user_id: str
    user_name: str
    timezone: str
    timezone_known: bool
    from_date: str
    to_date: str
    days: list[TimesheetDay]
    projects: list[TimesheetProject]
    entries: list[TimesheetEntry]
    total_seconds: int
    total_hours: str
    billable_seconds: int
    billable_hours: str


class Totals(Out):
    total_seconds: int
    total_hours: str
    billable_seconds: int
    billable_hours: str
    non_billable_seconds: int
    non_billable_hours: str
    billable_amount: Money | None = None
    uninvoiced_billable_seconds: int
    uninvoiced_billable_hours: str
    uninvoiced_amount: Money | None = None
    invoiced_billable_seconds: int
    invoiced_billable_hours: str
    invoiced_amount: Money | None = None


class TaskSummary(Out):
    task_id: str
    task_name: str
    totals: Totals | None = None


class BudgetStatus(Out):
    has_budget_hours: bool
    budget_hours: str
    used_hours: str
    hours_utilisation_percent: str
    hours_reached_80: bool
    hours_reached_100: bool
    has_budget_amount: bool
    budget_amount: Money | None = None
    used_amount: Money | None = None
    amount_utilisation_percent: str
    amount_reached_80: bool
    amount_reached_100: bool


class ProjectSummary(Out):
    project_id: str
    project_name: str
    client_id: str
    currency: str
    period: Period | None = None
    totals: Totals | None = None
    tasks: list[TaskSummary]
    budget: BudgetStatus | None = None


class InvoicePreviewLine(Out):
    task_id: str
    task_name: str
    seconds: int
    hours: str
    amount: Money | None = None


class InvoicePreviewProject(Out):
    project_id: str
    project_name: str
    uninvoiced_billable_seconds: int
    uninvoiced_billable_hours: str
    uninvoiced_amount: Money | None = None
    lines: list[InvoicePreviewLine]


class InvoicePreview(Out):
    client_id: str
    client_name: str
    period: Period | None = None
    projects: list[InvoicePreviewProject]
    totals: list[Money]


class TeamReportRow(Out):
    project_id: str
    project_name: str
    user_id: str
    user_name: str
    seconds: int
    hours: str
    billable_seconds: int
    billable_hours: str


class TeamMemberTotal(Out):
    user_id: str
    user_name: str
    seconds: int
    hours: str
    billable_seconds: int
    billable_hours: str


class TeamReport(Out):
    manager_user_id: str
    period: Period | None = None
    project_ids: list[str]
    rows: list[TeamReportRow]
    users: list[TeamMemberTotal]
    total_seconds: int
    total_hours: str
