"""Tracking's timer handlers in process, without gRPC: CPU per start+stop cycle.

The gRPC benchmark (tracking_timers.py) cannot resolve a change of a few percent
on this machine: its rate moves by a fifth between runs a minute apart. This one
builds tracking's `TrackingApi` in its own process, as the service does, and has
its users call StartTimer and StopTimer on it directly, against the stack's
PostgreSQL, Redis and projects service: what it prints is the CPU this process
spends per cycle (handlers, the Redis lock, asyncpg, the booking cache), with no
gRPC server around them. Compare two versions of the code by running it on each,
interleaved, a few rounds each.

    .venv/bin/python bench/tracking_handlers.py                  # starts its own stack (profile "test")
    .venv/bin/python bench/tracking_handlers.py --existing test  # against a running stack
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import grpc
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import machine_info, start_own_stack, write_result  # noqa: E402
from tracking_timers import make_users  # noqa: E402

from timetracking.projects.v1 import projects_pb2_grpc  # noqa: E402
from timetracking.tracking.v1 import tracking_pb2 as tpb  # noqa: E402
from ttlocal.config import StackConfig  # noqa: E402


async def measure(concurrency: int, cycles: int, rounds: int) -> dict:
    """`rounds` times `cycles` start+stop cycles by `concurrency` users; CPU and rate per round.

    Tracking's settings come from the environment (TRACKING_*), as in the service."""
    from tracking.config import TrackingSettings
    from tracking.directory import ProjectsDirectory
    from tracking.grpc_api import TrackingApi
    from tracking.timer_statements import TimerStatements
    from tracking.timers import TimerLocks
    from tt_common.db import driver_pool_from_settings, engine_from_settings, session_factory
    from tt_common.grpc_client import channel
    from tt_common.redis import make_redis, short_commands
    from tt_common.settings import load_settings

    s = load_settings(TrackingSettings)
    engine, pool, redis = engine_from_settings(s), driver_pool_from_settings(s), make_redis(s.redis_url)
    projects = channel(s.projects_target)
    api = TrackingApi(
        s,
        session_factory(engine),
        ProjectsDirectory(projects, s.projects_deadline_s, s.projects_cache_ttl_s),
        TimerLocks(
            redis, ttl_ms=s.timer_lock_ttl_ms, wait_s=s.timer_lock_wait_s, retry_after_s=s.redis_retry_after_s
        ),
        TimerStatements(pool, topic=s.topic_entries),
    )
    try:
        async with grpc.aio.insecure_channel(s.projects_target) as pch:
            project_id, users = await make_users(projects_pb2_grpc.ProjectsServiceStub(pch), concurrency)

        async def user(user_id: str, n: int) -> None:
            start = tpb.StartTimerRequest(actor_user_id=user_id, user_id=user_id, project_id=project_id)
            stop = tpb.StopTimerRequest(actor_user_id=user_id, user_id=user_id)
            for _ in range(n):
                # The handlers never touch their servicer context.
                await api.StartTimer(start, None)
                await api.StopTimer(stop, None)

        per_user = max(1, cycles // concurrency)
        await asyncio.gather(*(user(u, 20) for u in users))  # warm-up: connections, cache, statements
        out = []
        for _ in range(rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(user(u, per_user) for u in users))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            done = per_user * concurrency
            out.append(
                {"cycles_per_s": round(done / wall, 1), "cpu_ms_per_cycle": round(cpu / done * 1000, 3)}
            )
            print(f"  {out[-1]['cycles_per_s']} cycles/s, {out[-1]['cpu_ms_per_cycle']} ms of CPU per cycle")
    finally:
        await projects.close()
        await short_commands(redis).aclose()
        await redis.aclose()
        await pool.close()
        await engine.dispose()
    return {"concurrency": concurrency, "cycles_per_round": per_user * concurrency, "rounds": out}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=20, help="users (default 20)")
    parser.add_argument("--cycles", type=int, default=4000, help="cycles per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--existing", metavar="PROFILE", choices=["dev", "test"], help="use a running stack")
    args = parser.parse_args()

    cfg = StackConfig.load(args.existing or "test")
    with ExitStack() as cleanup:
        env = cfg.service_env("tracking")
        if not args.existing:
            env["TRACKING_DATABASE_URL"] = start_own_stack(cfg, cleanup).databases["tracking"]
        os.environ.update({k: v for k, v in env.items() if k.startswith("TRACKING_")})
        os.environ["TRACKING_LOG_LEVEL"] = "WARNING"
        from tt_common.grpc_server import tune_gc

        tune_gc()  # as the service runs
        print(f"TrackingApi in process, {args.concurrency} users, {args.rounds} rounds:")
        result = uvloop.run(measure(args.concurrency, args.cycles, args.rounds))
        result["machine"] = machine_info(os.environ["TRACKING_DATABASE_URL"], cfg)
    result["benchmark"] = "tracking_handlers"
    print(f"  written to {write_result('tracking_handlers', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
