"""Timers: start, stop, and the sweeper that caps forgotten ones at 24 h.

At most one running timer per user, guaranteed twice. The common path is
serialised per user by a Redis lock (`TimerLocks`), so concurrent starts get a
clean ALREADY_EXISTS naming the running entry. When Redis is down (or the lock
is not free in time) starting still proceeds: a transaction-scoped PostgreSQL
advisory lock serialises the user instead, and the partial unique index on
running timers is the safety net under both.

The common path of both runs on `TimerStatements` (one statement per write, no
ORM); whatever it cannot decide alone (a timer already running, a row that
changed between read and write, Redis down) takes the transactional path.

Running timers are private to tracking: events describe stopped entries only
(EntryStopped when a timer stops or is capped), so consumers never see an
entry without an end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from tt_common.errors import Conflict, FailedPrecondition, Unavailable
from tt_common.logging import get_logger
from tt_common.redis import LockNotAcquired, RedisLock

from .domain import MAX_ENTRY_LENGTH, Billing, Entry, StopOutcome, TimerAlreadyRunning, stop_outcome
from .events import EntryEvents, stopped_event
from .repository import Repositories
from .timer_statements import TimerStatements

log = get_logger(__name__)


class TimerLocks:
    """The per-user Redis lock around starting a timer, failing open to the database.

    After Redis failed once, starts skip it for `retry_after_s` instead of
    paying a connection attempt each.
    """

    def __init__(self, redis: Redis | None, *, ttl_ms: int, wait_s: float, retry_after_s: float) -> None:
        self.redis = redis
        self.ttl_ms = ttl_ms
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self._skip_until = 0.0

    @asynccontextmanager
    async def hold(self, user_id: uuid.UUID) -> AsyncIterator[bool]:
        """Yields True while the Redis lock is held, False when the caller must serialise in the database."""
        lock = await self._acquire(user_id)
        try:
            yield lock is not None
        finally:
            if lock is not None:
                await lock.release()

    async def _acquire(self, user_id: uuid.UUID) -> RedisLock | None:
        loop = asyncio.get_running_loop()
        if self.redis is None or loop.time() < self._skip_until:
            return None
        lock = RedisLock(self.redis, f"timer:{user_id}", ttl_ms=self.ttl_ms, wait_s=self.wait_s)
        try:
            await lock.acquire()
            return lock
        except Unavailable as exc:
            self._skip_until = loop.time() + self.retry_after_s
            log.warning("timer lock unavailable; the database serialises starts", error=str(exc.__cause__))
        except LockNotAcquired:
            log.info("timer lock busy; the database serialises this start", user_id=str(user_id))
        return None


@dataclass(frozen=True)
class StartTimer:
    actor: uuid.UUID | None
    user_id: uuid.UUID
    project_id: uuid.UUID
    task_id: uuid.UUID | None
    description: str
    tags: tuple[str, ...]


def new_timer(cmd: StartTimer, billing: Billing, now: datetime) -> Entry:
    """The running entry a start creates, exactly as it will be stored."""
    return Entry.new(cmd, billing, start_time=now, end_time=None, now=now)


async def start_timer_fast(
    statements: TimerStatements, cmd: StartTimer, billing: Billing, now: datetime
) -> Entry | None:
    """The common path, for a caller holding the user's Redis lock: one statement writes the
    timer and its audit record. None when a timer already runs: `start_timer` then names it
    (or caps a forgotten one)."""
    entry = new_timer(cmd, billing, now)
    return entry if await statements.insert_running(entry, cmd.actor, "timer_started") else None


async def start_timer(
    repos: Repositories,
    events: EntryEvents,
    cmd: StartTimer,
    billing: Billing,
    now: datetime,
    *,
    serialized: bool,
) -> Entry:
    """Insert the running timer, or raise TimerAlreadyRunning naming the one that runs.

    `serialized` says the caller holds the user's Redis lock; without it the
    transaction takes the user's advisory lock first.
    """
    if not serialized:
        await repos.entries.serialize_user(cmd.user_id)
    values = new_timer(cmd, billing, now).row()
    for _ in range(3):
        entry = await repos.entries.insert_running(values)
        if entry is not None:
            await repos.audit.record(entry.entry_id, cmd.actor, "timer_started", None, entry)
            return entry
        running = await repos.entries.running_for_user(cmd.user_id, for_update=True)
        if running is None:
            continue  # stopped between our insert and our look: try again
        if now - running.start_time > MAX_ENTRY_LENGTH:
            # A forgotten timer never blocks the user: cap it (as the sweeper would), then start.
            await finish_timer(repos, events, running, now, actor=None)
            continue
        raise TimerAlreadyRunning(running.entry_id)
    raise Conflict("the running timer kept changing; retry")


def check_running(running: Entry | None, entry_id: uuid.UUID | None) -> Entry:
    """The user's running timer, if it is the one the caller means to stop."""
    if running is None:
        raise FailedPrecondition("no timer is running for this user", error_code="no_running_timer")
    if entry_id is not None and running.entry_id != entry_id:
        raise FailedPrecondition(
            f"entry_id: entry {entry_id} is not the running timer (entry {running.entry_id} is)",
            error_code="not_the_running_timer",
        )
    return running


def stop_action(outcome: StopOutcome) -> str:
    if outcome.discarded:
        return "timer_discarded"
    return "timer_capped" if outcome.capped else "timer_stopped"


async def stop_timer_fast(
    statements: TimerStatements,
    *,
    user_id: uuid.UUID,
    entry_id: uuid.UUID | None,
    actor: uuid.UUID | None,
    now: datetime,
) -> tuple[Entry, StopOutcome] | None:
    """Stop the running timer in one statement (entry, audit and event together), after one read
    unless this process started it.

    None when the timer changed between the read and the write (a concurrent
    stop or edit): `stop_timer` then decides on the locked row.
    """
    started = statements.started_here(user_id)
    if started is not None and entry_id in (None, started.entry_id):
        stopped = await _stop_as_read(statements, started, actor, now)
        if stopped is not None:
            return stopped
    running = check_running(await statements.running_for_user(user_id), entry_id)
    return await _stop_as_read(statements, running, actor, now)


async def _stop_as_read(
    statements: TimerStatements, running: Entry, actor: uuid.UUID | None, now: datetime
) -> tuple[Entry, StopOutcome] | None:
    outcome = stop_outcome(running.start_time, now)
    if outcome.discarded:
        if not await statements.discard(running, actor, stop_action(outcome)):
            return None
        return running.with_changes(
            end_time=outcome.end_time, duration_seconds=outcome.duration_seconds
        ), outcome
    stopped = running.with_changes(
        end_time=outcome.end_time,
        duration_seconds=outcome.duration_seconds,
        capped=outcome.capped,
        version=running.version + 1,
        updated_at=now,
    )
    event = stopped_event(stopped, actor, now)
    if not await statements.finish(running, stopped, actor, stop_action(outcome), event):
        return None
    return stopped, outcome


async def stop_timer(
    repos: Repositories,
    events: EntryEvents,
    *,
    user_id: uuid.UUID,
    entry_id: uuid.UUID | None,
    actor: uuid.UUID | None,
    now: datetime,
) -> tuple[Entry, StopOutcome]:
    """Stop the user's running timer at server time `now` (row locked: concurrent stops serialise)."""
    running = check_running(await repos.entries.running_for_user(user_id, for_update=True), entry_id)
    return await finish_timer(repos, events, running, now, actor=actor)


async def finish_timer(
    repos: Repositories, events: EntryEvents, running: Entry, now: datetime, *, actor: uuid.UUID | None
) -> tuple[Entry, StopOutcome]:
    """Stop a locked running timer: discard it under 60 s, cap it over 24 h, else end it now."""
    outcome = stop_outcome(running.start_time, now)
    if outcome.discarded:
        deleted = await repos.entries.delete(running.entry_id, running.version)
        assert deleted, "the running timer is locked by this transaction"
        await repos.audit.record(running.entry_id, actor, stop_action(outcome), running, None)
        return running.with_changes(
            end_time=outcome.end_time, duration_seconds=outcome.duration_seconds
        ), outcome
    stopped = await repos.entries.update(
        running.entry_id,
        running.version,
        {
            "end_time": outcome.end_time,
            "duration_seconds": outcome.duration_seconds,
            "capped": outcome.capped,
        },
        now,
    )
    assert stopped is not None, "the running timer is locked by this transaction"
    await repos.audit.record(stopped.entry_id, actor, stop_action(outcome), running, stopped)
    await events.stopped(stopped, actor, now)
    return stopped, outcome


async def cap_forgotten_timers(repos: Repositories, events: EntryEvents, now: datetime, limit: int) -> int:
    """Stop timers running longer than 24 h at the cap, flagged; returns how many."""
    forgotten = await repos.entries.running_since_before(now - MAX_ENTRY_LENGTH, limit)
    for running in forgotten:
        await finish_timer(repos, events, running, now, actor=None)
    if forgotten:
        log.info("forgotten timers capped at 24 h", count=len(forgotten))
    return len(forgotten)
