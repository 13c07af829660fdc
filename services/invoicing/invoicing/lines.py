"""Invoice lines and totals: exact arithmetic, one rounding per line.

A line groups one task's entries at one snapshot rate (entries without a task
get their own line; the same task at two rates makes two lines, so every line
reads "hours x rate = amount"). The amount is computed from the exact seconds,
not from the rounded hours shown: amount = seconds x rate / 3600, rounded half
up to the currency's minor unit once, at line level. Tax is rounded once, on
the subtotal. Fractions keep every intermediate value exact.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from tt_common.money import minor_units

NO_TASK = "no-task"


@dataclass(frozen=True)
class BillableEntry:
    # As tracking sends it (text): only counted, sorted and stored here, never inspected.
    entry_id: str
    task_id: uuid.UUID | None
    seconds: int
    hourly_rate: Decimal
    currency: str


@dataclass
class Line:
    grouping_key: str
    task_id: uuid.UUID | None
    description: str
    seconds: int
    hourly_rate: Decimal | None
    amount: Decimal
    entry_ids: list[str] = field(default_factory=list)

    @property
    def hours(self) -> Decimal:
        return (Decimal(self.seconds) / Decimal(3600)).quantize(Decimal("0.01"))


def round_half_up(value: Fraction, currency: str) -> Decimal:
    """Half up (away from zero for the non-negative amounts invoices hold) to the minor unit."""
    places = minor_units(currency)
    scaled = value * 10**places
    units = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(units).scaleb(-places)


def line_amount(seconds: int, hourly_rate: Decimal, currency: str) -> Decimal:
    return round_half_up(Fraction(seconds) * Fraction(hourly_rate) / 3600, currency)


def build_lines(entries: list[BillableEntry], currency: str, task_names: dict[uuid.UUID, str]) -> list[Line]:
    """Group by (task, rate), in a stable order: named tasks alphabetically, then no task."""
    groups: dict[tuple[uuid.UUID | None, Decimal], list[BillableEntry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.task_id, entry.hourly_rate)].append(entry)

    def order(key: tuple[uuid.UUID | None, Decimal]) -> tuple[int, str, Decimal]:
        task_id, rate = key
        return (1, "", rate) if task_id is None else (0, task_names.get(task_id, str(task_id)).lower(), rate)

    lines = []
    for task_id, rate in sorted(groups, key=order):
        members = groups[(task_id, rate)]
        seconds = sum(e.seconds for e in members)
        name = "Time without a task" if task_id is None else task_names.get(task_id, f"Task {task_id}")
        lines.append(
            Line(
                grouping_key=f"{task_id or NO_TASK}@{rate}",
                task_id=task_id,
                description=name,
                seconds=seconds,
                hourly_rate=rate,
                amount=line_amount(seconds, rate, currency),
                entry_ids=sorted(e.entry_id for e in members),
            )
        )
    return lines


def fixed_fee_line(price: Decimal, project_name: str, entries: list[BillableEntry], currency: str) -> Line:
    """A FIXED project bills its price once; the claimed hours are listed, not charged."""
    return Line(
        grouping_key="fixed-fee",
        task_id=None,
        description=f"Fixed fee: {project_name}",
        seconds=sum(e.seconds for e in entries),
        hourly_rate=None,
        amount=round_half_up(Fraction(price), currency),
        entry_ids=sorted(e.entry_id for e in entries),
    )


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def totals(lines: list[Line], tax_rate_percent: Decimal, currency: str) -> Totals:
    return totals_of_amounts([line.amount for line in lines], tax_rate_percent, currency)


def totals_of_amounts(amounts: Iterable[Decimal], tax_rate_percent: Decimal, currency: str) -> Totals:
    """Subtotal, tax (rounded once, on the subtotal) and total of line amounts.

    The consistency checker recomputes stored invoices with it, so the rule lives once.
    """
    subtotal = sum(amounts, Decimal(0))
    tax = round_half_up(Fraction(subtotal) * Fraction(tax_rate_percent) / 100, currency)
    return Totals(subtotal, tax, subtotal + tax)
