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

Run at several concurrencies (--concurrency 1 5 20 50), phases 1 and 2 repeat per
concurrency; the steady phase uses --steady-users users. Ceiling, same run: a trivial
FastAPI app (bench/trivial_http.py) under uvicorn, the same routes answering at once,
driven by the same load generator through the same phases.

Prints requests per second and p50/p90/p99/max per call, and the peak resident memory
of the five service processes (from their pid files); writes the same as JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
from benchkit import (
    ROOT,
    build_loadgen,
    cpu_between_each,
    free_port,
    go_loadgen,
    idle_cpu_ms_per_s,
    machine_info,
    per_op_ms,
    service_pids,
    start_own_stack,
    steal_between,
    summary_ms,
    with_descendants,
    write_result,
)

from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from ttlocal import proc
from ttlocal.config import SERVICES, StackConfig
from ttlocal.python_env import venv_python

PASSWORD = "bench-password-0123"
# The benchmark measures the gateway's work, limiter included, not its refusals.
UNLIMITED = {
    "GATEWAY_RATE_PER_S": "100000",
    "GATEWAY_RATE_BURST": "100000",
    "GATEWAY_LOGIN_RATE_BURST": "1000",
}
# The configuration of `make up` and docker-compose on this 2-core machine (the test profile
# runs one process); GATEWAY_WORKERS in the environment overrides it.
WORKERS = {"GATEWAY_WORKERS": os.environ.get("GATEWAY_WORKERS", "2")}


@dataclass
class Calls:
    ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, ms: float) -> None:
        self.ms.setdefault(name, []).append(ms)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class MemorySampler:
    """Peak RSS of each service process (VmRSS from /proc), sampled while the load runs."""

    def __init__(self, cfg: StackConfig) -> None:
        self.pids = service_pids(cfg, SERVICES)
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
            sample = {n: sum(map(self.rss_kib, with_descendants([p]))) for n, p in self.pids.items()}
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


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes


class Http:
    """The load generator's HTTP client: aiohttp, one keep-alive connection per virtual user.

    Not httpx: on this machine httpx's AsyncClient itself tops out near 450 requests/s
    and falls to ~220 at 20 concurrent users and ~110 at 50 against a trivial app, where
    aiohttp does 1,700-3,500 - the load generator must not be what is measured.
    """

    def __init__(self, base_url: str, connections: int) -> None:
        self.base_url = base_url
        self.connections = connections
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Http:
        self.session = aiohttp.ClientSession(
            self.base_url,
            connector=aiohttp.TCPConnector(limit=self.connections),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, json: object = None
    ) -> Answer:
        assert self.session is not None
        async with self.session.request(method, url, headers=headers, json=json) as resp:
            return Answer(resp.status, await resp.read())


async def log_in(http: Http, email: str) -> dict[str, str]:
    resp = await http.request(
        "POST", "/v1/auth/token", json={"grant_type": "password", "email": email, "password": PASSWORD}
    )
    if resp.status_code != 200:
        raise RuntimeError(f"log-in of {email} answered {resp.status_code}: {resp.body[:300]!r}")
    return {"Authorization": f"Bearer {json.loads(resp.body)['access_token']}"}


async def timed(http: Http, calls: Calls, name: str, record: bool, **request) -> Answer | None:
    t0 = time.perf_counter()
    try:
        resp = await http.request(**request)
    except (aiohttp.ClientError, TimeoutError) as exc:
        calls.error(f"{name}: {type(exc).__name__}")
        return None
    ms = (time.perf_counter() - t0) * 1000
    if resp.status_code >= 300:
        calls.error(f"{name}: {resp.status_code}")
    elif record:
        calls.add(name, ms)
    return resp


def go_timer_plan(
    base_url: str, users: list[dict[str, str]], project_id: str, warmup: float, duration: float
) -> dict:
    """The timer phase's closed loop for the Go load generator: per user a start (201) and a stop
    (200), each user on its own keep-alive connection; a failed cycle is followed by a stop."""
    stop = {"name": "timer_stop", "method": "POST", "path": "/v1/timer/stop", "status": 200}
    start = {
        "name": "timer_start",
        "method": "POST",
        "path": "/v1/timer/start",
        "body": json.dumps({"project_id": project_id}).encode(),
        "status": 201,
    }
    return {
        "protocol": "http",
        "target": base_url,
        "connections": len(users),
        "duration_s": duration,
        "warmup_s": warmup,
        "timeout_s": 30,
        "users": [
            {"calls": [start | {"headers": h}, stop | {"headers": h}], "recover": stop | {"headers": h}}
            for h in users
        ],
    }


async def timer_phase(
    http: Http,
    users: list[dict[str, str]],
    project_id: str,
    warmup: float,
    duration: float,
    pids: Mapping[str, int] | None = None,
    idle_ms_per_s: float = 0.0,
    loadgen: Path | None = None,
) -> dict:
    """Closed loop of start+stop cycles; `pids`: the server processes (by name) whose CPU per cycle
    to report, in total (also net of their `idle_ms_per_s`) and each (with its worker processes).
    Driven by the Go load generator `loadgen` when given (about half of aiohttp's CPU per cycle,
    on the same two cores as the services), else from Python."""
    calls, cycles, all_cycles = Calls(), 0, 0
    generator: dict = {"load_generator": "go" if loadgen else "python"}
    if loadgen is not None:
        running = asyncio.create_task(
            go_loadgen(loadgen, go_timer_plan(http.base_url, users, project_id, warmup, duration))
        )
    now = time.perf_counter()
    measure_from, until = now + warmup, now + warmup + duration
    groups = {name: [pid] for name, pid in (pids or {}).items()}
    cpu = asyncio.create_task(cpu_between_each(groups, measure_from, until))
    steal = asyncio.create_task(steal_between(measure_from, until))

    async def vu(headers: dict[str, str]) -> None:
        nonlocal cycles, all_cycles
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
            ok = (
                start is not None
                and stop is not None
                and start.status_code == 201
                and stop.status_code == 200
            )
            all_cycles += ok  # the cycles that succeeded, warm-up included: what the Go loop counts
            if record and ok and time.perf_counter() <= until:
                cycles += 1

    try:
        if loadgen is None:
            began = time.process_time()
            await asyncio.gather(*(vu(h) for h in users))
            # The whole process, warm-up included (its samplers too: a little more than the loop).
            generator["load_generator_cpu_ms_per_cycle"] = per_op_ms(time.process_time() - began, all_cycles)
        else:
            out = await running
            cycles, calls.ms, calls.errors = out["cycles"], out["latency_ms"], out["errors"]
            generator["load_generator_cpu_ms_per_cycle"] = per_op_ms(out["cpu_s"], out["all_cycles"])
    except BaseException:
        cpu.cancel()
        steal.cancel()
        raise
    requests = sum(len(v) for v in calls.ms.values())
    by_process = await cpu
    cpu_s = sum(by_process.values())
    return {
        **generator,
        "cycles": cycles,
        "cycles_per_s": round(cycles / duration, 1),
        "requests_per_s": round(requests / duration, 1),
        "server_cpu_ms_per_cycle": per_op_ms(cpu_s, cycles),
        "server_cpu_ms_per_cycle_net_of_idle": per_op_ms(
            cpu_s, cycles, idle_ms_per_s=idle_ms_per_s, seconds=duration
        ),
        "server_cpu_ms_per_cycle_by_process": {n: per_op_ms(c, cycles) for n, c in by_process.items()},
        "cpu_steal_percent": await steal,
        **{k: summary_ms(v) for k, v in calls.ms.items()},
        "errors": calls.errors,
    }


async def entries_phase(
    http: Http,
    users: list[dict[str, str]],
    project_id: str,
    warmup: float,
    duration: float,
    *,
    days_back: int = 1,
    pids: Mapping[str, int] | None = None,
    idle_ms_per_s: float = 0.0,
) -> dict:
    """Closed loop of entry creation; each run needs its own `days_back` so runs never overlap."""
    calls = Calls()
    now = time.perf_counter()
    measure_from, until = now + warmup, now + warmup + duration
    groups = {name: [pid] for name, pid in (pids or {}).items()}
    cpu = asyncio.create_task(cpu_between_each(groups, measure_from, until))
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=days_back)

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
    by_process = await cpu
    cpu_s = sum(by_process.values())
    return {
        "requests_per_s": round(done / duration, 1),
        "server_cpu_ms_per_request": per_op_ms(cpu_s, done),
        "server_cpu_ms_per_request_net_of_idle": per_op_ms(
            cpu_s, done, idle_ms_per_s=idle_ms_per_s, seconds=duration
        ),
        "server_cpu_ms_per_request_by_process": {n: per_op_ms(c, done) for n, c in by_process.items()},
        "entry_create": summary_ms(calls.ms.get("entry_create", [])),
        "errors": calls.errors,
    }


async def steady_phase(
    http: Http,
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
        "all_requests": summary_ms(all_ms),
        **{k: summary_ms(v) for k, v in calls.ms.items()},
        "errors": calls.errors,
    }


TRIVIAL = "bench-trivial-http"


def start_trivial_http(cfg: StackConfig, cleanup: ExitStack) -> str:
    """bench/trivial_http.py under uvicorn on a free port (stopped on exit); returns its base URL."""
    port = free_port()
    argv = [str(venv_python(cfg)), "-m", "uvicorn", "trivial_http:app", "--app-dir", str(ROOT / "bench")]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc.spawn(cfg, TRIVIAL, argv, cwd=ROOT)
    cleanup.callback(proc.stop, cfg, TRIVIAL)
    proc.wait_until(lambda: proc.port_open(port), "trivial http", 60, cfg=cfg, name=TRIVIAL)
    return f"http://127.0.0.1:{port}"


async def phases(
    http: Http,
    users: list[dict[str, str]],
    project_id: str,
    concurrencies: list[int],
    steady_users: int,
    rate: float,
    warmup: float,
    duration: float,
    pids: Mapping[str, int],
    loadgen: Path | None,
) -> dict:
    """Timer and entry phases at every concurrency, then the steady phase: one system's numbers.

    `pids`: the server processes whose CPU per operation is reported, measured idle first;
    `loadgen`: the Go load generator, which drives the timer phase when given."""
    idle = await idle_cpu_ms_per_s(list(pids.values()))
    out: dict = {"by_concurrency": {}, "server_idle_cpu_ms_per_s": idle}
    for k, c in enumerate(concurrencies):
        timer = await timer_phase(http, users[:c], project_id, warmup, duration, pids, idle, loadgen)
        entries = await entries_phase(
            http, users[:c], project_id, warmup, duration, days_back=1 + 40 * k, pids=pids, idle_ms_per_s=idle
        )
        out["by_concurrency"][str(c)] = {"timer": timer, "entries": entries}
    out["steady"] = await steady_phase(http, users[:steady_users], project_id, rate, warmup, duration)
    return out


async def run(
    cfg: StackConfig,
    *,
    concurrencies: list[int],
    steady_users: int,
    rate: float,
    warmup: float,
    duration: float,
    ceiling_url: str | None,
    loadgen: str = "go",
) -> dict:
    """The gateway through all phases (memory sampled), then the trivial ceiling through the same."""
    most = max([*concurrencies, steady_users])
    binary = build_loadgen() if loadgen == "go" else None
    project_id, emails = await make_users(cfg.grpc_target("projects"), most)
    async with Http(cfg.gateway_url, most * 2) as http:
        users = [await log_in(http, e) for e in emails]
        memory = MemorySampler(cfg)
        memory.start()
        pids = memory.pids
        gateway = await phases(
            http, users, project_id, concurrencies, steady_users, rate, warmup, duration, pids, binary
        )
        gateway["memory"] = await memory.stop()
    result = {
        "concurrencies": concurrencies,
        "steady_users": steady_users,
        "duration_s": duration,
        "warmup_s": warmup,
        "gateway": gateway,
    }
    if ceiling_url:
        async with Http(ceiling_url, most * 2) as http:
            anonymous: list[dict[str, str]] = [{} for _ in range(most)]
            pids = service_pids(cfg, [TRIVIAL])
            result["ceiling"] = await phases(
                http,
                anonymous,
                project_id,
                concurrencies,
                steady_users,
                rate,
                warmup,
                duration,
                pids,
                binary,
            )
    return result


def print_result(result: dict) -> None:
    def q(stats: dict) -> str:
        return "  ".join(f"{k} {stats.get(k + '_ms', '-')} ms" for k in ("p50", "p90", "p99", "max"))

    for system in ("gateway", "ceiling"):
        if system not in result:
            continue
        r = result[system]
        title = "Through the gateway" if system == "gateway" else "Ceiling: trivial FastAPI/uvicorn app"
        print(f"\n{title}, {result['duration_s']:.0f} s per phase:")
        for c, phase in r["by_concurrency"].items():
            t, e = phase["timer"], phase["entries"]
            errors = t["errors"] or "none"
            print(
                f"  {c} users: timer start+stop {t['cycles_per_s']} cycles/s, errors {errors}, "
                f"server CPU {t['server_cpu_ms_per_cycle']} ms/cycle"
                f" {t['server_cpu_ms_per_cycle_by_process']}, CPU steal {t.get('cpu_steal_percent')}%"
            )
            print(
                f"    load generator: {t.get('load_generator', 'python')},"
                f" {t.get('load_generator_cpu_ms_per_cycle')} ms CPU/cycle"
            )
            print(f"    timer_start   {q(t.get('timer_start', {}))}")
            print(f"    timer_stop    {q(t.get('timer_stop', {}))}")
            print(f"    entry_create  {e['requests_per_s']} req/s  {q(e['entry_create'])}")
        s = r["steady"]
        print(
            f"  steady {s['target_requests_per_s']:.0f} req/s target with {result['steady_users']} users:"
            f" achieved {s['achieved_requests_per_s']} req/s, not launched {s['cycles_not_launched']},"
            f" errors {s['errors'] or 'none'}"
        )
        print(f"    all requests  {q(s['all_requests'])}")
        if "memory" in r:
            m = r["memory"]
            print(f"  peak RSS of the five services together: {m['peak_total_mib']} MiB {m['peak_mib']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[20], help="virtual users, one or more (default 20)"
    )
    parser.add_argument("--steady-users", type=int, default=20, help="users of the steady phase (default 20)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds per phase (default 20)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per phase (default 3)")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests/s of the steady phase (default 200)"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the trivial-app ceiling")
    parser.add_argument(
        "--loadgen",
        choices=["go", "python"],
        default="go",
        help="the timer phase's closed loop: Go (bench/loadgen, the default) or Python aiohttp",
    )
    parser.add_argument(
        "--existing", metavar="PROFILE", choices=["dev", "test"], help="use this profile's stack"
    )
    args = parser.parse_args()

    cfg = StackConfig.load(args.existing or "test")
    with ExitStack() as cleanup:
        pg = cfg.database_url("projects")
        if not args.existing:
            pg = start_own_stack(cfg, cleanup, extra_env=UNLIMITED | WORKERS).databases["projects"]
        ceiling_url = None if args.no_ceiling else start_trivial_http(cfg, cleanup)
        result = asyncio.run(
            run(
                cfg,
                concurrencies=args.concurrency,
                steady_users=args.steady_users,
                rate=args.rate,
                warmup=args.warmup,
                duration=args.duration,
                ceiling_url=ceiling_url,
                loadgen=args.loadgen,
            )
        )
        result["machine"] = machine_info(pg, cfg)
    result |= {"benchmark": "gateway_load", "target": cfg.gateway_url}
    print_result(result)
    print(f"  written to {write_result('gateway_load', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
