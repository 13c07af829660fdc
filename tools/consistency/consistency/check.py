"""One consistency check over the three databases, and the settle loop around it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import sources
from .compare import Difference, Kind, compare_entries, compare_invoices, entries_on_several_invoices

T = TypeVar("T")


@dataclass
class Scope:
    """What to compare: everything, or only some entries and invoices (a settle re-check)."""

    entry_ids: list[uuid.UUID] | None = None
    invoice_ids: list[uuid.UUID] | None = None

    @property
    def full(self) -> bool:
        return self.entry_ids is None and self.invoice_ids is None

    @classmethod
    def of(cls, differences: Iterable[Difference]) -> Scope:
        entries: set[uuid.UUID] = set()
        invoices: set[uuid.UUID] = set()
        for d in differences:
            if d.invoice_id is not None:
                invoices.add(d.invoice_id)
            elif d.entry_id is not None:
                entries.add(d.entry_id)
        return cls(sorted(entries), sorted(invoices))


@dataclass
class Result:
    differences: list[Difference] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    backlog: sources.Backlog = field(default_factory=lambda: sources.Backlog(0, 0.0))
    unpublished: set[uuid.UUID] = field(default_factory=set)
    settled_seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        return not self.differences

    def by_kind(self) -> dict[Kind, list[Difference]]:
        out: dict[Kind, list[Difference]] = {}
        for d in self.differences:
            out.setdefault(d.kind, []).append(d)
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "difference_count": len(self.differences),
            "counts": self.counts,
            "by_kind": {k.value: len(v) for k, v in self.by_kind().items()},
            "outbox_backlog": self.backlog.as_json(),
            "settled_seconds": round(self.settled_seconds, 3),
            "differences": [
                {**d.as_json(), **({"event_unpublished": True} if d.entry_id in self.unpublished else {})}
                for d in self.differences
            ],
        }


def _counted(rows: Iterable[T], counts: dict[str, int], name: str) -> Iterator[T]:
    counts.setdefault(name, 0)
    for row in rows:
        counts[name] += 1
        yield row


def check(urls: dict[str, str], scope: Scope | None = None) -> Result:
    """Compare the three databases once (within `scope`); raises sources.SourceError when one fails."""
    scope = scope or Scope()
    result = Result()
    counts = result.counts
    with ExitStack() as stack:
        db = sources.open_snapshots(stack, urls)
        try:
            if scope.full or scope.entry_ids:
                result.differences += compare_entries(
                    _counted(
                        sources.tracking_entries(db.tracking, scope.entry_ids), counts, "tracking_entries"
                    ),
                    _counted(
                        sources.reporting_entries(db.reporting, scope.entry_ids), counts, "reporting_entries"
                    ),
                )
            if scope.full or scope.invoice_ids:
                result.differences += compare_invoices(
                    _counted(sources.invoice_lines(db.invoicing, scope.invoice_ids), counts, "invoice_lines"),
                    sources.line_entries(db.invoicing, scope.invoice_ids),
                    _counted(sources.claims(db.tracking, scope.invoice_ids), counts, "claimed_entries"),
                    sources.pending_generations(db.invoicing),
                )
            if scope.full:
                result.differences += entries_on_several_invoices(sources.entries_billed_twice(db.invoicing))
            result.backlog = sources.outbox_backlog(db.tracking)
            result.unpublished = sources.unpublished_entries(
                db.tracking, [d.entry_id for d in result.differences if d.entry_id and d.settleable]
            )
        except sources.psycopg.Error as exc:
            raise sources.SourceError(f"reading failed: {exc}") from exc
    return result


def check_and_settle(
    urls: dict[str, str],
    settle_seconds: float,
    *,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """A full check, then re-checks of the settleable differences until they go or time runs out.

    Differences no write in flight can explain (a field mismatch, a double
    billing) are reported from the first pass without waiting.
    """
    started = clock()
    result = check(urls)
    while any(d.settleable for d in result.differences) and clock() - started < settle_seconds:
        sleep(min(interval, max(0.0, settle_seconds - (clock() - started))))
        waiting = [d for d in result.differences if d.settleable]
        recheck = check(urls, Scope.of(waiting))
        kept = [d for d in result.differences if not d.settleable]
        # dict.fromkeys: a re-checked invoice reports its settled-kind and other differences again.
        result.differences = list(dict.fromkeys(kept + recheck.differences))
        result.backlog = recheck.backlog
        result.unpublished = recheck.unpublished
    result.settled_seconds = clock() - started
    return result
