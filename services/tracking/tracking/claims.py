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

from .repository import ClaimedRow, EntryEventSpec, Repositories, claim_statement, release_statement


async def claim_uninvoiced_entries(
    repos: Repositories,
    events: EntryEventSpec,
    *,
    invoice_id: uuid.UUID,
    project_id: uuid.UUID,
    start: datetime,
    end: datetime,
    actor: uuid.UUID | None,
    now: datetime,
) -> tuple[list[ClaimedRow], bool]:
    """The invoice's entries, and whether this was a replay of an earlier claim.

    The claimed rows, their audit records and their events are written by one
    statement (`claim_statement`, run by `ClaimRepository.move`): a claim of 100k entries moves
    no entry through Python but the lean answer.
    """
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
        return await repos.claims.claimed_entries(invoice_id), True
    claimed = await repos.claims.move(
        claim_statement(invoice_id, project_id, start, end, actor=actor, now=now, events=events)
    )
    return claimed, False


async def release_entries(
    repos: Repositories,
    events: EntryEventSpec,
    *,
    invoice_id: uuid.UUID,
    actor: uuid.UUID | None,
    now: datetime,
) -> list[ClaimedRow]:
    """Free a voided draft's entries; a repeated release frees nothing more."""
    await repos.claims.mark_released(invoice_id, now)
    return await repos.claims.move(release_statement(invoice_id, actor=actor, now=now, events=events))
