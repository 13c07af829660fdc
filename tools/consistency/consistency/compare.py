"""The pure comparison: sorted row streams in, differences out.

Every input is an iterator sorted by its key (entry id, or invoice id then
entry id), so a comparison holds one key's rows at a time, never a whole
table: tracking and reporting with a million entries each are merged like two
sorted files. Nothing here touches a database; sources.py feeds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from itertools import groupby
from typing import Any, TypeVar

from invoicing.lines import line_amount, totals_of_amounts


class Kind(StrEnum):
    """What kind of difference; the value is what --json prints."""

    MISSING_IN_REPORTING = "missing_in_reporting"
    NOT_IN_TRACKING = "not_in_tracking"
    DELETED_ONLY_IN_REPORTING = "deleted_only_in_reporting"
    RUNNING_TIMER_IN_REPORTING = "running_timer_in_reporting"
    VERSION_LAG = "version_lag"
    REPORTING_AHEAD = "reporting_ahead"
    FIELD_MISMATCH = "field_mismatch"
    CLAIMED_BY_PENDING_GENERATION = "claimed_by_pending_generation"
    CLAIMED_BY_MISSING_INVOICE = "claimed_by_missing_invoice"
    VOID_RELEASE_PENDING = "void_release_pending"
    CLAIMED_AFTER_RELEASE = "claimed_after_release"
    LINE_ENTRY_NOT_CLAIMED = "line_entry_not_claimed"
    CLAIMED_NOT_ON_LINES = "claimed_not_on_lines"
    ENTRY_ON_TWO_INVOICES = "entry_on_two_invoices"
    LINE_SECONDS_MISMATCH = "line_seconds_mismatch"
    LINE_RATE_MISMATCH = "line_rate_mismatch"
    LINE_AMOUNT_WRONG = "line_amount_wrong"
    INVOICE_TOTALS_WRONG = "invoice_totals_wrong"


DESCRIPTIONS: dict[Kind, str] = {
    Kind.MISSING_IN_REPORTING: "stopped entry in tracking that reporting does not have",
    Kind.NOT_IN_TRACKING: "entry live in reporting that tracking does not have (deleted or never existed)",
    Kind.DELETED_ONLY_IN_REPORTING: "entry deleted in reporting but still present in tracking",
    Kind.RUNNING_TIMER_IN_REPORTING: "running timer (private to tracking) present in reporting",
    Kind.VERSION_LAG: "reporting holds an older version than tracking",
    Kind.REPORTING_AHEAD: "reporting holds a newer version than tracking",
    Kind.FIELD_MISMATCH: "same version, different fields",
    Kind.CLAIMED_BY_PENDING_GENERATION: "entries claimed by an invoice whose generation is still pending",
    Kind.CLAIMED_BY_MISSING_INVOICE: "entries claimed by an invoice id that invoicing does not have",
    Kind.VOID_RELEASE_PENDING: "entries still claimed by a VOID invoice whose release is pending",
    Kind.CLAIMED_AFTER_RELEASE: "entries still claimed by a VOID invoice that released them",
    Kind.LINE_ENTRY_NOT_CLAIMED: "entries on an invoice's lines that tracking does not show claimed by it",
    Kind.CLAIMED_NOT_ON_LINES: "entries claimed by an invoice that are on none of its lines",
    Kind.ENTRY_ON_TWO_INVOICES: "entry billed on the lines of more than one (non-VOID) invoice, or twice",
    Kind.LINE_SECONDS_MISMATCH: "line seconds differ from the sum of its entries' durations",
    Kind.LINE_RATE_MISMATCH: "line rate differs from the snapshot rate of its entries",
    Kind.LINE_AMOUNT_WRONG: "line amount is not seconds x rate / 3600, rounded half up per currency",
    Kind.INVOICE_TOTALS_WRONG: "subtotal, tax or total do not follow from the line amounts",
}

# Differences that a write still travelling between services explains: an event
# in the outbox or on Kafka, a generation between claim and save, a release
# after a void. --settle-seconds re-checks these until they go or time runs out.
SETTLEABLE: frozenset[Kind] = frozenset(
    {
        Kind.MISSING_IN_REPORTING,
        Kind.NOT_IN_TRACKING,
        Kind.VERSION_LAG,
        Kind.CLAIMED_BY_PENDING_GENERATION,
        Kind.VOID_RELEASE_PENDING,
    }
)

ENTRY_FIELDS = (
    "user_id",
    "project_id",
    "task_id",
    "description",
    "tags",
    "start_time",
    "end_time",
    "duration_seconds",
    "is_billable",
    "hourly_rate",
    "currency",
    "invoice_id",
)


@dataclass(frozen=True)
class Difference:
    kind: Kind
    detail: str
    entry_id: uuid.UUID | None = None
    invoice_id: uuid.UUID | None = None
    entry_ids: tuple[uuid.UUID, ...] = ()
    fields: tuple[str, ...] = ()

    @property
    def settleable(self) -> bool:
        return self.kind in SETTLEABLE

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "detail": self.detail}
        if self.entry_id:
            out["entry_id"] = str(self.entry_id)
        if self.invoice_id:
            out["invoice_id"] = str(self.invoice_id)
        if self.entry_ids:
            out["entry_ids"] = [str(e) for e in self.entry_ids]
        if self.fields:
            out["fields"] = list(self.fields)
        return out


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One entry as tracking stores it, or as reporting's read model holds it."""

    entry_id: uuid.UUID
    user_id: uuid.UUID
    project_id: uuid.UUID
    task_id: uuid.UUID | None
    description: str
    tags: tuple[str, ...]
    start_time: datetime
    end_time: datetime | None
    duration_seconds: int
    is_billable: bool
    hourly_rate: Decimal
    currency: str
    invoice_id: uuid.UUID | None
    version: int
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class InvoiceLineRow:
    """An invoice header joined with one of its lines (line fields None for an invoice without lines)."""

    invoice_id: uuid.UUID
    status: str
    currency: str
    subtotal: Decimal
    tax_rate: Decimal
    tax: Decimal
    total: Decimal
    entries_released: bool
    line_id: uuid.UUID | None = None
    seconds: int | None = None
    hourly_rate: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LineEntryRow:
    """One entry id on one invoice line (invoicing's side of a claim)."""

    invoice_id: uuid.UUID
    entry_id: uuid.UUID
    line_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ClaimRow:
    """One entry claimed by an invoice (tracking's side of a claim)."""

    invoice_id: uuid.UUID
    entry_id: uuid.UUID
    duration_seconds: int
    hourly_rate: Decimal


K = TypeVar("K")


class UnsortedStream(ValueError):
    """A source yielded keys out of order: merging it would report false differences."""


def merge_groups(key: Callable[[Any], K], *streams: Iterable[Any]) -> Iterator[tuple[K, list[list[Any]]]]:
    """Walk streams sorted by `key` in step; yield each key with every stream's rows for it.

    Holds one key's rows per stream at a time: the memory a merge needs is
    bounded by the largest group (one entry, or one invoice's entries).
    """
    iters = [groupby(stream, key) for stream in streams]
    heads: list[tuple[Any, Iterator[Any]] | None] = [next(it, None) for it in iters]
    last: Any = None
    while any(h is not None for h in heads):
        current = min(h[0] for h in heads if h is not None)
        if last is not None and not last < current:
            raise UnsortedStream(f"key {current} after {last}: sources must be sorted ascending")
        last = current
        groups: list[list[Any]] = []
        for i, head in enumerate(heads):
            if head is not None and head[0] == current:
                groups.append(list(head[1]))
                heads[i] = next(iters[i], None)
            else:
                groups.append([])
        yield current, groups


def _single(rows: list[Any], what: str) -> Any:
    if len(rows) > 1:
        raise UnsortedStream(f"{what} yielded the key {rows[0].entry_id} twice")
    return rows[0] if rows else None


def compare_entries(tracking: Iterable[EntryRow], reporting: Iterable[EntryRow]) -> Iterator[Difference]:
    """Tracking's entries against reporting's read model, both sorted by entry id."""
    for entry_id, (t_rows, r_rows) in merge_groups(lambda row: row.entry_id, tracking, reporting):
        t: EntryRow | None = _single(t_rows, "tracking")
        r: EntryRow | None = _single(r_rows, "reporting")
        if t is None:
            assert r is not None
            if not r.deleted:
                yield Difference(
                    Kind.NOT_IN_TRACKING,
                    f"reporting has version {r.version}; tracking has no such entry",
                    entry_id,
                )
            continue
        running = t.end_time is None
        if r is None:
            if not running:
                yield Difference(Kind.MISSING_IN_REPORTING, f"tracking version {t.version}", entry_id)
            continue
        if running:
            yield Difference(Kind.RUNNING_TIMER_IN_REPORTING, f"reporting version {r.version}", entry_id)
        elif t.version > r.version:
            yield Difference(
                Kind.VERSION_LAG, f"tracking version {t.version}, reporting version {r.version}", entry_id
            )
        elif t.version < r.version:
            yield Difference(
                Kind.REPORTING_AHEAD, f"tracking version {t.version}, reporting version {r.version}", entry_id
            )
        elif r.deleted:
            yield Difference(
                Kind.DELETED_ONLY_IN_REPORTING, f"deleted at version {r.version} in reporting only", entry_id
            )
        else:
            fields = tuple(f for f in ENTRY_FIELDS if getattr(t, f) != getattr(r, f))
            if fields:
                shown = "; ".join(
                    f"{f}: tracking {getattr(t, f)!s}, reporting {getattr(r, f)!s}" for f in fields
                )
                yield Difference(
                    Kind.FIELD_MISMATCH, f"version {t.version}: {shown}", entry_id, fields=fields
                )


@dataclass
class _Line:
    row: InvoiceLineRow
    entry_ids: list[uuid.UUID] = field(default_factory=list)


def compare_invoices(
    lines: Iterable[InvoiceLineRow],
    line_entries: Iterable[LineEntryRow],
    claims: Iterable[ClaimRow],
    pending_generations: set[uuid.UUID],
) -> Iterator[Difference]:
    """Invoicing's invoices and lines against tracking's claims.

    `lines` is sorted by invoice id, `line_entries` and `claims` by invoice id
    then entry id. `pending_generations` holds the invoice ids of generation
    requests still PENDING in invoicing (claimed in tracking, not saved yet).
    """
    for invoice_id, (line_rows, entry_rows, claim_rows) in merge_groups(
        lambda row: row.invoice_id, lines, line_entries, claims
    ):
        claimed = {c.entry_id: c for c in claim_rows}
        if not line_rows:
            if claimed:
                kind = (
                    Kind.CLAIMED_BY_PENDING_GENERATION
                    if invoice_id in pending_generations
                    else Kind.CLAIMED_BY_MISSING_INVOICE
                )
                yield _claims(kind, invoice_id, claimed, "invoicing has no such invoice")
            continue
        header: InvoiceLineRow = line_rows[0]
        by_line = {row.line_id: _Line(row) for row in line_rows if row.line_id is not None}
        for e in entry_rows:
            by_line[e.line_id].entry_ids.append(e.entry_id)
        yield from _check_amounts(header, by_line)
        if header.status == "VOID":
            if claimed:
                if header.entries_released:
                    yield _claims(Kind.CLAIMED_AFTER_RELEASE, invoice_id, claimed, "VOID, entries released")
                else:
                    yield _claims(Kind.VOID_RELEASE_PENDING, invoice_id, claimed, "VOID, release pending")
            continue
        on_lines = {e.entry_id for e in entry_rows}
        not_claimed = sorted(on_lines - claimed.keys())
        if not_claimed:
            yield Difference(
                Kind.LINE_ENTRY_NOT_CLAIMED,
                f"{len(not_claimed)} entries on the {header.status} invoice's lines",
                invoice_id=invoice_id,
                entry_ids=tuple(not_claimed),
            )
        not_on_lines = sorted(claimed.keys() - on_lines)
        if not_on_lines:
            yield Difference(
                Kind.CLAIMED_NOT_ON_LINES,
                f"{len(not_on_lines)} entries claimed by the {header.status} invoice",
                invoice_id=invoice_id,
                entry_ids=tuple(not_on_lines),
            )
        yield from _check_lines_against_claims(invoice_id, by_line, claimed)


def _claims(kind: Kind, invoice_id: uuid.UUID, claimed: dict[uuid.UUID, ClaimRow], why: str) -> Difference:
    return Difference(
        kind,
        f"{len(claimed)} entries claimed; {why}",
        invoice_id=invoice_id,
        entry_ids=tuple(sorted(claimed)),
    )


def _check_amounts(header: InvoiceLineRow, by_line: dict[uuid.UUID, _Line]) -> Iterator[Difference]:
    """Each hourly line's amount, then the totals, by invoicing's own rounding rules."""
    for line_id, line in by_line.items():
        row = line.row
        if row.hourly_rate is None or row.seconds is None or row.amount is None:
            continue  # a fixed-fee line: its amount is the project's price, not hours x rate
        expected = line_amount(row.seconds, row.hourly_rate, header.currency)
        if row.amount != expected:
            yield Difference(
                Kind.LINE_AMOUNT_WRONG,
                f"line {line_id}: {row.seconds} s x {row.hourly_rate} = {row.amount}, expected {expected}",
                invoice_id=header.invoice_id,
            )
    amounts = [line.row.amount for line in by_line.values() if line.row.amount is not None]
    expected_totals = totals_of_amounts(amounts, header.tax_rate, header.currency)
    stored = (header.subtotal, header.tax, header.total)
    wanted = (expected_totals.subtotal, expected_totals.tax, expected_totals.total)
    if stored != wanted:
        yield Difference(
            Kind.INVOICE_TOTALS_WRONG,
            "subtotal/tax/total {} / {} / {}, lines give {} / {} / {}".format(*stored, *wanted),
            invoice_id=header.invoice_id,
        )


def _check_lines_against_claims(
    invoice_id: uuid.UUID, by_line: dict[uuid.UUID, _Line], claimed: dict[uuid.UUID, ClaimRow]
) -> Iterator[Difference]:
    for line_id, line in by_line.items():
        entries = [claimed[e] for e in line.entry_ids if e in claimed]
        if len(entries) != len(line.entry_ids):
            continue  # already reported as line_entry_not_claimed
        seconds = sum(e.duration_seconds for e in entries)
        if line.row.seconds != seconds:
            yield Difference(
                Kind.LINE_SECONDS_MISMATCH,
                f"line {line_id}: {line.row.seconds} s, its entries in tracking add up to {seconds} s",
                invoice_id=invoice_id,
                entry_ids=tuple(line.entry_ids),
            )
        if line.row.hourly_rate is not None:
            off = tuple(e.entry_id for e in entries if e.hourly_rate != line.row.hourly_rate)
            if off:
                yield Difference(
                    Kind.LINE_RATE_MISMATCH,
                    f"line {line_id} bills {line.row.hourly_rate}/h; {len(off)} entries have another rate",
                    invoice_id=invoice_id,
                    entry_ids=off,
                )


def entries_on_several_invoices(
    rows: Iterable[tuple[uuid.UUID, Sequence[uuid.UUID]]],
) -> Iterator[Difference]:
    """(entry id, the invoice ids of every non-VOID line that bills it) with more than one line."""
    for entry_id, invoice_ids in rows:
        yield Difference(
            Kind.ENTRY_ON_TWO_INVOICES,
            f"billed {len(invoice_ids)} times, on invoices {', '.join(sorted(map(str, invoice_ids)))}",
            entry_id=entry_id,
        )
