"""Tracking service entry point: gRPC API, the outbox relay, and the 24 h timer sweeper."""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from tt_common.db import driver_pool_from_settings, engine_from_settings, ping, session_factory, transaction
from tt_common.grpc_client import channel
from tt_common.grpc_server import GrpcServiceRunner, run_service
from tt_common.outbox import run_relay
from tt_common.redis import make_redis, short_commands

from .config import TrackingSettings
from .directory import ProjectsDirectory
from .events import ENTRY_EVENT_ENCODER, EntryEvents, encode_entry_event
from .grpc_api import TrackingApi, utc_now
from .models import outbox
from .repository import Repositories
from .timer_statements import TimerStatements
from .timers import TimerLocks, cap_forgotten_timers


async def sweep_forgotten_timers(
    sessions: async_sessionmaker[AsyncSession], settings: TrackingSettings, *, once: bool = False
) -> int:
    """Cap timers that ran past 24 h, batch by batch, every `sweeper_interval_s`."""
    total = 0
    while True:
        async with transaction(sessions) as session:
            repos = Repositories.on(session)
            events = EntryEvents(repos.outbox, settings.topic_entries)
            capped = await cap_forgotten_timers(repos, events, utc_now(), settings.sweeper_batch_size)
        total += capped
        if capped == settings.sweeper_batch_size:
            continue
        if once:
            return total
        await asyncio.sleep(settings.sweeper_interval_s)


async def serve(settings: TrackingSettings) -> None:
    engine = engine_from_settings(settings)
    sessions = session_factory(engine)
    # The timers' hot path: raw driver connections, beside the ORM's pool.
    driver_pool = driver_pool_from_settings(settings)
    redis = make_redis(settings.redis_url)
    projects = channel(settings.projects_target)

    api = TrackingApi(
        settings,
        sessions,
        ProjectsDirectory(projects, settings.projects_deadline_s, settings.projects_cache_ttl_s),
        TimerLocks(
            redis,
            ttl_ms=settings.timer_lock_ttl_ms,
            wait_s=settings.timer_lock_wait_s,
            retry_after_s=settings.redis_retry_after_s,
        ),
        TimerStatements(driver_pool, topic=settings.topic_entries),
    )
    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        tracking_pb2_grpc.add_TrackingServiceServicer_to_server,
        api,
        tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name,
    )
    runner.add_worker(
        "outbox-relay",
        partial(
            run_relay,
            settings,
            sessions,
            outbox,
            topics=[settings.topic_entries, settings.topic_system],
            client_id="tracking-outbox",
            encoders={ENTRY_EVENT_ENCODER: encode_entry_event},
        ),
    )

    async def sweeper() -> None:
        await sweep_forgotten_timers(sessions, settings)

    runner.add_worker("timer-sweeper", sweeper)
    runner.add_readiness_check("postgresql", partial(ping, engine))

    async def close() -> None:
        await projects.close()
        await short_commands(redis).aclose()  # the timer lock's connections
        await redis.aclose()
        await driver_pool.close()
        await engine.dispose()

    runner.on_shutdown(close)
    await runner.serve()


def main() -> None:
    run_service(TrackingSettings, serve)


if __name__ == "__main__":
    main()
