"""Money and other decimals: parsed from strings, validated, never floats.

Amounts round half-up to the currency's minor unit (from CLDR via Babel: JPY
has 0 decimals, EUR 2, KWD 3) at line level.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies

from .errors import InvalidArgument


@cache
def _currencies() -> frozenset[str]:
    """Currencies that are legal tender somewhere today (no DEM, no HRK), per CLDR."""
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, tender=True))
    return frozenset(codes)


def currency_codes() -> list[str]:
    """Every code parse_currency accepts, sorted (published as the API schema's enum)."""
    return sorted(_currencies())


def parse_currency(value: str, field: str = "currency") -> str:
    """An ISO 4217 code, upper-cased; InvalidArgument naming `field` otherwise."""
    code = (value or "").strip().upper()
    if code not in _currencies():
        raise InvalidArgument.field(field, f"{value!r} is not an ISO 4217 currency code")
    return code


def minor_units(currency: str) -> int:
    return int(get_currency_precision(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def parse_decimal(
    value: str,
    field: str,
    *,
    places: int = 2,
    minimum: Decimal | None = Decimal(0),
    maximum: Decimal | None = None,
) -> Decimal:
    """A finite decimal with at most `places` decimals, within bounds."""
    raw = (value or "").strip()
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise InvalidArgument.field(field, f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise InvalidArgument.field(field, "must be a finite number")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise InvalidArgument.field(field, f"at most {places} decimal places")
    if minimum is not None and number < minimum:
        raise InvalidArgument.field(field, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise InvalidArgument.field(field, f"must be at most {maximum}")
    return number.quantize(Decimal(1).scaleb(-places))


def parse_optional_decimal(value: str, field: str, **kw: object) -> Decimal | None:
    """Like parse_decimal, but "" means "not set"."""
    if not (value or "").strip():
        return None
    return parse_decimal(value, field, **kw)  # type: ignore[arg-type]


def format_decimal(value: Decimal | None) -> str:
    """The wire form: plain notation, "" for None."""
    return "" if value is None else format(value, "f")
