"""Property-based tests (hypothesis) of the kit's money rounding and page tokens.

Money is checked against an independent reference (Fraction arithmetic, half-up by
hand); page tokens must round-trip, and anything else must be refused as
InvalidArgument naming page_token, never another exception (which would be a 5xx).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tt_common import pagination
from tt_common.errors import InvalidArgument
from tt_common.money import format_decimal, minor_units, parse_decimal, round_money

CURRENCIES = {"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3, "CHF": 2}

amounts = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False)


def reference_half_up(value: Fraction, places: int) -> Fraction:
    scaled = value * 10**places
    floor = scaled.numerator // scaled.denominator
    return Fraction(floor + (1 if scaled - floor >= Fraction(1, 2) else 0), 10**places)


@settings(max_examples=300)
@given(amount=amounts, currency=st.sampled_from(sorted(CURRENCIES)))
@example(amount=Decimal("0.005"), currency="EUR")
@example(amount=Decimal("0.5"), currency="JPY")
@example(amount=Decimal("2.5"), currency="JPY")
@example(amount=Decimal("0.0005"), currency="KWD")
def test_round_money_is_half_up_at_the_minor_unit(amount: Decimal, currency: str) -> None:
    places = CURRENCIES[currency]
    assert minor_units(currency) == places
    rounded = round_money(amount, currency)
    assert Fraction(rounded) == reference_half_up(Fraction(amount), places)
    assert -rounded.as_tuple().exponent == places  # type: ignore[operator]


@given(text=st.text(max_size=40))
@example(text="NaN")
@example(text="-Infinity")
@example(text="1e999999999")
@example(text="0.001")
@example(text="-1")
def test_parse_decimal_accepts_or_names_the_field(text: str) -> None:
    try:
        value = parse_decimal(text, "hourly_rate", places=2, maximum=Decimal(10**6))
    except InvalidArgument as exc:
        assert exc.violations[0].field == "hourly_rate"
        return
    assert value.is_finite() and Decimal(0) <= value <= Decimal(10**6)
    assert parse_decimal(format_decimal(value), "hourly_rate") == value  # the wire form round-trips


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(at=moments, key=st.uuids())
def test_time_id_tokens_round_trip(at: datetime, key: uuid.UUID) -> None:
    token = pagination.encode_token(at.isoformat(), key)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert pagination.decode_time_id_token(token) == (at, key)
    assert pagination.decode_time_id_token("") is None


@given(serial=st.integers(min_value=0, max_value=2**63 - 1))
def test_serial_tokens_round_trip(serial: int) -> None:
    assert pagination.decode_serial_token(pagination.encode_token(serial)) == serial


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
tampered = st.one_of(
    st.text(max_size=60),  # not base64 at all
    st.binary(max_size=60).map(_b64),  # base64 of garbage
    json_values.map(lambda v: _b64(json.dumps(v).encode())),  # JSON of the wrong shape
    st.lists(st.text(max_size=40), min_size=1, max_size=3).map(  # the right shape, wrong contents
        lambda v: _b64(json.dumps(v).encode())
    ),
)


@settings(max_examples=400)
@given(token=tampered)
@example(token=_b64(b'["2026-01-01T00:00:00","00000000-0000-0000-0000-000000000000"]'))  # naive
@example(token=_b64(b'["9999-12-31T23:00:00-05:00","00000000-0000-0000-0000-000000000000"]'))
@example(token=_b64(b'["0001-01-01T00:30:00+01:00","00000000-0000-0000-0000-000000000000"]'))
@example(token=_b64('["²"]'.encode()))  # str.isdigit() is True, int() refuses it
@example(token=_b64(b'["99999999999999999999"]'))  # beyond bigint
def test_tampered_tokens_are_refused_cleanly(token: str) -> None:
    for decode in (pagination.decode_time_id_token, pagination.decode_serial_token):
        try:
            decoded = decode(token)
        except InvalidArgument as exc:
            assert exc.violations[0].field == "page_token"
            continue
        # Whatever decodes is something the API could have issued itself.
        if isinstance(decoded, tuple):
            at, key = decoded
            assert at.tzinfo is not None and isinstance(key, uuid.UUID)
            at.astimezone(UTC) + timedelta(0)
        elif decoded is not None:
            assert 0 <= decoded <= 2**63 - 1


def test_page_size_bounds() -> None:
    assert pagination.page_size(0) == pagination.DEFAULT_PAGE_SIZE
    assert pagination.page_size(10**9) == pagination.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        pagination.page_size(-1)
