"""Reports as files: one table per report, as CSV (UTF-8) or XLSX (openpyxl).

Numbers keep their exact value: hours and amounts are Decimals (numeric cells
in XLSX, plain decimal text in CSV). Text a user typed (descriptions, names,
tags) is defused against spreadsheet formula injection: a cell that starts
with = + - @ or a control character gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openpyxl import Workbook

from .figures import hours
from .summaries import InvoicePreviewReport, ProjectSummaryReport, TeamReportData
from .timesheet import TimesheetReport

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Cell = str | int | Decimal | bool | None


@dataclass
class Table:
    name: str  # file name stem and sheet title
    header: Sequence[str]
    rows: list[Sequence[Cell]]


def _defused(value: Cell) -> Cell:
    if isinstance(value, str) and value and (value[0] in "=+-@" or value[0] in "\t\r\n"):
        return "'" + value
    return value


def _id(value: Any) -> str:
    return str(value) if value else ""


def timesheet_table(r: TimesheetReport) -> Table:
    """One row per entry and local day (an entry across midnight gives two rows)."""
    rows: list[Sequence[Cell]] = []
    for e in r.entries:
        row = e.row
        for day, seconds in e.days:
            rows.append(
                [
                    day.isoformat(),
                    _id(row.entry_id),
                    row.project_name or "",
                    row.task_name or "",
                    row.description,
                    ", ".join(row.tags),
                    row.start_time.isoformat(),
                    row.end_time.isoformat(),
                    seconds,
                    hours(seconds),
                    row.is_billable,
                    _id(row.invoice_id),
                ]
            )
    header = ["date", "entry_id", "project", "task", "description", "tags", "start_utc", "end_utc"]
    header += ["seconds", "hours", "billable", "invoice_id"]
    name = f"timesheet-{r.user_id}-{r.from_date.isoformat()}-{r.to_date.isoformat()}"
    return Table(name, header, rows)


def project_summary_table(r: ProjectSummaryReport) -> Table:
    rows: list[Sequence[Cell]] = []
    lines = [(t.task_name or ("(no task)" if t.task_id is None else ""), t.totals) for t in r.tasks]
    for name, t in [*lines, ("TOTAL", r.totals)]:
        rows.append(
            [
                name,
                hours(t.total_seconds),
                hours(t.billable_seconds),
                hours(t.non_billable_seconds),
                t.billable_amount,
                hours(t.uninvoiced_billable_seconds),
                t.uninvoiced_amount,
                hours(t.invoiced_billable_seconds),
                t.invoiced_amount,
                r.currency,
            ]
        )
    header = ["task", "hours", "billable_hours", "non_billable_hours", "billable_amount"]
    header += ["uninvoiced_hours", "uninvoiced_amount", "invoiced_hours", "invoiced_amount", "currency"]
    return Table(f"project-summary-{r.project_id}", header, rows)


def invoice_preview_table(r: InvoicePreviewReport) -> Table:
    rows: list[Sequence[Cell]] = []
    for p in r.projects:
        for line in p.lines:
            task = line.task_name or ("(no task)" if line.task_id is None else "")
            rows.append([p.project_name, task, hours(line.seconds), line.amount, p.currency])
    header = ["project", "task", "uninvoiced_billable_hours", "amount", "currency"]
    return Table(f"invoice-preview-{r.client_id}", header, rows)


def team_report_table(r: TeamReportData) -> Table:
    rows: list[Sequence[Cell]] = [
        [
            x.project_name,
            x.user_name,
            _id(x.user_id),
            hours(x.seconds),
            hours(x.billable_seconds),
        ]
        for x in r.rows
    ]
    header = ["project", "user", "user_id", "hours", "billable_hours"]
    return Table(f"team-report-{r.manager_user_id}", header, rows)


def to_csv(table: Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow(
            ["" if c is None else str(c).lower() if isinstance(c, bool) else _defused(c) for c in row]
        )
    return buffer.getvalue().encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=table.name.split("-", 2)[0][:31] or "report")
    sheet.append(list(table.header))
    for row in table.rows:
        sheet.append([_defused(c) for c in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render(table: Table, fmt: str) -> tuple[str, str, bytes]:
    """(content type, file name, bytes) of a table as "csv" or "xlsx"."""
    if fmt == "xlsx":
        return XLSX_TYPE, f"{table.name}.xlsx", to_xlsx(table)
    return CSV_TYPE, f"{table.name}.csv", to_csv(table)
