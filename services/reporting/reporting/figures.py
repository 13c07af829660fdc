"""How durations and money are shown: the one place for hours and line rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from tt_common.money import round_money

_SECONDS_PER_HOUR = Decimal(3600)
_CENTI = Decimal("0.01")


def hours(seconds: int) -> Decimal:
    """Hours with 2 places, half-up (27 minutes -> 0.45; 20 seconds -> 0.01)."""
    return (Decimal(seconds) / _SECONDS_PER_HOUR).quantize(_CENTI, rounding=ROUND_HALF_UP)


def hours_text(seconds: int) -> str:
    """hours(seconds) as text. A year's timesheet formats ~750 of these, so whole seconds
    take an integer path: hundredths of an hour, half-up, are (seconds + 18) // 36."""
    if seconds >= 0:
        hundredths = (seconds + 18) // 36
        return f"{hundredths // 100}.{hundredths % 100:02d}"
    return format(hours(seconds), "f")


def line_amount(seconds_x_rate: Decimal, currency: str) -> Decimal:
    """One report line's amount: sum(duration_seconds x hourly rate) / 3600, rounded half-up
    to the currency's minor unit once, for the whole line (never per entry)."""
    return round_money(Decimal(seconds_x_rate) / _SECONDS_PER_HOUR, currency)


def percent(used: Decimal, budget: Decimal) -> Decimal:
    """Utilisation in percent with 2 places; callers ensure budget > 0."""
    return (used * 100 / budget).quantize(_CENTI, rounding=ROUND_HALF_UP)
