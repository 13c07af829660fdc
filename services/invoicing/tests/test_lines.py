"""Line amounts and totals against an independent reference."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from invoicing.lines import BillableEntry, build_lines, fixed_fee_line, line_amount, totals


def reference_amount(seconds: int, rate: str, places: int) -> Decimal:
    # Independent route: Decimal with huge precision, then ROUND_HALF_UP.
    with localcontext() as ctx:
        ctx.prec = 100
        exact = Decimal(seconds) * Decimal(rate) / Decimal(3600)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@pytest.mark.parametrize("seconds", [1, 59, 60, 451, 3599, 3600, 3601, 86_400, 7 * 60 + 31])
@pytest.mark.parametrize(
    ("rate", "currency", "places"),
    [
        ("100.00", "EUR", 2),
        ("99.99", "USD", 2),
        ("0.01", "EUR", 2),
        ("12345.67", "GBP", 2),
        ("10000", "JPY", 0),
        ("15000.50", "JPY", 0),
        ("12.35", "KWD", 3),
    ],
)
def test_line_amount_matches_reference(seconds: int, rate: str, currency: str, places: int) -> None:
    assert line_amount(seconds, Decimal(rate), currency) == reference_amount(seconds, rate, places)


def test_half_up_at_the_boundary() -> None:
    # 18 s at 1.00/h is exactly 0.005 -> 0.01 (half up), not 0.00 (banker's).
    assert line_amount(18, Decimal("1.00"), "EUR") == Decimal("0.01")
    # 1800 s at 1/h is 0.5 JPY -> 1 JPY.
    assert line_amount(1800, Decimal("1"), "JPY") == Decimal("1")


def entry(task: uuid.UUID | None, seconds: int, rate: str) -> BillableEntry:
    return BillableEntry(uuid.uuid4(), task, seconds, Decimal(rate), "EUR")


def test_lines_group_by_task_and_rate_and_round_once_per_line() -> None:
    design, dev = uuid.uuid4(), uuid.uuid4()
    entries = [
        entry(design, 451, "90.00"),
        entry(design, 1, "90.00"),
        entry(dev, 3600, "100.00"),
        entry(dev, 1800, "120.00"),
        entry(None, 60, "80.00"),
    ]
    lines = build_lines(entries, "EUR", {design: "Design", dev: "Development"})
    assert [(line.description, line.seconds, str(line.hourly_rate)) for line in lines] == [
        ("Design", 452, "90.00"),
        ("Development", 3600, "100.00"),
        ("Development", 1800, "120.00"),
        ("Time without a task", 60, "80.00"),
    ]
    # 452 s at 90/h = 11.30 exactly; per-entry rounding would give 11.28 + 0.03 = 11.31.
    assert lines[0].amount == Decimal("11.30")
    assert sum(len(line.entry_ids) for line in lines) == len(entries)


def test_totals_apply_tax_once_on_the_subtotal() -> None:
    lines = build_lines([entry(None, 3600, "100.00"), entry(uuid.uuid4(), 451, "99.99")], "EUR", {})
    t = totals(lines, Decimal("19.00"), "EUR")
    assert t.subtotal == Decimal("100.00") + reference_amount(451, "99.99", 2)
    assert t.tax == (t.subtotal * Decimal("0.19")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert t.total == t.subtotal + t.tax


def test_zero_decimal_currency_totals() -> None:
    lines = build_lines([BillableEntry(uuid.uuid4(), None, 451, Decimal("10000"), "JPY")], "JPY", {})
    t = totals(lines, Decimal("10"), "JPY")
    assert lines[0].amount == Decimal("1253")  # 451/3600*10000 = 1252.78 -> 1253
    assert t.tax == Decimal("125") and t.total == Decimal("1378")
    assert t.total.as_tuple().exponent == 0


def test_fixed_fee_bills_the_price_and_lists_the_hours() -> None:
    entries = [entry(None, 7200, "0"), entry(None, 60, "0")]
    line = fixed_fee_line(Decimal("5000"), "Retainer", entries, "EUR")
    assert line.amount == Decimal("5000.00") and line.seconds == 7260 and line.hourly_rate is None
