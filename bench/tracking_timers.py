"""StartTimer/StopTimer throughput and latency over gRPC at a fixed concurrency, next to
the same transactions driven by pgbench straight at PostgreSQL (the ceiling).

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
and audits the entry). The pgbench ceiling runs the same statements against
tracking's database: the start (INSERT .. ON CONFLICT DO NOTHING on the running
timer index, under the overlap EXCLUDE constraint, plus its audit row) and the
discarding stop (SELECT .. FOR UPDATE, DELETE, audit row), with the same
number of clients, prepared statements, one cycle per pgbench transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import (  # noqa: E402
    build_loadgen,
    cpu_between,
    free_port,
    go_loadgen,
    idle_cpu_ms_per_s,
    machine_info,
    per_op_ms,
    service_pids,
    start_own_stack,
    steal_between,
    summary_ms,
    write_result,
)

from timetracking.projects.v1 import projects_pb2 as ppb  # noqa: E402
from timetracking.projects.v1 import projects_pb2_grpc  # noqa: E402
from timetracking.tracking.v1 import tracking_pb2 as tpb  # noqa: E402
from timetracking.tracking.v1 import tracking_pb2_grpc  # noqa: E402
from ttlocal import postgres, proc  # noqa: E402
from ttlocal.config import StackConfig  # noqa: E402
from ttlocal.python_env import venv_python  # noqa: E402

# One pgbench transaction = one start+stop cycle of this client's own user (client_id -> uuid).
PGBENCH_CYCLE = r"""BEGIN;
INSERT INTO time_entries (entry_id, user_id, project_id, description, start_time, is_billable,
  hourly_rate, currency, tags, created_at, updated_at)
  VALUES (gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid,
  '6f1e0f3c-0000-4000-8000-000000000001', '', clock_timestamp(), true, 100.00, 'EUR', '{}', now(), now())
  ON CONFLICT (user_id) WHERE end_time IS NULL DO NOTHING
  RETURNING entry_id, to_jsonb(time_entries) AS snap \gset
INSERT INTO entry_audit (entry_id, actor_user_id, action, before, after)
  VALUES (:entry_id, ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid,
  'timer_started', NULL, :snap);
END;
BEGIN;
SELECT entry_id AS running, version, to_jsonb(t) AS before FROM time_entries t
  WHERE user_id = ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid
  AND end_time IS NULL FOR UPDATE \gset
DELETE FROM time_entries WHERE entry_id = :running AND version = :version AND invoice_id IS NULL
  RETURNING entry_id;
INSERT INTO entry_audit (entry_id, actor_user_id, action, before, after)
  VALUES (:running, ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid,
  'timer_discarded', :before, NULL);
END;
"""


def pgbench_ceiling(tracking_db: str, concurrency: int, duration_s: float) -> dict:
    """The start+stop cycle's SQL alone, pgbench at the same concurrency: cycles/s and cycle latency."""
    binary = postgres.bin_dir() / "pgbench"
    url = urlsplit(tracking_db.replace("postgresql+psycopg", "postgresql"))
    with tempfile.TemporaryDirectory(prefix="tt-pgbench-") as tmp:
        script = Path(tmp) / "cycle.sql"
        script.write_text(PGBENCH_CYCLE)
        cmd = [
            str(binary),
            "-n",  # no vacuum of pgbench's own tables (there are none)
            "-M",
            "prepared",
            "-c",
            str(concurrency),
            "-j",
            str(min(concurrency, os.cpu_count() or 1)),
            "-T",
            str(max(1, round(duration_s))),
            "-f",
            str(script),
            "-l",
            "--log-prefix",
            str(Path(tmp) / "tx"),
            "-h",
            url.hostname or "127.0.0.1",
            "-p",
            str(url.port),
            "-U",
            url.username or "postgres",
            url.path.lstrip("/"),
        ]
        env = {**os.environ, "PGPASSWORD": url.password or ""}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed ({out.returncode}):\n{out.stderr[-2000:]}")
        tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        latencies_ms = []
        for log in Path(tmp).glob("tx.*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                if len(fields) > 2 and fields[2].isdigit():
                    latencies_ms.append(int(fields[2]) / 1000)
    return {
        "tool": "pgbench -M prepared",
        "concurrency": concurrency,
        "duration_s": max(1, round(duration_s)),
        "cycles_per_s": round(float(tps.group(1)), 1) if tps else None,
        "failed": int(failed.group(1)) if failed else 0,
        "cycle": summary_ms(latencies_ms),
    }


@dataclass
class Samples:
    start_ms: list[float] = field(default_factory=list)
    stop_ms: list[float] = field(default_factory=list)
    cycle_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    cycles: int = 0
    all_cycles: int = 0  # warm-up included


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
        samples.all_cycles += 1
        if t0 >= measure_from and t2 <= until:
            samples.start_ms.append((t1 - t0) * 1000)
            samples.stop_ms.append((t2 - t1) * 1000)
            samples.cycle_ms.append((t2 - t0) * 1000)
            samples.cycles += 1


TRACKING_SERVICE = "/" + tpb.DESCRIPTOR.services_by_name["TrackingService"].full_name


def go_plan(target: str, project_id: str, users: list[str], duration_s: float, warmup_s: float) -> dict:
    """The same closed loop for the Go load generator: per user a start and a stop, encoded here."""

    def cycle(user: str) -> dict:
        start = tpb.StartTimerRequest(actor_user_id=user, user_id=user, project_id=project_id)
        stop = {
            "name": "stop_timer",
            "method": f"{TRACKING_SERVICE}/StopTimer",
            "body": tpb.StopTimerRequest(actor_user_id=user, user_id=user).SerializeToString(),
        }
        calls = [
            {
                "name": "start_timer",
                "method": f"{TRACKING_SERVICE}/StartTimer",
                "body": start.SerializeToString(),
            },
            stop,
        ]
        return {"calls": calls, "recover": stop}

    return {
        "target": target,
        "connections": 1,  # as the Python generator: one channel, one HTTP/2 connection
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "timeout_s": 10,
        "users": [cycle(u) for u in users],
    }


async def run_load(
    tracking_target: str,
    projects_target: str,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    pids: list[int] | None = None,
    loadgen: str = "go",
) -> dict:
    """The closed loop; `pids` (tracking's and projects') give the CPU they spend per cycle."""
    binary = build_loadgen() if loadgen == "go" else None
    generator: dict[str, Any] = {"load_generator": "go" if binary else "python"}
    async with (
        grpc.aio.insecure_channel(projects_target) as pch,
        grpc.aio.insecure_channel(tracking_target) as tch,
    ):
        project_id, users = await make_users(projects_pb2_grpc.ProjectsServiceStub(pch), concurrency)
        tracking = tracking_pb2_grpc.TrackingServiceStub(tch)
        samples = Samples()
        idle = await idle_cpu_ms_per_s(pids or [])
        if binary is not None:
            plan = go_plan(tracking_target, project_id, users, duration_s, warmup_s)
            running = asyncio.create_task(go_loadgen(binary, plan))
        now = time.perf_counter()
        measure_from, until = now + warmup_s, now + warmup_s + duration_s
        cpu = asyncio.create_task(cpu_between(pids or [], measure_from, until))
        steal = asyncio.create_task(steal_between(measure_from, until))
        if binary is None:
            began = time.process_time()
            await asyncio.gather(
                *(virtual_user(tracking, u, project_id, until, measure_from, samples) for u in users)
            )
            generator["load_generator_cpu_ms_per_cycle"] = per_op_ms(
                time.process_time() - began, samples.all_cycles
            )
        else:
            out = await running
            samples.start_ms = out["latency_ms"].get("start_timer", [])
            samples.stop_ms = out["latency_ms"].get("stop_timer", [])
            samples.cycle_ms = out["cycle_ms"] or []
            samples.cycles = out["cycles"]
            samples.errors = out["errors"]
            generator["load_generator_cpu_ms_per_cycle"] = per_op_ms(out["cpu_s"], out["all_cycles"])
    return {
        **generator,
        "concurrency": concurrency,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "cycles": samples.cycles,
        "cycles_per_s": round(samples.cycles / duration_s, 1),
        "calls_per_s": round(2 * samples.cycles / duration_s, 1),
        "server_idle_cpu_ms_per_s": idle,
        "cpu_steal_percent": await steal,
        "server_cpu_ms_per_cycle": per_op_ms(cpu_s := await cpu, samples.cycles),
        "server_cpu_ms_per_cycle_net_of_idle": per_op_ms(
            cpu_s, samples.cycles, idle_ms_per_s=idle, seconds=duration_s
        ),
        "start_timer": summary_ms(samples.start_ms),
        "stop_timer": summary_ms(samples.stop_ms),
        "cycle": summary_ms(samples.cycle_ms),
        "errors": samples.errors,
    }


FRAMEWORK = "bench-trivial-grpc"


async def framework_ceiling(
    target: str, pid: int, concurrency: int, duration_s: float, warmup_s: float
) -> dict:
    """The same plan against bench/trivial_grpc.py (grpc.aio, empty handlers): what the framework
    alone allows at this concurrency. Go load generator only (None without Go)."""
    binary = build_loadgen()
    if binary is None:
        return {}
    users = [str(uuid.uuid4()) for _ in range(concurrency)]
    running = asyncio.create_task(
        go_loadgen(binary, go_plan(target, str(uuid.uuid4()), users, duration_s, warmup_s))
    )
    now = time.perf_counter()
    cpu = asyncio.create_task(cpu_between([pid], now + warmup_s, now + warmup_s + duration_s))
    out = await running
    cycles = out["cycles"]
    return {
        "server": "bench/trivial_grpc.py: grpc.aio on uvloop, empty StartTimer/StopTimer handlers",
        "cycles_per_s": round(cycles / duration_s, 1),
        "server_cpu_ms_per_cycle": per_op_ms(await cpu, cycles),
        "start_timer": summary_ms(out["latency_ms"].get("start_timer", [])),
        "stop_timer": summary_ms(out["latency_ms"].get("stop_timer", [])),
        "errors": out["errors"],
    }


def run_framework_ceiling(cfg: StackConfig, concurrency: int, duration_s: float, warmup_s: float) -> dict:
    """Start bench/trivial_grpc.py on a free port, measure it, stop it (by its pid file)."""
    port = free_port()
    argv = [str(venv_python(cfg)), str(ROOT / "bench" / "trivial_grpc.py"), "--port", str(port)]
    proc.spawn(cfg, FRAMEWORK, argv, cwd=ROOT)
    try:
        proc.wait_until(lambda: proc.port_open(port), "trivial grpc", 60, cfg=cfg, name=FRAMEWORK)
        pid = proc.read_pid(cfg.pid_file(FRAMEWORK))
        assert pid is not None
        return uvloop.run(framework_ceiling(f"127.0.0.1:{port}", pid, concurrency, duration_s, warmup_s))
    finally:
        proc.stop(cfg, FRAMEWORK)


def run(*args: Any, **kwargs: Any) -> dict:
    """`run_load` on uvloop: the load generator spends less of the shared 2 cores per call, as
    the product's own callers do (the gateway and the services run on uvloop too)."""
    return uvloop.run(run_load(*args, **kwargs))


def print_result(result: dict) -> None:
    errors = result["errors"] or "none"
    print(
        f"\nStartTimer+StopTimer at concurrency {result['concurrency']}, "
        f"{result['duration_s']:.0f} s measured (CPU steal {result.get('cpu_steal_percent')}%):\n"
        f"  {result['cycles_per_s']} cycles/s ({result['calls_per_s']} calls/s), errors {errors}, "
        f"tracking+projects CPU {result['server_cpu_ms_per_cycle']} ms/cycle "
        f"({result['server_cpu_ms_per_cycle_net_of_idle']} net of "
        f"{result['server_idle_cpu_ms_per_s']} ms/s idle); load generator: {result['load_generator']}"
        + (f", {cpu} ms CPU/cycle" if (cpu := result.get("load_generator_cpu_ms_per_cycle")) else "")
    )
    for name in ("start_timer", "stop_timer"):
        m = result[name]
        quantiles = "  ".join(f"{q} {m.get(q + '_ms', '-')} ms" for q in ("p50", "p90", "p99", "max"))
        print(f"  {name:11s} {quantiles}")
    f = result.get("framework")
    if f:
        print(
            f"  ceiling, grpc.aio with empty handlers (bench/trivial_grpc.py): {f['cycles_per_s']} cycles/s, "
            f"CPU {f['server_cpu_ms_per_cycle']} ms/cycle, p50/p99 start "
            f"{f['start_timer'].get('p50_ms')}/{f['start_timer'].get('p99_ms')} ms, stop "
            f"{f['stop_timer'].get('p50_ms')}/{f['stop_timer'].get('p99_ms')} ms"
        )
    c = result.get("ceiling")
    if c:
        cycle = c["cycle"]
        print(
            f"  ceiling, the same SQL by pgbench: {c['cycles_per_s']} cycles/s, cycle p50 "
            f"{cycle.get('p50_ms', '-')} ms p99 {cycle.get('p99_ms', '-')} ms, failed {c['failed']}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=20, help="virtual users (default 20)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the ceilings (pgbench, grpc.aio with empty handlers)"
    )
    parser.add_argument(
        "--loadgen",
        choices=["go", "python"],
        default="go",
        help="the Go closed loop (bench/loadgen, the default) or the same loop in Python grpc.aio",
    )
    parser.add_argument(
        "--existing", metavar="PROFILE", choices=["dev", "test"], help="use this profile's running stack"
    )
    args = parser.parse_args()

    cfg = StackConfig.load(args.existing or "test")
    with ExitStack() as cleanup:
        tracking_db = cfg.database_url("tracking")
        if not args.existing:
            tracking_db = start_own_stack(cfg, cleanup).databases["tracking"]
        result = run(
            cfg.grpc_target("tracking"),
            cfg.grpc_target("projects"),
            args.concurrency,
            args.duration,
            args.warmup,
            list(service_pids(cfg, ["tracking", "projects"]).values()),
            args.loadgen,
        )
        if not args.no_ceiling:
            result["ceiling"] = pgbench_ceiling(tracking_db, args.concurrency, args.duration)
            result["framework"] = run_framework_ceiling(cfg, args.concurrency, args.duration, args.warmup)
        result["machine"] = machine_info(tracking_db, cfg)
    result |= {
        "benchmark": "tracking_timers",
        "target": {"tracking": cfg.grpc_target("tracking"), "projects": cfg.grpc_target("projects")},
    }
    print_result(result)
    print(f"  written to {write_result('tracking_timers', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
