"""The pure comparison: each difference kind from hand-made rows, and the merge it rests on."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from consistency.check import Scope, check_and_settle
from consistency.compare import (
    ClaimRow,
    Difference,
    EntryRow,
    InvoiceLineRow,
    Kind,
    LineEntryRow,
    UnsortedStream,
    compare_entries,
    compare_invoices,
    entries_on_several_invoices,
    merge_groups,
)

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def ids(n: int) -> list[uuid.UUID]:
    return sorted(uuid.uuid4() for _ in range(n))


def entry(entry_id: uuid.UUID, **kw: object) -> EntryRow:
    base = EntryRow(
        entry_id=entry_id,
        user_id=uuid.UUID(int=1),
        project_id=uuid.UUID(int=2),
        task_id=None,
        description="work",
        tags=("a",),
        start_time=T0,
        end_time=T0 + timedelta(hours=1),
        duration_seconds=3600,
        is_billable=True,
        hourly_rate=Decimal("100.00"),
        currency="EUR",
        invoice_id=None,
        version=1,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def kinds(diffs: list[Difference]) -> list[Kind]:
    return [d.kind for d in diffs]


def test_merge_groups_walks_sorted_streams_in_step() -> None:
    merged = list(merge_groups(lambda x: x, [1, 2, 2, 5], [2, 3], []))
    assert merged == [(1, [[1], [], []]), (2, [[2, 2], [2], []]), (3, [[], [3], []]), (5, [[5], [], []])]


def test_merge_groups_refuses_an_unsorted_stream() -> None:
    with pytest.raises(UnsortedStream):
        list(merge_groups(lambda x: x, [3, 1], [2]))


def test_equal_entries_and_tombstones_are_consistent() -> None:
    a, b, c = ids(3)
    tracking = [entry(a), entry(b, version=3, invoice_id=uuid.UUID(int=9))]
    reporting = [
        entry(a),
        entry(b, version=3, invoice_id=uuid.UUID(int=9), hourly_rate=Decimal("100")),  # 100 == 100.00
        entry(c, deleted=True, version=2),  # deleted in tracking, tombstone in reporting
    ]
    assert list(compare_entries(tracking, reporting)) == []


def test_each_entry_difference_kind() -> None:
    missing, unknown, deleted, running, lag, ahead, mismatch, running_alone = ids(8)
    tracking = [
        entry(missing),
        entry(deleted, version=2),
        entry(running, end_time=None, duration_seconds=0),
        entry(lag, version=3),
        entry(ahead, version=1),
        entry(mismatch, version=2, user_id=uuid.UUID(int=7), duration_seconds=3599),
        entry(running_alone, end_time=None),
    ]
    reporting = [
        entry(unknown),
        entry(deleted, version=2, deleted=True),
        entry(running),
        entry(lag, version=2),
        entry(ahead, version=2),
        entry(mismatch, version=2),
    ]
    diffs = {d.entry_id: d for d in compare_entries(sorted(tracking, key=lambda e: e.entry_id), reporting)}
    assert {k: d.kind for k, d in diffs.items()} == {
        missing: Kind.MISSING_IN_REPORTING,
        unknown: Kind.NOT_IN_TRACKING,
        deleted: Kind.DELETED_ONLY_IN_REPORTING,
        running: Kind.RUNNING_TIMER_IN_REPORTING,
        lag: Kind.VERSION_LAG,
        ahead: Kind.REPORTING_AHEAD,
        mismatch: Kind.FIELD_MISMATCH,
    }
    assert diffs[mismatch].fields == ("user_id", "duration_seconds")
    assert diffs[lag].settleable and not diffs[mismatch].settleable


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project_id", uuid.UUID(int=5)),
        ("task_id", uuid.UUID(int=6)),
        ("start_time", T0 - timedelta(microseconds=1)),
        ("end_time", T0 + timedelta(hours=2)),
        ("is_billable", False),
        ("hourly_rate", Decimal("100.01")),
        ("currency", "USD"),
        ("invoice_id", uuid.UUID(int=8)),
        ("tags", ()),
        ("description", "other"),
    ],
)
def test_every_compared_field_is_noticed(field: str, value: object) -> None:
    (e,) = ids(1)
    (diff,) = compare_entries([entry(e)], [entry(e, **{field: value})])
    assert diff.kind is Kind.FIELD_MISMATCH and diff.fields == (field,)


def invoice(invoice_id: uuid.UUID, lines: list[tuple[uuid.UUID, int, str, str]], **kw: object) -> list:
    """Header+line rows; each line (line_id, seconds, rate, amount). Totals computed at 19 % unless given."""
    subtotal = sum((Decimal(a) for *_, a in lines), Decimal(0))
    tax = (subtotal * Decimal("0.19")).quantize(Decimal("0.01"))
    header = {
        "status": "DRAFT",
        "currency": "EUR",
        "subtotal": subtotal,
        "tax_rate": Decimal("19"),
        "tax": tax,
        "total": subtotal + tax,
        "entries_released": False,
        **kw,
    }
    return [
        InvoiceLineRow(
            invoice_id, **header, line_id=lid, seconds=s, hourly_rate=Decimal(r), amount=Decimal(a)
        )  # type: ignore[arg-type]
        for lid, s, r, a in lines
    ]


def test_a_billed_invoice_matching_its_claims_is_consistent() -> None:
    inv = uuid.uuid4()
    line = uuid.uuid4()
    e1, e2 = ids(2)
    lines = invoice(inv, [(line, 5400, "99.99", "149.99")])  # 1.5 h x 99.99 = 149.985 -> 149.99
    entries = [LineEntryRow(inv, e1, line), LineEntryRow(inv, e2, line)]
    claims = [ClaimRow(inv, e1, 3600, Decimal("99.99")), ClaimRow(inv, e2, 1800, Decimal("99.99"))]
    assert list(compare_invoices(lines, entries, claims, set())) == []


def test_claims_without_an_invoice_are_pending_or_missing() -> None:
    pending, missing = sorted(uuid.uuid4() for _ in range(2))
    e1, e2 = ids(2)
    claims = [ClaimRow(pending, e1, 60, Decimal(1)), ClaimRow(missing, e2, 60, Decimal(1))]
    diffs = list(compare_invoices([], [], claims, {pending}))
    assert [(d.kind, d.invoice_id, d.entry_ids) for d in diffs] == [
        (Kind.CLAIMED_BY_PENDING_GENERATION, pending, (e1,)),
        (Kind.CLAIMED_BY_MISSING_INVOICE, missing, (e2,)),
    ]


@pytest.mark.parametrize(
    ("released", "kind"), [(True, Kind.CLAIMED_AFTER_RELEASE), (False, Kind.VOID_RELEASE_PENDING)]
)
def test_a_void_invoice_still_claiming_entries(released: bool, kind: Kind) -> None:
    inv, line = uuid.uuid4(), uuid.uuid4()
    (e,) = ids(1)
    lines = invoice(inv, [(line, 3600, "10.00", "10.00")], status="VOID", entries_released=released)
    diffs = list(
        compare_invoices(lines, [LineEntryRow(inv, e, line)], [ClaimRow(inv, e, 3600, Decimal(10))], set())
    )
    assert kinds(diffs) == [kind]
    # No longer claimed: the lines stay as history, nothing to report (released or about to be marked so).
    assert list(compare_invoices(lines, [LineEntryRow(inv, e, line)], [], set())) == []


def test_lines_and_claims_that_disagree() -> None:
    inv, line = uuid.uuid4(), uuid.uuid4()
    on_line, claimed_only = ids(2)
    lines = invoice(inv, [(line, 3600, "10.00", "10.00")])
    diffs = list(
        compare_invoices(
            lines, [LineEntryRow(inv, on_line, line)], [ClaimRow(inv, claimed_only, 3600, Decimal(10))], set()
        )
    )
    assert [(d.kind, d.entry_ids) for d in diffs] == [
        (Kind.LINE_ENTRY_NOT_CLAIMED, (on_line,)),
        (Kind.CLAIMED_NOT_ON_LINES, (claimed_only,)),
    ]


def test_line_seconds_rate_amount_and_totals() -> None:
    inv, line = uuid.uuid4(), uuid.uuid4()
    (e,) = ids(1)
    good = invoice(inv, [(line, 3600, "10.00", "10.00")])
    claim = ClaimRow(inv, e, 3600, Decimal("10.00"))
    link = [LineEntryRow(inv, e, line)]
    assert list(compare_invoices(good, link, [claim], set())) == []

    assert kinds(list(compare_invoices(good, link, [replace(claim, duration_seconds=3000)], set()))) == [
        Kind.LINE_SECONDS_MISMATCH
    ]
    assert kinds(list(compare_invoices(good, link, [replace(claim, hourly_rate=Decimal(11))], set()))) == [
        Kind.LINE_RATE_MISMATCH
    ]
    wrong_amount = invoice(inv, [(line, 3600, "10.00", "10.01")])  # totals follow the wrong amount
    assert kinds(list(compare_invoices(wrong_amount, link, [claim], set()))) == [Kind.LINE_AMOUNT_WRONG]
    wrong_total = [replace(r, total=r.total + 1) for r in good]
    assert kinds(list(compare_invoices(wrong_total, link, [claim], set()))) == [Kind.INVOICE_TOTALS_WRONG]


def test_rounding_follows_the_currency_minor_unit() -> None:
    inv, line = uuid.uuid4(), uuid.uuid4()
    (e,) = ids(1)
    # 1 s at 1000 JPY/h = 0.2777 JPY -> 0 (no minor unit); tax 0.
    rows = [
        InvoiceLineRow(
            inv,
            "SENT",
            "JPY",
            Decimal(0),
            Decimal(10),
            Decimal(0),
            Decimal(0),
            False,
            line,
            1,
            Decimal(1000),
            Decimal(0),
        )
    ]
    assert (
        list(
            compare_invoices(rows, [LineEntryRow(inv, e, line)], [ClaimRow(inv, e, 1, Decimal(1000))], set())
        )
        == []
    )


def test_a_fixed_fee_line_is_not_hours_times_rate() -> None:
    inv, line = uuid.uuid4(), uuid.uuid4()
    (e,) = ids(1)
    rows = [
        InvoiceLineRow(
            inv,
            "DRAFT",
            "EUR",
            Decimal(5000),
            Decimal(0),
            Decimal(0),
            Decimal(5000),
            False,
            line,
            60,
            None,
            Decimal(5000),
        )
    ]
    assert (
        list(compare_invoices(rows, [LineEntryRow(inv, e, line)], [ClaimRow(inv, e, 60, Decimal(80))], set()))
        == []
    )


def test_entries_on_several_invoices_name_both() -> None:
    e = uuid.uuid4()
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    (diff,) = entries_on_several_invoices([(e, [a, b])])
    assert diff.kind is Kind.ENTRY_ON_TWO_INVOICES and diff.entry_id == e
    assert str(a) in diff.detail and str(b) in diff.detail


def test_settle_rechecks_only_settleable_differences_until_they_go(monkeypatch: pytest.MonkeyPatch) -> None:
    lagging, broken = ids(2)
    calls: list[Scope | None] = []
    answers = [
        [Difference(Kind.VERSION_LAG, "", lagging), Difference(Kind.FIELD_MISMATCH, "", broken)],
        [Difference(Kind.VERSION_LAG, "", lagging)],
        [],
    ]

    def fake_check(urls: dict[str, str], scope: Scope | None = None):  # type: ignore[no-untyped-def]
        from consistency.check import Result

        calls.append(scope)
        return Result(differences=answers[len(calls) - 1])

    monkeypatch.setattr("consistency.check.check", fake_check)
    now = [0.0]
    result = check_and_settle({}, 10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert kinds(result.differences) == [Kind.FIELD_MISMATCH]  # reported at once, never waited on
    assert calls[1] == Scope([lagging], []) and len(calls) == 3
    assert result.settled_seconds == 2.0


def test_settle_gives_up_when_time_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    (lagging,) = ids(1)

    def fake_check(urls: dict[str, str], scope: Scope | None = None):  # type: ignore[no-untyped-def]
        from consistency.check import Result

        return Result(differences=[Difference(Kind.MISSING_IN_REPORTING, "", lagging)])

    monkeypatch.setattr("consistency.check.check", fake_check)
    now = [0.0]
    result = check_and_settle({}, 3, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert kinds(result.differences) == [Kind.MISSING_IN_REPORTING]
    assert result.settled_seconds == 3.0
