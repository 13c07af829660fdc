"""What every benchmark script shares: an isolated stack, percentiles, results on disk, the
machine's description, and the pure parts of the published table (ratios, targets, markdown).

The pure functions (`percentile`, `summary_ms`, `ratio`, `target_met`, `render_table`,
`render_report`) are unit-tested in bench/tests/.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from ttlocal import cli as stack  # noqa: E402
from ttlocal import proc, services  # noqa: E402
from ttlocal.config import DATABASE_SERVICES, SERVICES, StackConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results"
T = TypeVar("T")

# --- numbers -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p * len(ordered) / 100) - 1))
    return ordered[k]


def summary_ms(values: Sequence[float], *, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    """count, p50/p90/p99/max/mean in milliseconds; `scale` converts the inputs (1000 for seconds)."""
    if not values:
        return {"count": 0}
    ms = [v * scale for v in values]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), digits),
        "p90_ms": round(percentile(ms, 90), digits),
        "p99_ms": round(percentile(ms, 99), digits),
        "max_ms": round(max(ms), digits),
        "mean_ms": round(sum(ms) / len(ms), digits),
    }


def ratio(value: float | None, ceiling: float | None, better: str) -> float | None:
    """How many times the ceiling beats the product: ceiling/value for rates ("higher" is better),
    value/ceiling for times ("lower" is better). 1.0 means the product reaches its ceiling."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better: expected 'higher' or 'lower', got {better!r}")
    if value is None or ceiling is None or not (math.isfinite(value) and math.isfinite(ceiling)):
        return None
    if value <= 0 or ceiling <= 0:
        return None
    return ceiling / value if better == "higher" else value / ceiling


_OPS = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
}


@dataclass(frozen=True)
class Target:
    """A speed or memory target from an issue, e.g. Target("<", 50, "issue 7")."""

    op: str
    value: float
    source: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op: expected one of {sorted(_OPS)}, got {self.op!r}")


def target_met(value: float | None, target: Target | None) -> bool | None:
    """True/False against the target; None when there is no target or no (finite) value."""
    if target is None or value is None or not math.isfinite(value):
        return None
    return bool(_OPS[target.op](value, target.value))


@dataclass
class Metric:
    """One row of the published table: the product's number, its ceiling, its target."""

    key: str
    name: str
    value: float | None
    unit: str
    better: str  # "higher" or "lower"
    ceiling: float | None = None
    ceiling_what: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.ceiling, self.better)

    @property
    def met(self) -> bool | None:
        return target_met(self.value, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "better": self.better,
            "ceiling": self.ceiling,
            "ceiling_what": self.ceiling_what,
            "ratio": None if self.ratio is None else round(self.ratio, 2),
            "target": None
            if self.target is None
            else {"op": self.target.op, "value": self.target.value, "source": self.target.source},
            "met": self.met,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metric:
        t = d.get("target")
        return cls(
            key=d["key"],
            name=d["name"],
            value=d.get("value"),
            unit=d.get("unit", ""),
            better=d.get("better", "lower"),
            ceiling=d.get("ceiling"),
            ceiling_what=d.get("ceiling_what", ""),
            target=Target(t["op"], t["value"], t.get("source", "")) if t else None,
            note=d.get("note", ""),
        )


def fmt_number(v: float | None) -> str:
    """Three significant figures or so, thousands separated; '-' for nothing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    a = abs(v)
    if float(v).is_integer():
        return f"{int(v):,}"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(metrics: Iterable[Metric]) -> str:
    """The markdown table: metric / value / ceiling / ratio / target / met?"""
    rows = [
        "| Metric | Value | Ceiling (same run) | Ratio | Target | Met? |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for m in metrics:
        unit = f" {m.unit}" if m.unit else ""
        value = fmt_number(m.value) + (unit if m.value is not None else "")
        ceiling = "-"
        if m.ceiling is not None:
            ceiling = fmt_number(m.ceiling) + unit + (f" ({m.ceiling_what})" if m.ceiling_what else "")
        r = m.ratio
        target = "-" if m.target is None else f"{m.target.op} {fmt_number(m.target.value)}{unit}"
        if m.target is not None and m.target.source:
            target += f" ({m.target.source})"
        met = {True: "yes", False: "**no**", None: "-"}[m.met]
        name = m.name + (f" — {m.note}" if m.note else "")
        rows.append(
            "| "
            + " | ".join(
                _cell(c) for c in (name, value, ceiling, "-" if r is None else f"x{r:.2f}", target, met)
            )
            + " |"
        )
    return "\n".join(rows) + "\n"


def render_report(result: Mapping[str, Any]) -> str:
    """docs/benchmarks.md from run_all's combined JSON."""
    machine = result["machine"]
    metrics = [Metric.from_dict(d) for d in result["metrics"]]
    with_target = [m for m in metrics if m.target is not None]
    met = sum(1 for m in with_target if m.met)
    load = machine.get("loadavg_before"), machine.get("loadavg_end")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run_all.py`; do not edit by hand. Every number below was measured in one",
        "run on one machine, its ceiling beside it in the same run. **Ratio** says how many times the",
        "ceiling beats the product (ceiling / product for rates, product / ceiling for times): x1.00",
        "would mean the product adds nothing over the bare minimum it is built on.",
        "",
        f"- **Date**: {result['finished_at']} (started {result['started_at']}, took "
        f"{result['elapsed_s']:.0f} s)",
        f"- **Mode**: {result['mode']}",
        f"- **Commit**: `{machine['git_commit']}`"
        + (" (with uncommitted changes)" if machine["git_dirty"] else ""),
        f"- **Machine**: {machine['cpu_model']}, {machine['cpus']} CPUs, {machine['ram_gib']} GiB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, "
        f"PostgreSQL {machine.get('postgresql') or '?'}, Kafka {machine.get('kafka') or '?'}",
        f"- **Load average** (1 min) before the run: {fmt_number(load[0])}, "
        f"at its end: {fmt_number(load[1])} (the end includes the run's own load). "
        "Above ~0.5 before the run means other work shared the cores and distorted these numbers",
    ]
    steal = machine.get("steal_percent")
    if steal:
        shares = (f"{name} {'-' if pct is None else f'{pct:.1f}%'}" for name, pct in steal.items())
        lines.append(
            "- **CPU steal** (the share of the cores the hypervisor gave to other guests; nobody here "
            "could use it): " + ", ".join(shares)
        )
    lines += [
        f"- **Targets met**: {met} of {len(with_target)}",
        "",
        "The stack is the local runner's test profile: its PostgreSQL runs with fsync=off and",
        "full_page_writes=off (safe against a PostgreSQL crash, not an operating-system crash; every",
        "commit is still synchronous), and the SQL ceilings run on that same server.",
        "",
        "Reproduce (the load generator runs on the same cores as the services):",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        render_table(metrics).rstrip("\n"),
        "",
        "Where a target is not met, [performance.md](performance.md) explains the gap with a profile",
        "and a plan.",
        "",
        "## What the ceilings are",
        "",
    ]
    for key, text in result.get("ceilings", {}).items():
        lines.append(f"- **{key}**: {text}")
    if result.get("notes"):
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in result["notes"]]
    lines += ["", "Raw numbers: the combined JSON in `bench/results/run_all-*.json` of that run.", ""]
    return "\n".join(lines)


# --- the machine -----------------------------------------------------------------------------


def _first(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def kafka_version(cfg: StackConfig) -> str | None:
    """The broker's version, from the kafka-server jar the runner fetched (e.g. '4.1.1')."""
    for jar in sorted(cfg.cache_dir.glob("kafka-libs/kafka-server-[0-9]*.jar")):
        return jar.stem.removeprefix("kafka-server-")
    return None


def machine_info(postgres_url: str | None = None, cfg: StackConfig | None = None) -> dict[str, Any]:
    """CPU model, cores, RAM, kernel, Python, PostgreSQL and Kafka versions, git commit, load."""
    mem_kib = _first("/proc/meminfo", "MemTotal")
    info: dict[str, Any] = {
        "cpu_model": _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "ram_gib": round(int(mem_kib.split()[0]) / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": None,
        "kafka": kafka_version(cfg) if cfg else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "loadavg": os.getloadavg()[0],
    }
    if postgres_url:
        import psycopg

        with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql")) as conn:
            row = conn.execute("SELECT current_setting('server_version')").fetchone()
            info["postgresql"] = row[0] if row else None
    return info


def cpu_times(stat_text: str | None = None) -> tuple[int, int]:
    """(steal, total) clock ticks of all CPUs so far, from the `cpu` line of /proc/stat."""
    text = stat_text if stat_text is not None else Path("/proc/stat").read_text()
    fields = [int(f) for f in text.splitlines()[0].split()[1:9]]  # user .. steal; guest is in user
    return fields[7], sum(fields)


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of the CPUs' time between two `cpu_times()` that the hypervisor gave to others.

    On a virtual machine that is CPU nobody here could use: a run with 20% steal had a fifth less
    machine than a run with none, which moves every throughput and latency of that run."""
    total = after[1] - before[1]
    if total <= 0:
        return None
    return round(100 * (after[0] - before[0]) / total, 1)


# --- processes ---------------------------------------------------------------------------


def service_pids(cfg: StackConfig, names: Iterable[str] = SERVICES) -> dict[str, int]:
    """The pids of the stack's processes, from their pid files (missing ones left out)."""
    pids = {}
    for name in names:
        pid = proc.read_pid(cfg.pid_file(name))
        if pid:
            pids[name] = pid
    return pids


def with_descendants(pids: Iterable[int]) -> list[int]:
    """The processes and every process they started (a gateway's workers), from /proc's children lists."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes and their descendants have used so far (/proc/<pid>/stat).

    Descendants are listed at the time of the call: a child that exits between two calls takes its
    CPU time along (not counted), so measure between instants where the process tree is stable."""
    ticks = 0
    for pid in with_descendants(pids):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def cpu_between(pids: Sequence[int], start: float, end: float) -> float:
    """CPU seconds the processes use between two time.perf_counter() instants (waits for both)."""
    return sum((await cpu_between_each({str(pid): [pid] for pid in pids}, start, end)).values(), 0.0)


async def readings_at(read: Callable[[], T], start: float, end: float) -> tuple[T, T]:
    """`read()` at two time.perf_counter() instants (waits for both): the measured window's edges."""
    import asyncio
    import time

    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    before = read()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    return before, read()


async def cpu_between_each(groups: Mapping[str, Sequence[int]], start: float, end: float) -> dict[str, float]:
    """CPU seconds each named group of processes uses between two time.perf_counter() instants."""
    before, after = await readings_at(
        lambda: {name: cpu_seconds(pids) for name, pids in groups.items()}, start, end
    )
    return {name: after[name] - before[name] for name in groups}


async def steal_between(start: float, end: float) -> float | None:
    """`steal_percent` between two time.perf_counter() instants (waits for both)."""
    return steal_percent(*await readings_at(cpu_times, start, end))


def per_op_ms(cpu_s: float, ops: int, *, idle_ms_per_s: float = 0.0, seconds: float = 0.0) -> float | None:
    """CPU milliseconds per operation (None without operations), less `idle_ms_per_s` over `seconds`:
    the background work (pollers, relays) the processes do with no load at all."""
    if not ops:
        return None
    return round(max(0.0, cpu_s * 1000 - idle_ms_per_s * seconds) / ops, 2)


async def idle_cpu_ms_per_s(pids: Sequence[int], seconds: float = 3.0) -> float:
    """CPU milliseconds per second the processes use with no load (measure before the load starts)."""
    import time

    now = time.perf_counter()
    return round(await cpu_between(pids, now, now + seconds) * 1000 / seconds, 2)


# --- the load generator ----------------------------------------------------------------------

LOADGEN_DIR = ROOT / "bench" / "loadgen"


def build_loadgen() -> Path | None:
    """Compile the Go load generator (bench/loadgen); None when this machine has no Go toolchain
    (the scripts then drive the load from Python and say so). Go's build cache makes an unchanged
    rebuild take about a second; the first build takes a minute (modules from the proxy)."""
    import shutil

    if shutil.which("go") is None:
        print("no Go toolchain on PATH: the load is driven from Python (more CPU per call)")
        return None
    out = LOADGEN_DIR / "bin" / "loadgen"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=LOADGEN_DIR, check=True)
    return out


def _plan_json(value: Any) -> Any:
    """The plan as JSON: bytes in base64, the form Go decodes into []byte."""
    import base64

    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {k: _plan_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plan_json(v) for v in value]
    return value


async def go_loadgen(binary: Path, plan: Mapping[str, Any]) -> dict[str, Any]:
    """Run the closed loop described by `plan` (bench/loadgen/main.go) and return its result:
    cycles, every measured call's latency per call name, errors, and its own CPU seconds.

    Start it right before `time.perf_counter()` marks the warm-up's start: the program's clock
    starts when it reads the plan, a few milliseconds later."""
    import asyncio

    child = await asyncio.create_subprocess_exec(
        str(binary),
        # One OS thread runs the goroutines: at 20 users, more only add idle spinning (0.58 against
        # 0.41 ms of CPU per timer cycle with GOMAXPROCS 2 and 1 on this 2-core machine).
        env={**os.environ, "GOMAXPROCS": os.environ.get("LOADGEN_GOMAXPROCS", "1")},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate(json.dumps(_plan_json(plan)).encode())
    if child.returncode != 0:
        raise RuntimeError(f"loadgen failed ({child.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


# --- the stack -------------------------------------------------------------------------------


@dataclass
class OwnStack:
    """A benchmark's isolated stack: fresh databases and uuid-named topics on the profile's infra."""

    cfg: StackConfig
    databases: dict[str, str]  # service -> postgresql+psycopg URL
    topics: dict[str, str] = field(default_factory=dict)  # entries, directory, ...
    consumer_group: str = ""

    def psycopg_url(self, service: str) -> str:
        return self.databases[service].replace("postgresql+psycopg", "postgresql")


def bench_topics(suffix: str) -> dict[str, str]:
    return {
        "entries": f"timetracking.entries.bench{suffix}",
        "system": f"timetracking.system.bench{suffix}",
        "directory": f"timetracking.directory.bench{suffix}",
        "invoices": f"timetracking.invoices.bench{suffix}",
        "dead_letter": f"timetracking.dlq.bench{suffix}",
    }


def free_port() -> int:
    """A TCP port nobody listens on right now (for a benchmark's own extra process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_infra(cfg: StackConfig, cleanup: ExitStack, names: Sequence[str] | None = None) -> None:
    """The profile's infrastructure (all of it, or `names`); on exit stops what was not running before."""
    wanted = [(n, c) for n, c in stack.INFRA if names is None or n in names]
    already = {n for n, _ in wanted if proc.running_pid(cfg, n)}
    cfg.ensure_dirs()
    for _, component in wanted:
        component.install(cfg)
    for _, component in wanted:
        component.start(cfg)

    def stop_infra() -> None:
        for name, component in reversed(wanted):
            if name not in already:
                component.stop(cfg)

    cleanup.callback(stop_infra)


def fresh_databases(
    cfg: StackConfig, cleanup: ExitStack, suffix: str, names: Iterable[str]
) -> dict[str, str]:
    """Empty databases `<service>_bench<suffix>`, dropped on exit; returns service -> URL."""
    import psycopg

    dbs = {s: f"{s}_bench{suffix}" for s in names}
    admin = cfg.database_url("postgres", "postgres").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in dbs.values():
            conn.execute(f'CREATE DATABASE "{db}"')

    def drop_dbs() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            for db in dbs.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    cleanup.callback(drop_dbs)
    return {s: cfg.database_url(s, db) for s, db in dbs.items()}


def own_databases(
    cfg: StackConfig, cleanup: ExitStack, only: tuple[str, ...] = DATABASE_SERVICES
) -> dict[str, str]:
    """The profile's PostgreSQL and fresh, migrated databases of `only` these services; gone on exit."""
    start_infra(cfg, cleanup, ["postgres"])
    urls = fresh_databases(cfg, cleanup, uuid.uuid4().hex[:8], only)
    services.migrate(cfg, urls, only)
    return urls


def start_own_stack(
    cfg: StackConfig, cleanup: ExitStack, extra_env: dict[str, str] | None = None
) -> OwnStack:
    """Infrastructure, fresh databases, uuid-named topics and the five services; stopped on exit.

    Uses the profile's ports (move them with TT_TEST_PORT_OFFSET) and stops only
    what it started. Fresh topics keep earlier runs' events out of the fresh read model.
    """
    start_infra(cfg, cleanup)
    suffix = uuid.uuid4().hex[:8]
    urls = fresh_databases(cfg, cleanup, suffix, DATABASE_SERVICES)
    services.migrate(cfg, urls)
    topics = bench_topics(suffix)
    env = {f"{s.upper()}_DATABASE_URL": url for s, url in urls.items()}
    for s in SERVICES:
        env[f"{s.upper()}_LOG_LEVEL"] = "WARNING"
        env |= {f"{s.upper()}_TOPIC_{kind.upper()}": topic for kind, topic in topics.items()}
        env[f"{s.upper()}_CONSUMER_GROUP"] = f"{s}-bench{suffix}"
    env |= extra_env or {}
    services.stop(cfg)
    cleanup.callback(services.stop, cfg)
    services.start(cfg, env)
    return OwnStack(cfg, urls, topics, f"reporting-bench{suffix}")


def write_result(name: str, result: Mapping[str, Any], out: Path = RESULTS) -> Path:
    """bench/results/<name>-<UTC time>.json; returns the path (relative to the checkout if inside)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
