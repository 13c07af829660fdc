"""StartTimer/StopTimer throughput and latency over gRPC at a fixed concurrency.

Each virtual user is a real user (a project member, created through the
projects API) that starts a timer and stops it, again and again, for the
measured duration. Prints cycles per second and p50/p90/p99/max latency per
call, and writes the same as JSON to bench/results/.

    .venv/bin/python bench/tracking_timers.py                 # starts its own stack (profile "test")
    .venv/bin/python bench/tracking_timers.py --existing dev  # against `make up`'s running stack

With its own stack it uses the local runner's test profile (move it with
TT_TEST_PORT_OFFSET / TT_TEST_STATE_DIR), fresh databases, and stops exactly
what it started. A cycle stopped within 60 s is discarded by the product's
rules; that is the path measured (the stop transaction still locks, deletes
and audits the entry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import percentile, start_own_stack  # noqa: E402

from timetracking.projects.v1 import projects_pb2 as ppb  # noqa: E402
from timetracking.projects.v1 import projects_pb2_grpc  # noqa: E402
from timetracking.tracking.v1 import tracking_pb2 as tpb  # noqa: E402
from timetracking.tracking.v1 import tracking_pb2_grpc  # noqa: E402
from ttlocal.config import StackConfig  # noqa: E402


@dataclass
class Samples:
    start_ms: list[float] = field(default_factory=list)
    stop_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    cycles: int = 0


def summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values), 2) if values else float("nan"),
    }


async def make_users(projects: projects_pb2_grpc.ProjectsServiceStub, n: int) -> tuple[str, list[str]]:
    client = await projects.CreateClient(
        ppb.CreateClientRequest(name=f"bench {uuid.uuid4().hex[:6]}", currency="EUR", payment_terms_days=14)
    )
    project = await projects.CreateProject(
        ppb.CreateProjectRequest(
            client_id=client.client_id,
            name="bench",
            billing_type=ppb.BILLING_TYPE_HOURLY,
            default_hourly_rate="100.00",
        )
    )
    users = []
    for i in range(n):
        user = await projects.CreateUser(
            ppb.CreateUserRequest(
                name=f"bench user {i}",
                email=f"bench-{uuid.uuid4().hex[:12]}@example.com",
                role=ppb.ROLE_EMPLOYEE,
                timezone="UTC",
            )
        )
        await projects.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
        )
        users.append(user.user_id)
    return project.project_id, users


async def virtual_user(
    tracking: tracking_pb2_grpc.TrackingServiceStub,
    user_id: str,
    project_id: str,
    until: float,
    measure_from: float,
    samples: Samples,
) -> None:
    start_req = tpb.StartTimerRequest(actor_user_id=user_id, user_id=user_id, project_id=project_id)
    stop_req = tpb.StopTimerRequest(actor_user_id=user_id, user_id=user_id)
    clock = time.perf_counter
    while (t0 := clock()) < until:
        try:
            await tracking.StartTimer(start_req, timeout=10)
            t1 = clock()
            await tracking.StopTimer(stop_req, timeout=10)
            t2 = clock()
        except grpc.aio.AioRpcError as exc:
            samples.errors[exc.code().name] = samples.errors.get(exc.code().name, 0) + 1
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                await tracking.StopTimer(stop_req, timeout=10)
            continue
        if t0 >= measure_from and t2 <= until:
            samples.start_ms.append((t1 - t0) * 1000)
            samples.stop_ms.append((t2 - t1) * 1000)
            samples.cycles += 1


async def run_load(
    tracking_target: str, projects_target: str, concurrency: int, duration_s: float, warmup_s: float
) -> dict:
    async with (
        grpc.aio.insecure_channel(projects_target) as pch,
        grpc.aio.insecure_channel(tracking_target) as tch,
    ):
        project_id, users = await make_users(projects_pb2_grpc.ProjectsServiceStub(pch), concurrency)
        tracking = tracking_pb2_grpc.TrackingServiceStub(tch)
        samples = Samples()
        now = time.perf_counter()
        measure_from, until = now + warmup_s, now + warmup_s + duration_s
        await asyncio.gather(
            *(virtual_user(tracking, u, project_id, until, measure_from, samples) for u in users)
        )
    return {
        "concurrency": concurrency,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "cycles": samples.cycles,
        "cycles_per_s": round(samples.cycles / duration_s, 1),
        "calls_per_s": round(2 * samples.cycles / duration_s, 1),
        "start_timer": summary(samples.start_ms),
        "stop_timer": summary(samples.stop_ms),
        "errors": samples.errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=20, help="virtual users (default 20)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument(
        "--existing", metavar="PROFILE", choices=["dev", "test"], help="use this profile's running stack"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    cfg = StackConfig.load(args.existing or "test")
    with ExitStack() as cleanup:
        if not args.existing:
            start_own_stack(cfg, cleanup)
        result = asyncio.run(
            run_load(
                cfg.grpc_target("tracking"),
                cfg.grpc_target("projects"),
                args.concurrency,
                args.duration,
                args.warmup,
            )
        )
    result |= {
        "benchmark": "tracking_timers",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "target": {"tracking": cfg.grpc_target("tracking"), "projects": cfg.grpc_target("projects")},
    }
    errors = result["errors"] or "none"
    print(
        f"\nStartTimer+StopTimer at concurrency {args.concurrency}, {args.duration:.0f} s measured:\n"
        f"  {result['cycles_per_s']} cycles/s ({result['calls_per_s']} calls/s), errors {errors}"
    )
    for name in ("start_timer", "stop_timer"):
        m = result[name]
        quantiles = "  ".join(f"{q} {m[q + '_ms']} ms" for q in ("p50", "p90", "p99", "max"))
        print(f"  {name:11s} {quantiles}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"tracking_timers-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
