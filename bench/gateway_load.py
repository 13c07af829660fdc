"""Timer start/stop and entry creation through the REST gateway, at a fixed concurrency
and at a steady request rate, with the services' memory sampled during the run.

Each virtual user is a real user (a project member with a password) who logs in
through POST /v1/auth/token and then works with its own bearer token, as a client
would: every request goes through JWT verification, the per-token rate limiter
(Redis), the gRPC call with its deadline, and problem+json mapping.

Phases (each after a warm-up):
  1. timer    closed loop: every user starts and stops its own timer, again and again
  2. entries  closed loop: every user creates manual entries (non-overlapping)
  3. steady   open loop: timer start+stop cycles launched at a fixed rate (default
              200 requests/s), latency measured per request

    .venv/bin/python bench/gateway_load.py                  # own stack (test profile), stopped after
    TT_TEST_PORT_OFFSET=900 .venv/bin/python bench/gateway_load.py
    .venv/bin/python bench/gateway_load.py --existing dev   # against `make up` (rate limits apply!)

Prints requests per second and p50/p90/p99/max per call, and the peak resident memory
of the five service processes (from their pid files); writes the same as JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
from benchkit import percentile, start_own_stack, write_result

from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from ttlocal.config import SERVICES, StackConfig

PASSWORD = "bench-password-0123"
# The benchmark measures the gateway's work, limiter included, not its refusals.
UNLIMITED = {
    "GATEWAY_RATE_PER_S": "100000",
    "GATEWAY_RATE_BURST": "100000",
    "GATEWAY_LOGIN_RATE_BURST": "1000",
}


@dataclass
class Calls:
    ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, ms: float) -> None:
        self.ms.setdefault(name, []).append(ms)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


class MemorySampler:
    """Peak RSS of each service process (VmRSS from /proc), sampled while the load runs."""

    def __init__(self, cfg: StackConfig) -> None:
        self.pids = {}
        for name in SERVICES:
            try:
                self.pids[name] = int(cfg.pid_file(name).read_text().strip())
            except (OSError, ValueError):
                continue
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def rss_kib(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    async def _run(self) -> None:
        while True:
            sample = {n: self.rss_kib(p) for n, p in self.pids.items()}
            for name, kib in sample.items():
                self.peak[name] = max(self.peak.get(name, 0), kib)
            self.peak_total = max(self.peak_total, sum(sample.values()))
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict:
        if self._task:
            self._task.cancel()
        return {
            "peak_total_mib": round(self.peak_total / 1024, 1),
            "peak_mib": {n: round(k / 1024, 1) for n, k in self.peak.items()},
        }


async def make_users(projects_target: str, n: int) -> tuple[str, list[str]]:
    async with grpc.aio.insecure_channel(projects_target) as ch:
        api = projects_pb2_grpc.ProjectsServiceStub(ch)
        client = await api.CreateClient(
            ppb.CreateClientRequest(name=f"bench {uuid.uuid4().hex[:6]}", currency="EUR")
        )
        project = await api.CreateProject(
            ppb.CreateProjectRequest(client_id=client.client_id, name="bench", default_hourly_rate="100.00")
        )
        emails = []
        for i in range(n):
            email = f"gwbench-{uuid.uuid4().hex[:12]}@example.com"
            user = await api.CreateUser(
                ppb.CreateUserRequest(name=f"bench user {i}", email=email, password=PASSWORD, timezone="UTC")
            )
            await api.AddProjectMember(
                ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
            )
            emails.append(email)
    return project.project_id, emails


async def log_in(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    resp = await http.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": PASSWORD}
    )
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def timed(
    http: httpx.AsyncClient, calls: Calls, name: str, record: bool, **request
) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        resp = await http.request(**request)
    except httpx.HTTPError as exc:
        calls.error(f"{name}: {type(exc).__name__}")
        return None
    ms = (time.perf_counter() - t0) * 1000
    if resp.status_code >= 300:
        calls.error(f"{name}: {resp.status_code}")
    elif record:
        calls.add(name, ms)
    return resp


async def timer_phase(
    http: httpx.AsyncClient, users: list[dict[str, str]], project_id: str, warmup: float, duration: float
) -> dict:
    calls, cycles = Calls(), 0
    now = time.perf_counter()
    measure_from, until = now + warmup, now + warmup + duration

    async def vu(headers: dict[str, str]) -> None:
        nonlocal cycles
        while (t0 := time.perf_counter()) < until:
            record = t0 >= measure_from
            start = await timed(
                http,
                calls,
                "timer_start",
                record,
                method="POST",
                url="/v1/timer/start",
                headers=headers,
                json={"project_id": project_id},
            )
            stop = await timed(
                http, calls, "timer_stop", record, method="POST", url="/v1/timer/stop", headers=headers
            )
            if record and start is not None and stop is not None and time.perf_counter() <= until:
                cycles += start.status_code == 201 and stop.status_code == 200

    await asyncio.gather(*(vu(h) for h in users))
    requests = sum(len(v) for v in calls.ms.values())
    return {
        "cycles": cycles,
        "cycles_per_s": round(cycles / duration, 1),
        "requests_per_s": round(requests / duration, 1),
        **{k: summary(v) for k, v in calls.ms.items()},
        "errors": calls.errors,
    }


async def entries_phase(
    http: httpx.AsyncClient, users: list[dict[str, str]], project_id: str, warmup: float, duration: float
) -> dict:
    calls = Calls()
    now = time.perf_counter()
    measure_from, until = now + warmup, now + warmup + duration
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)

    async def vu(headers: dict[str, str]) -> None:
        slot = 0
        while (t0 := time.perf_counter()) < until:
            start = base - timedelta(minutes=2 * slot)  # back in time, one minute each: never overlapping
            slot += 1
            body = {
                "project_id": project_id,
                "description": "bench",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=1)).isoformat(),
            }
            await timed(
                http,
                calls,
                "entry_create",
                t0 >= measure_from,
                method="POST",
                url="/v1/time-entries",
                headers=headers,
                json=body,
            )

    await asyncio.gather(*(vu(h) for h in users))
    done = len(calls.ms.get("entry_create", []))
    return {
        "requests_per_s": round(done / duration, 1),
        "entry_create": summary(calls.ms.get("entry_create", [])),
        "errors": calls.errors,
    }


async def steady_phase(
    http: httpx.AsyncClient,
    users: list[dict[str, str]],
    project_id: str,
    rate: float,
    warmup: float,
    duration: float,
) -> dict:
    """Open loop: a start+stop cycle launched every 2/rate seconds by the next idle user."""
    calls, missed = Calls(), 0
    idle: deque[dict[str, str]] = deque(users)
    interval = 2.0 / rate
    now = time.perf_counter()
    measure_from, until = now + warmup, now + warmup + duration
    tasks: set[asyncio.Task[None]] = set()

    async def cycle(headers: dict[str, str], record: bool) -> None:
        try:
            await timed(
                http,
                calls,
                "timer_start",
                record,
                method="POST",
                url="/v1/timer/start",
                headers=headers,
                json={"project_id": project_id},
            )
            await timed(
                http, calls, "timer_stop", record, method="POST", url="/v1/timer/stop", headers=headers
            )
        finally:
            idle.append(headers)

    tick = now
    while tick < until:
        record = tick >= measure_from
        if idle:
            task = asyncio.create_task(cycle(idle.popleft(), record))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif record:
            missed += 1
        tick += interval
        await asyncio.sleep(max(0.0, tick - time.perf_counter()))
    await asyncio.gather(*tasks)
    all_ms = [ms for v in calls.ms.values() for ms in v]
    return {
        "target_requests_per_s": rate,
        "achieved_requests_per_s": round(len(all_ms) / duration, 1),
        "cycles_not_launched": missed,
        "all_requests": summary(all_ms),
        **{k: summary(v) for k, v in calls.ms.items()},
        "errors": calls.errors,
    }


async def run(cfg: StackConfig, args: argparse.Namespace) -> dict:
    project_id, emails = await make_users(cfg.grpc_target("projects"), args.concurrency)
    limits = httpx.Limits(
        max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency * 2
    )
    async with httpx.AsyncClient(base_url=cfg.gateway_url, timeout=30, limits=limits) as http:
        users = [await log_in(http, e) for e in emails]
        memory = MemorySampler(cfg)
        memory.start()
        timer = await timer_phase(http, users, project_id, args.warmup, args.duration)
        entries = await entries_phase(http, users, project_id, args.warmup, args.duration)
        steady = await steady_phase(http, users, project_id, args.rate, args.warmup, args.duration)
        mem = await memory.stop()
    return {
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "timer": timer,
        "entries": entries,
        "steady": steady,
        "memory": mem,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=20, help="virtual users (default 20)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds per phase (default 20)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per phase (default 3)")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests/s of the steady phase (default 200)"
    )
    parser.add_argument(
        "--existing", metavar="PROFILE", choices=["dev", "test"], help="use this profile's stack"
    )
    args = parser.parse_args()

    cfg = StackConfig.load(args.existing or "test")
    with ExitStack() as cleanup:
        if not args.existing:
            start_own_stack(cfg, cleanup, extra_env=UNLIMITED)
        result = asyncio.run(run(cfg, args))
    result |= {
        "benchmark": "gateway_load",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "target": cfg.gateway_url,
    }
    t, e, s, m = result["timer"], result["entries"], result["steady"], result["memory"]

    def q(stats: dict) -> str:
        return "  ".join(f"{k} {stats.get(k + '_ms', '-')} ms" for k in ("p50", "p90", "p99", "max"))

    print(f"\nThrough the gateway, {args.concurrency} users, {args.duration:.0f} s per phase:")
    t_err, e_err, s_err = (x["errors"] or "none" for x in (t, e, s))
    print(f"  timer start+stop: {t['cycles_per_s']} cycles/s ({t['requests_per_s']} req/s), errors {t_err}")
    print(f"    timer_start   {q(t.get('timer_start', {}))}")
    print(f"    timer_stop    {q(t.get('timer_stop', {}))}")
    print(f"  entry creation: {e['requests_per_s']} req/s, errors {e_err}")
    print(f"    entry_create  {q(e['entry_create'])}")
    target, achieved = s["target_requests_per_s"], s["achieved_requests_per_s"]
    print(f"  steady {target:.0f} req/s target: achieved {achieved} req/s, errors {s_err}")
    print(f"    cycles not launched (no idle user): {s['cycles_not_launched']}")
    print(f"    all requests  {q(s['all_requests'])}")
    print(f"  peak RSS of the five services together: {m['peak_total_mib']} MiB {m['peak_mib']}")
    print(f"  written to {write_result('gateway_load', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
