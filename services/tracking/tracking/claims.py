"""Claims for invoicing: an entry is on at most one invoice, ever.

A claim marks every uninvoiced, billable, stopped entry of a project that
starts in a period with the invoice id, in one transaction. Rows are locked in
entry id order and re-checked after any wait, so two overlapping claims split
the entries between them and never share one. Each invoice id claims once:
calling again returns the same set (the `invoice_claims` row remembers it),
and a released (voided) invoice id can never claim again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from tt_common.errors import FailedPrecondition

from .domain import Entry
from .events import EntryEvents
from .repository import Repositories

# A claim of 100k entries runs longer than the default per-statement timeout.
CLAIM_STATEMENT_TIMEOUT_S = 300


async def claim_uninvoiced_entries(
    repos: Repositories,
    events: EntryEvents,
    *,
    invoice_id: uuid.UUID,
    project_id: uuid.UUID,
    start: datetime,
    end: datetime,
    actor: uuid.UUID | None,
    now: datetime,
) -> tuple[list[Entry], bool]:
    """The invoice's entries, and whether this was a replay of an earlier claim."""
    if not await repos.claims.register(invoice_id, project_id, start, end):
        previous = await repos.claims.get(invoice_id)
        assert previous is not None
        if previous.released_at is not None:
            raise FailedPrecondition(
                f"invoice_id: invoice {invoice_id} released its entries; a voided invoice cannot claim again",
                error_code="invoice_released",
            )
        if (previous.project_id, previous.period_start, previous.period_end) != (project_id, start, end):
            raise FailedPrecondition(
                f"invoice_id: invoice {invoice_id} already claimed entries of another project or period",
                error_code="claim_mismatch",
            )
        return await repos.entries.lock_invoice_entries(invoice_id), True

    await repos.entries.allow_long_statements(CLAIM_STATEMENT_TIMEOUT_S)
    claimable = await repos.entries.lock_claimable(project_id, start, end)
    await repos.entries.set_invoice([e.entry_id for e in claimable], invoice_id, now)
    claimed = [e.with_invoice(invoice_id, now) for e in claimable]
    pairs = zip(claimable, claimed, strict=True)
    await repos.audit.record_many([(e.entry_id, actor, "claimed", b, e) for b, e in pairs])
    await events.claimed(claimed, actor, now)
    return claimed, False


async def release_entries(
    repos: Repositories, events: EntryEvents, *, invoice_id: uuid.UUID, actor: uuid.UUID | None, now: datetime
) -> list[Entry]:
    """Free a voided draft's entries; a repeated release frees nothing more."""
    await repos.claims.mark_released(invoice_id, now)
    held = await repos.entries.lock_invoice_entries(invoice_id)
    await repos.entries.set_invoice([e.entry_id for e in held], None, now)
    released = [e.with_invoice(None, now) for e in held]
    pairs = zip(held, released, strict=True)
    await repos.audit.record_many([(e.entry_id, actor, "released", b, e) for b, e in pairs])
    await events.released(released, invoice_id, actor, now)
    return released
