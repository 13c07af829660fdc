"""Project summary, client invoice preview and team report: the money and hours rules.

Amounts come from each entry's snapshot rate: a line's amount is
sum(duration_seconds x rate) / 3600, rounded half-up to the currency's minor
unit once per line. A line is what an invoice would show: the billable entries
of one task on one invoice (or not yet invoiced). Every total is a sum of
rounded lines, so invoiced + uninvoiced = billable amount exactly, and the
task lines add up to the project.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from tt_common.errors import FailedPrecondition

from .figures import line_amount, percent
from .reports_repository import MoneyGroup, Period

_SECONDS_PER_HOUR = Decimal(3600)


@dataclass
class Totals:
    total_seconds: int = 0
    billable_seconds: int = 0
    uninvoiced_billable_seconds: int = 0
    uninvoiced_amount: Decimal = Decimal(0)
    invoiced_amount: Decimal = Decimal(0)

    @property
    def non_billable_seconds(self) -> int:
        return self.total_seconds - self.billable_seconds

    @property
    def invoiced_billable_seconds(self) -> int:
        return self.billable_seconds - self.uninvoiced_billable_seconds

    @property
    def billable_amount(self) -> Decimal:
        return self.uninvoiced_amount + self.invoiced_amount

    def add(self, group: MoneyGroup, amount: Decimal) -> None:
        self.total_seconds += group.seconds
        if not group.is_billable:
            return
        self.billable_seconds += group.seconds
        if group.invoiced:
            self.invoiced_amount += amount
        else:
            self.uninvoiced_billable_seconds += group.seconds
            self.uninvoiced_amount += amount


def single_currency(groups: Iterable[MoneyGroup], default: str) -> str:
    currencies = {g.currency for g in groups}
    if len(currencies) > 1:
        raise FailedPrecondition(f"entries in more than one currency: {', '.join(sorted(currencies))}")
    return currencies.pop() if currencies else default


def _zero(currency: str) -> Decimal:
    return line_amount(Decimal(0), currency)


def _totals(groups: Iterable[MoneyGroup], currency: str) -> Totals:
    totals = Totals(uninvoiced_amount=_zero(currency), invoiced_amount=_zero(currency))
    for g in groups:
        totals.add(g, line_amount(g.seconds_x_rate, currency) if g.is_billable else Decimal(0))
    return totals


# --- project summary ---------------------------------------------------------------


@dataclass
class TaskLine:
    task_id: uuid.UUID | None
    task_name: str
    totals: Totals


@dataclass
class Budget:
    budget_hours: Decimal | None
    used_seconds: int
    budget_amount: Decimal | None
    used_amount: Decimal
    currency: str

    @property
    def has_budget_hours(self) -> bool:
        # A budget of 0 is no budget: nothing can be measured against it.
        return self.budget_hours is not None and self.budget_hours > 0

    @property
    def has_budget_amount(self) -> bool:
        return self.budget_amount is not None and self.budget_amount > 0

    @property
    def used_hours_exact(self) -> Decimal:
        return Decimal(self.used_seconds) / _SECONDS_PER_HOUR

    def hours_percent(self) -> Decimal | None:
        return percent(self.used_hours_exact, self.budget_hours) if self.has_budget_hours else None  # type: ignore[arg-type]

    def amount_percent(self) -> Decimal | None:
        return percent(self.used_amount, self.budget_amount) if self.has_budget_amount else None  # type: ignore[arg-type]

    def hours_reached(self, share: Decimal) -> bool:
        return self.has_budget_hours and self.used_hours_exact >= self.budget_hours * share  # type: ignore[operator]

    def amount_reached(self, share: Decimal) -> bool:
        return self.has_budget_amount and self.used_amount >= self.budget_amount * share  # type: ignore[operator]


@dataclass
class ProjectSummaryReport:
    project_id: uuid.UUID
    project_name: str
    client_id: uuid.UUID | None
    currency: str
    period: Period | None
    totals: Totals
    tasks: list[TaskLine]
    budget: Budget


def build_project_summary(
    *,
    project_id: uuid.UUID,
    project_name: str,
    client_id: uuid.UUID | None,
    project_currency: str,
    budget_hours: Decimal | None,
    budget_amount: Decimal | None,
    period: Period | None,
    groups: list[MoneyGroup],
    lifetime_groups: list[MoneyGroup],
    task_names: dict[uuid.UUID, str],
) -> ProjectSummaryReport:
    currency = single_currency([*groups, *lifetime_groups], project_currency)
    by_task: dict[uuid.UUID | None, list[MoneyGroup]] = {}
    for g in groups:
        by_task.setdefault(g.key[0], []).append(g)
    tasks = [
        TaskLine(task_id, task_names.get(task_id, "") if task_id else "", _totals(task_groups, currency))
        for task_id, task_groups in by_task.items()
    ]
    # By name, entries without a task last.
    tasks.sort(key=lambda t: (t.task_id is None, t.task_name.lower(), str(t.task_id)))
    lifetime = _totals(lifetime_groups, currency)
    return ProjectSummaryReport(
        project_id=project_id,
        project_name=project_name,
        client_id=client_id,
        currency=currency,
        period=period,
        totals=_totals(groups, currency),
        tasks=tasks,
        budget=Budget(
            budget_hours, lifetime.total_seconds, budget_amount, lifetime.billable_amount, currency
        ),
    )


# --- invoice preview ---------------------------------------------------------------


@dataclass
class PreviewLine:
    task_id: uuid.UUID | None
    task_name: str
    seconds: int
    amount: Decimal


@dataclass
class PreviewProject:
    project_id: uuid.UUID
    project_name: str
    currency: str
    lines: list[PreviewLine] = field(default_factory=list)

    @property
    def seconds(self) -> int:
        return sum(line.seconds for line in self.lines)

    @property
    def amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), _zero(self.currency))


@dataclass
class InvoicePreviewReport:
    client_id: uuid.UUID
    client_name: str
    period: Period
    projects: list[PreviewProject]

    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for p in self.projects:
            out[p.currency] = out.get(p.currency, _zero(p.currency)) + p.amount
        return dict(sorted(out.items()))


def build_invoice_preview(
    *,
    client_id: uuid.UUID,
    client_name: str,
    period: Period,
    groups: list[MoneyGroup],
    project_names: dict[uuid.UUID, str],
    task_names: dict[uuid.UUID, str],
) -> InvoicePreviewReport:
    by_project: dict[uuid.UUID, list[MoneyGroup]] = {}
    for g in groups:
        by_project.setdefault(g.key[0], []).append(g)
    projects = []
    for project_id, project_groups in by_project.items():
        currency = single_currency(project_groups, "")
        project = PreviewProject(project_id, project_names.get(project_id, ""), currency)
        for g in project_groups:
            task_id = g.key[1]
            name = task_names.get(task_id, "") if task_id else ""
            project.lines.append(
                PreviewLine(task_id, name, g.seconds, line_amount(g.seconds_x_rate, currency))
            )
        project.lines.sort(key=lambda t: (t.task_id is None, t.task_name.lower(), str(t.task_id)))
        projects.append(project)
    projects.sort(key=lambda p: (p.project_name.lower(), str(p.project_id)))
    return InvoicePreviewReport(client_id, client_name, period, projects)


# --- team report -------------------------------------------------------------------


@dataclass
class TeamRow:
    project_id: uuid.UUID
    project_name: str
    user_id: uuid.UUID
    user_name: str
    seconds: int
    billable_seconds: int


@dataclass
class TeamReportData:
    manager_user_id: uuid.UUID
    period: Period
    project_ids: list[uuid.UUID]
    rows: list[TeamRow]

    def per_user(self) -> list[tuple[uuid.UUID, str, int, int]]:
        users: dict[uuid.UUID, list] = {}
        for r in self.rows:
            acc = users.setdefault(r.user_id, [r.user_name, 0, 0])
            acc[1] += r.seconds
            acc[2] += r.billable_seconds
        out = [(uid, name, s, b) for uid, (name, s, b) in users.items()]
        return sorted(out, key=lambda u: (u[1].lower(), str(u[0])))

    @property
    def total_seconds(self) -> int:
        return sum(r.seconds for r in self.rows)


def build_team_report(
    *,
    manager_user_id: uuid.UUID,
    period: Period,
    project_ids: list[uuid.UUID],
    sums: list[tuple[uuid.UUID, uuid.UUID, int, int]],
    project_names: dict[uuid.UUID, str],
    user_names: dict[uuid.UUID, str],
) -> TeamReportData:
    rows = [
        TeamRow(pid, project_names.get(pid, ""), uid, user_names.get(uid, ""), seconds, billable)
        for pid, uid, seconds, billable in sums
    ]
    rows.sort(key=lambda r: (r.project_name.lower(), str(r.project_id), r.user_name.lower(), str(r.user_id)))
    return TeamReportData(manager_user_id, period, sorted(project_ids, key=str), rows)
