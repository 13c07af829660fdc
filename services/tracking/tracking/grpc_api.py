"""Tracking's gRPC edge: validate the request, ask projects (outside any transaction),
then open one transaction per call and commit once. Errors are domain errors,
mapped to statuses by the kit's interceptor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from tt_common import pagination
from tt_common.db import transaction
from tt_common.errors import AlreadyExists, NotFound
from tt_common.validation import parse_optional_uuid, parse_uuid

from . import claims, entries, service, timers, wire
from .config import TrackingSettings
from .directory import Directory
from .domain import EntryOverlaps, TimerAlreadyRunning
from .events import EntryEvents
from .repository import EntryRepository, OutboxRepository, Repositories
from .timer_statements import TimerStatements
from .timers import TimerLocks

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class TrackingApi(tracking_pb2_grpc.TrackingServiceServicer):
    def __init__(
        self,
        settings: TrackingSettings,
        sessions: async_sessionmaker[AsyncSession],
        directory: Directory,
        locks: TimerLocks,
        statements: TimerStatements,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.statements = statements
        self.directory = directory
        self.locks = locks
        self.clock = clock
        self.max_skew = timedelta(seconds=settings.max_clock_skew_s)

    def _events(self, repos: Repositories) -> EntryEvents:
        return EntryEvents(repos.outbox, self.settings.topic_entries)

    async def EmitPipelineProbe(
        self, request: tracking_pb2.EmitPipelineProbeRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.EmitPipelineProbeResponse:
        async with transaction(self.sessions) as session:
            probe = await service.emit_pipeline_probe(
                OutboxRepository(session), topic=self.settings.topic_system, note=request.note
            )
        response = tracking_pb2.EmitPipelineProbeResponse(probe_id=str(probe.probe_id))
        response.emitted_at.FromDatetime(probe.emitted_at)
        return response

    # --- timers ------------------------------------------------------------------------

    async def StartTimer(
        self, request: tracking_pb2.StartTimerRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.TimeEntry:
        cmd = wire.start_timer(request)
        # Before any lock or transaction: a slow or absent projects service holds nothing.
        billing = await self.directory.billing_for_booking(cmd.user_id, cmd.project_id, cmd.task_id)
        try:
            async with self.locks.hold(cmd.user_id) as serialized:
                entry = None
                if serialized:
                    # The lock serialises this user's starts: one statement is enough.
                    entry = await timers.start_timer_fast(self.statements, cmd, billing, self.clock())
                if entry is None:
                    async with transaction(self.sessions) as session:
                        repos = Repositories.on(session)
                        entry = await timers.start_timer(
                            repos, self._events(repos), cmd, billing, self.clock(), serialized=serialized
                        )
        except (AlreadyExists, EntryOverlaps) as exc:
            if isinstance(exc, TimerAlreadyRunning):
                raise
            # Only when the lock was bypassed: the constraint fired; name the timer that won.
            async with self.sessions() as session:
                running = await EntryRepository(session).running_for_user(cmd.user_id)
            if running is not None:
                raise TimerAlreadyRunning(running.entry_id) from exc
            raise
        return wire.entry_message(entry)

    async def StopTimer(
        self, request: tracking_pb2.StopTimerRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.StopTimerResponse:
        user_id = parse_uuid(request.user_id, "user_id")
        entry_id = parse_optional_uuid(request.entry_id, "entry_id")
        actor = wire.actor(request.actor_user_id)
        stopped = await timers.stop_timer_fast(
            self.statements, user_id=user_id, entry_id=entry_id, actor=actor, now=self.clock()
        )
        if stopped is None:  # it changed between read and write: decide on the locked row
            async with transaction(self.sessions) as session:
                repos = Repositories.on(session)
                stopped = await timers.stop_timer(
                    repos,
                    self._events(repos),
                    user_id=user_id,
                    entry_id=entry_id,
                    actor=actor,
                    now=self.clock(),
                )
        entry, outcome = stopped
        return tracking_pb2.StopTimerResponse(
            entry=wire.entry_message(entry), discarded=outcome.discarded, capped=outcome.capped
        )

    async def GetRunningTimer(
        self, request: tracking_pb2.GetRunningTimerRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.GetRunningTimerResponse:
        user_id = parse_uuid(request.user_id, "user_id")
        running = await self.statements.running_for_user(user_id)
        if running is None:
            return tracking_pb2.GetRunningTimerResponse()
        return tracking_pb2.GetRunningTimerResponse(entry=wire.entry_message(running))

    # --- entries -------------------------------------------------------------------------

    async def CreateManualEntry(
        self, request: tracking_pb2.CreateManualEntryRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.TimeEntry:
        cmd = wire.manual_entry(request, self.clock(), self.max_skew)
        billing = await self.directory.billing_for_booking(cmd.user_id, cmd.project_id, cmd.task_id)
        entry = await entries.create_manual_entry_fast(self.statements, cmd, billing, self.clock())
        if entry is None:  # it overlaps: the transactional path names the other entry
            async with transaction(self.sessions) as session:
                repos = Repositories.on(session)
                entry = await entries.create_manual_entry(
                    repos, self._events(repos), cmd, billing, self.clock()
                )
        return wire.entry_message(entry)

    async def UpdateEntry(
        self, request: tracking_pb2.UpdateEntryRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.TimeEntry:
        entry_id = parse_uuid(request.entry_id, "entry_id")
        version = wire.expected_version(request.expected_version, required=True)
        now = self.clock()
        changes = wire.entry_changes(request, now, self.max_skew)
        async with transaction(self.sessions) as session:
            repos = Repositories.on(session)
            entry = await entries.update_entry(
                repos,
                self._events(repos),
                self.directory,
                entry_id=entry_id,
                expected_version=version,
                changes=changes,
                actor=wire.actor(request.actor_user_id),
                now=now,
                max_skew=self.max_skew,
            )
        return wire.entry_message(entry)

    async def DeleteEntry(
        self, request: tracking_pb2.DeleteEntryRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.DeleteEntryResponse:
        entry_id = parse_uuid(request.entry_id, "entry_id")
        version = wire.expected_version(request.expected_version, required=False)
        actor = wire.actor(request.actor_user_id)
        async with transaction(self.sessions) as session:
            repos = Repositories.on(session)
            await entries.delete_entry(
                repos,
                self._events(repos),
                entry_id=entry_id,
                expected_version=version,
                actor=actor,
                now=self.clock(),
            )
        return tracking_pb2.DeleteEntryResponse()

    async def GetEntry(
        self, request: tracking_pb2.GetEntryRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.TimeEntry:
        entry_id = parse_uuid(request.entry_id, "entry_id")
        async with self.sessions() as session:
            entry = await EntryRepository(session).get(entry_id)
        if entry is None:
            raise NotFound(f"entry {entry_id} does not exist")
        return wire.entry_message(entry)

    async def ListEntries(
        self, request: tracking_pb2.ListEntriesRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.ListEntriesResponse:
        flt = wire.entry_filter(request)
        size = pagination.page_size(request.page_size)
        after = pagination.decode_time_id_token(request.page_token)
        async with self.sessions() as session:
            rows = await EntryRepository(session).page(flt, after=after, limit=size + 1)
        page, more = rows[:size], len(rows) > size
        token = pagination.encode_token(page[-1].start_time.isoformat(), page[-1].entry_id) if more else ""
        return tracking_pb2.ListEntriesResponse(
            entries=[wire.entry_message(e) for e in page], next_page_token=token
        )

    async def ListEntryAudit(
        self, request: tracking_pb2.ListEntryAuditRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.ListEntryAuditResponse:
        entry_id = parse_uuid(request.entry_id, "entry_id")
        size = pagination.page_size(request.page_size)
        after_id = pagination.decode_serial_token(request.page_token)
        async with self.sessions() as session:
            records = await Repositories.on(session).audit.page(entry_id, after_id=after_id, limit=size + 1)
        page, more = records[:size], len(records) > size
        return tracking_pb2.ListEntryAuditResponse(
            records=[wire.audit_message(r) for r in page],
            next_page_token=pagination.encode_token(page[-1].audit_id) if more else "",
        )

    # --- invoicing -----------------------------------------------------------------------

    async def ClaimUninvoicedEntries(
        self, request: tracking_pb2.ClaimUninvoicedEntriesRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.ClaimUninvoicedEntriesResponse:
        invoice_id = parse_uuid(request.invoice_id, "invoice_id")
        project_id = parse_uuid(request.project_id, "project_id")
        start, end = wire.period(request, "period")
        actor = wire.actor(request.actor_user_id)
        async with transaction(self.sessions) as session:
            repos = Repositories.on(session)
            claimed, replayed = await claims.claim_uninvoiced_entries(
                repos,
                self._events(repos).bulk,
                invoice_id=invoice_id,
                project_id=project_id,
                start=start,
                end=end,
                actor=actor,
                now=self.clock(),
            )
        return wire.claim_response(claimed, invoice_id, replayed)

    async def ReleaseEntries(
        self, request: tracking_pb2.ReleaseEntriesRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.ReleaseEntriesResponse:
        invoice_id = parse_uuid(request.invoice_id, "invoice_id")
        actor = wire.actor(request.actor_user_id)
        async with transaction(self.sessions) as session:
            repos = Repositories.on(session)
            released = await claims.release_entries(
                repos, self._events(repos).bulk, invoice_id=invoice_id, actor=actor, now=self.clock()
            )
        return tracking_pb2.ReleaseEntriesResponse(entry_ids=[e.entry_id for e in released])
