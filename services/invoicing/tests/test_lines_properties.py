"""Property-based tests (hypothesis) of invoice lines: half-up once per line at the
currency's minor unit (JPY 0 decimals, KWD 3), against a Decimal reference."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from invoicing.lines import BillableEntry, build_lines, line_amount, totals

CURRENCIES = {"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3}
rates = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)
seconds = st.integers(min_value=0, max_value=400 * 86_400)


def reference(seconds: int, rate: Decimal, places: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200
        exact = Decimal(seconds) * rate / Decimal(3600)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@settings(max_examples=400)
@given(seconds=seconds, rate=rates, currency=st.sampled_from(sorted(CURRENCIES)))
def test_line_amount_matches_the_decimal_reference(seconds: int, rate: Decimal, currency: str) -> None:
    amount = line_amount(seconds, rate, currency)
    assert amount == reference(seconds, rate, CURRENCIES[currency])
    assert -amount.as_tuple().exponent == CURRENCIES[currency]  # type: ignore[operator]


tasks = [uuid.UUID(int=i) for i in range(1, 4)]
entries = st.lists(
    st.builds(
        lambda task, secs, rate: BillableEntry(uuid.uuid4(), task, secs, rate, "EUR"),
        st.sampled_from([None, *tasks]),
        st.integers(min_value=1, max_value=86_400),
        st.sampled_from([Decimal("0.00"), Decimal("33.33"), Decimal("90.00"), Decimal("120.50")]),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(
    batch=entries, currency=st.sampled_from(sorted(CURRENCIES)), tax=st.sampled_from(["0", "7.7", "19", "25"])
)
def test_lines_bill_every_entry_once_and_round_per_line(
    batch: list[BillableEntry], currency: str, tax: str
) -> None:
    lines = build_lines(batch, currency, {t: f"Task {i}" for i, t in enumerate(tasks)})
    billed = [e for line in lines for e in line.entry_ids]
    assert sorted(billed) == sorted(e.entry_id for e in batch)  # each entry on exactly one line
    for line in lines:
        members = [e for e in batch if e.entry_id in set(line.entry_ids)]
        assert {(e.task_id, e.hourly_rate) for e in members} == {(line.task_id, line.hourly_rate)}
        assert line.seconds == sum(e.seconds for e in members)
        assert line.hourly_rate is not None
        assert line.amount == reference(line.seconds, line.hourly_rate, CURRENCIES[currency])
    result = totals(lines, Decimal(tax), currency)
    places = CURRENCIES[currency]
    assert result.subtotal == sum((line.amount for line in lines), Decimal(0))
    with localcontext() as ctx:
        ctx.prec = 200
        expected_tax = (result.subtotal * Decimal(tax) / 100).quantize(
            Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP
        )
    assert result.tax == expected_tax
    assert result.total == result.subtotal + result.tax
