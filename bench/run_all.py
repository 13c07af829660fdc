"""Every benchmark against one own stack, each number beside its ceiling; the published table.

    .venv/bin/python bench/run_all.py            # the full suite (make bench); rewrites docs/benchmarks.md
    .venv/bin/python bench/run_all.py --quick    # a smoke of every benchmark (make bench-quick)
    .venv/bin/python bench/run_all.py --from-json bench/results/run_all-<time>.json   # re-render only

One stack (the local runner's test profile; move its ports with TT_TEST_PORT_OFFSET):
fresh databases, uuid-named topics, the five services with the gateway's general rate
limit lifted, plus the ceilings' own processes (a trivial uvicorn app) and tools
(pgbench, raw aiokafka, psycopg, WeasyPrint). Order: reporting lag and the year's
timesheet first (a quiet consumer), then timers over gRPC, the gateway at every
concurrency, PDFs, and invoice generation last (its claims stream events for a while).

Writes bench/results/run_all-<UTC time>.json (every script's full result, the machine
and the table's metrics) and renders docs/benchmarks.md from it (with --quick:
bench/results/benchmarks-quick.md, unless --doc says otherwise). Exits 1 when a
benchmark failed to produce its numbers (a missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_load
import invoice_generation
import reporting_lag
import timesheet_year
import tracking_timers
from benchkit import (
    ROOT,
    Metric,
    Target,
    cpu_times,
    machine_info,
    render_report,
    service_pids,
    start_own_stack,
    steal_percent,
    write_result,
)
from reporting_stack import target_for

from ttlocal.config import StackConfig


@dataclass(frozen=True)
class Plan:
    """How much of each benchmark to run."""

    gateway_concurrencies: list[int] = field(default_factory=lambda: [1, 5, 20, 50])
    gateway_duration_s: float = 10
    gateway_warmup_s: float = 2
    steady_users: int = 20
    steady_rate: float = 200
    tracking_concurrency: int = 20
    tracking_duration_s: float = 20
    tracking_warmup_s: float = 3
    lag_rate: int = 500
    lag_seconds: float = 20
    timesheet_entries: int = 2000
    timesheet_calls: int = 50
    invoice_entries: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    pdf_pages: list[int] = field(default_factory=lambda: [1, 10, 50])


FULL = Plan()
QUICK = Plan(
    gateway_concurrencies=[1, 20],
    gateway_duration_s=3,
    gateway_warmup_s=1,
    tracking_duration_s=3,
    tracking_warmup_s=1,
    lag_seconds=5,
    timesheet_entries=500,
    timesheet_calls=20,
    invoice_entries=[1_000],
    pdf_pages=[1, 10],
)

ISSUE4, ISSUE5, ISSUE6, ISSUE7 = "issue 4", "issue 5", "issue 6", "issue 7"

CEILINGS = {
    "pgbench": "the timer's start and (discarding) stop transactions as plain SQL - the same INSERT "
    "under the EXCLUDE and partial unique constraints, SELECT .. FOR UPDATE, DELETE and both audit rows - "
    "driven by pgbench -M prepared straight at tracking's database with the same number of clients",
    "trivial app": "a FastAPI app with the same routes answering at once (bench/trivial_http.py), "
    "served by uvicorn like the gateway, under the same load generator, concurrency and phases",
    "raw aiokafka": "the same events at the same rate through the same broker, aiokafka producer -> "
    "consumer in one process, no database",
    "SQL": "GetTimesheet's own two prepared statements (the user's zone, the entries with project and "
    "task names) straight at reporting's database with asyncpg, nothing else",
    "claim UPDATE": "the claim's core UPDATE .. RETURNING for the same rows straight at tracking's "
    "database, rolled back",
    "minimal PDF": "WeasyPrint alone rendering plain tables of the same rows into the same page count",
    "grpc.aio, empty handlers": "grpc.aio on uvloop, as the services run it, whose StartTimer and StopTimer "
    "answer a fixed entry at once (bench/trivial_grpc.py), under the same Go load generator and plan: "
    "the framework's own per-call cost and latency spread at that concurrency",
}

NOTES = [
    "CPU per operation is user + system time of the server processes (/proc/<pid>/stat) over the "
    "measured window, less what they use idle (pollers, relays; measured for 3 s before the load), "
    "divided by the operations completed in it: the number least distorted by other load on the "
    "machine (the load generator is not included).",
    "Timers are stopped within seconds, so the stop measured is the product's discard path "
    "(under 60 s: the row is locked, deleted and audited; no event). The pgbench ceiling does the same.",
    "The gateway's general rate limit is lifted for the run, so its Redis token bucket is paid but "
    "never refuses (with leases of 20 tokens per round trip, the most a process leases); every "
    "virtual user logs in and uses its own bearer token. The gateway runs 2 worker processes "
    "(GATEWAY_WORKERS), as `make up` does; their CPU counts with the supervisor's. The timer phase "
    "is driven by the Go load generator over HTTP/1.1 (one keep-alive connection per user), the "
    "entries and steady phases by aiohttp in the benchmark's process.",
    "Visible lag is sampled by a poller every 20 ms, so it carries up to 20 ms of resolution.",
]


def _users(n: int | str) -> str:
    return f"{n} user" if str(n) == "1" else f"{n} users"


def _cpu_note(gross: float | None, idle: float | None) -> str:
    """Where the CPU row's value comes from: the gross number less the idle background."""
    if gross is None or idle is None:
        return ""
    return f"net of {idle:g} ms/s idle background; gross {gross:g} ms"


def _p(stats: dict, q: str) -> float | None:
    return stats.get(f"{q}_ms") if stats else None


def metrics_from(results: dict[str, Any]) -> list[Metric]:
    """The published rows, from each benchmark's result (a missing benchmark gives no rows)."""
    rows: list[Metric] = []
    lag = results.get("reporting_lag")
    if lag:
        raw = (lag.get("ceiling") or {}).get("lag", {})
        rate = lag["target_rate_per_s"]
        for q in ("p50", "p99"):
            rows.append(
                Metric(
                    f"reporting.lag.{q}",
                    f"Event-to-report lag {q} at {rate} events/s (visible to reports)",
                    _p(lag["visible_lag"], q),
                    "ms",
                    "lower",
                    _p(raw, q),
                    "raw aiokafka",
                    Target("<", 1000, ISSUE5) if q == "p99" else None,
                )
            )
        rows.append(
            Metric(
                "reporting.lag.missing",
                "Events never applied by reporting",
                lag["missing"],
                "",
                "lower",
                target=Target("<=", 0, ISSUE5),
            )
        )
    sheet = results.get("timesheet_year")
    if sheet:
        sql = sheet["ceiling"]["latency"]
        for q in ("p50", "p99"):
            rows.append(
                Metric(
                    f"reporting.timesheet_year.{q}",
                    f"A year's timesheet ({sheet['entries']} entries) over gRPC, {q}",
                    _p(sheet["latency"], q),
                    "ms",
                    "lower",
                    _p(sql, q),
                    "SQL",
                    Target("<", 50, ISSUE5) if q == "p99" else None,
                )
            )
        rows.append(
            Metric(
                "reporting.timesheet_year.cpu_per_call",
                f"CPU of reporting per year's timesheet ({sheet['entries']} entries)",
                sheet.get("server_cpu_ms_per_call"),
                "ms",
                "lower",
            )
        )
    timers = results.get("tracking_timers")
    if timers:
        c = timers["concurrency"]
        pgb = timers.get("ceiling") or {}
        rows.append(
            Metric(
                f"tracking.timers.c{c}.cycles_per_s",
                f"StartTimer+StopTimer over gRPC, {_users(c)}",
                timers["cycles_per_s"],
                "cycles/s",
                "higher",
                pgb.get("cycles_per_s"),
                "pgbench",
                Target(">=", 500, ISSUE4),
            )
        )
        rows.append(
            Metric(
                f"tracking.timers.c{c}.cycle_p99",
                f"Start+stop cycle p99 over gRPC, {_users(c)}",
                _p(timers.get("cycle", {}), "p99"),
                "ms",
                "lower",
                _p(pgb.get("cycle", {}), "p99"),
                "pgbench",
            )
        )
        rows.append(
            Metric(
                f"tracking.timers.c{c}.cpu_per_cycle",
                f"CPU of tracking + projects per start+stop cycle, {_users(c)}",
                timers.get("server_cpu_ms_per_cycle_net_of_idle", timers.get("server_cpu_ms_per_cycle")),
                "ms",
                "lower",
                note=_cpu_note(timers.get("server_cpu_ms_per_cycle"), timers.get("server_idle_cpu_ms_per_s")),
            )
        )
        if timers.get("load_generator_cpu_ms_per_cycle") is not None:
            rows.append(
                Metric(
                    f"tracking.timers.c{c}.load_generator_cpu_per_cycle",
                    f"CPU of the load generator ({timers.get('load_generator', 'python')}) per cycle,"
                    f" {_users(c)}",
                    timers["load_generator_cpu_ms_per_cycle"],
                    "ms",
                    "lower",
                    note="warm-up included",
                )
            )
        framework = timers.get("framework") or {}
        for call in ("start_timer", "stop_timer"):
            rows.append(
                Metric(
                    f"tracking.timers.c{c}.{call}_p99",
                    f"{'StartTimer' if call == 'start_timer' else 'StopTimer'} p99 over gRPC, {_users(c)}",
                    _p(timers[call], "p99"),
                    "ms",
                    "lower",
                    _p(framework.get(call, {}), "p99"),
                    "grpc.aio, empty handlers",
                    target=Target("<", 30, ISSUE4),
                    note=f"empty handlers: {framework['cycles_per_s']} cycles/s" if framework else "",
                )
            )
    gw = results.get("gateway_load")
    if gw:
        rows += _gateway_metrics(gw)
    pdfs = (results.get("invoicing") or {}).get("pdf", [])
    for pdf in pdfs:
        rows.append(
            Metric(
                f"invoicing.pdf.{pdf['pages']}_pages",
                f"Invoice PDF of {pdf['pages']} page{'s' if pdf['pages'] != 1 else ''} "
                f"({pdf['lines']} lines), WeasyPrint",
                pdf["render_s"],
                "s",
                "lower",
                pdf.get("ceiling_minimal_pdf_s"),
                "minimal PDF",
                Target("<", 10, ISSUE6) if pdf["pages"] >= 50 else None,
                note=f"CPU {pdf['render_cpu_s']:.2f} s" if "render_cpu_s" in pdf else "",
            )
        )
    targets = {10_000: Target("<", 2, ISSUE6), 100_000: Target("<", 15, ISSUE6)}
    for gen in (results.get("invoicing") or {}).get("generation", []):
        n = gen["entries"]
        rows.append(
            Metric(
                f"invoicing.generate.{n}",
                f"GenerateInvoice over {n:,} entries (claim, lines, totals, draft)",
                gen["generate_s"],
                "s",
                "lower",
                gen["ceiling_claim_update_s"],
                "claim UPDATE",
                targets.get(n),
                note=(
                    f"CPU tracking {gen['cpu_tracking_s']:.2f} s (+{gen['cpu_tracking_relay_after_s']:.2f} s"
                    f" relaying its events), invoicing {gen['cpu_invoicing_s']:.2f} s"
                    if "cpu_tracking_s" in gen
                    else ""
                ),
            )
        )
    return rows


def _gateway_metrics(gw: dict) -> list[Metric]:
    rows: list[Metric] = []
    product, trivial = gw["gateway"], gw.get("ceiling") or {}
    for c, phase in product["by_concurrency"].items():
        ceil = (trivial.get("by_concurrency") or {}).get(c, {})
        t, ct = phase["timer"], ceil.get("timer", {})
        e, ce = phase["entries"], ceil.get("entries", {})
        rows.append(
            Metric(
                f"gateway.timer.c{c}.cycles_per_s",
                f"Gateway timer start+stop, {_users(c)}",
                t["cycles_per_s"],
                "cycles/s",
                "higher",
                ct.get("cycles_per_s"),
                "trivial app",
                Target(">=", 340, ISSUE7) if c == "20" else None,
            )
        )
        rows.append(
            Metric(
                f"gateway.timer.c{c}.cpu_per_cycle",
                f"CPU of the five services per timer cycle, {_users(c)}",
                t.get("server_cpu_ms_per_cycle_net_of_idle", t.get("server_cpu_ms_per_cycle")),
                "ms",
                "lower",
                ct.get("server_cpu_ms_per_cycle_net_of_idle", ct.get("server_cpu_ms_per_cycle")),
                "trivial app",
                note=_cpu_note(t.get("server_cpu_ms_per_cycle"), product.get("server_idle_cpu_ms_per_s")),
            )
        )
        if t.get("load_generator_cpu_ms_per_cycle") is not None:
            rows.append(
                Metric(
                    f"gateway.timer.c{c}.load_generator_cpu_per_cycle",
                    f"CPU of the load generator ({t.get('load_generator', 'python')}) per timer cycle,"
                    f" {_users(c)}",
                    t["load_generator_cpu_ms_per_cycle"],
                    "ms",
                    "lower",
                    ct.get("load_generator_cpu_ms_per_cycle"),
                    "trivial app",
                    note="warm-up included",
                )
            )
        for call, label in (("timer_start", "POST /v1/timer/start"), ("timer_stop", "POST /v1/timer/stop")):
            for q in ("p50", "p99") if call == "timer_start" else ("p99",):
                rows.append(
                    Metric(
                        f"gateway.timer.c{c}.{call}_{q}",
                        f"Gateway {label} {q}, {_users(c)}",
                        _p(t.get(call, {}), q),
                        "ms",
                        "lower",
                        _p(ct.get(call, {}), q),
                        "trivial app",
                    )
                )
        rows.append(
            Metric(
                f"gateway.entries.c{c}.requests_per_s",
                f"Gateway entry creation, {_users(c)}",
                e["requests_per_s"],
                "req/s",
                "higher",
                ce.get("requests_per_s"),
                "trivial app",
            )
        )
        rows.append(
            Metric(
                f"gateway.entries.c{c}.cpu_per_request",
                f"CPU of the five services per entry created, {_users(c)}",
                e.get("server_cpu_ms_per_request_net_of_idle", e.get("server_cpu_ms_per_request")),
                "ms",
                "lower",
                ce.get("server_cpu_ms_per_request_net_of_idle", ce.get("server_cpu_ms_per_request")),
                "trivial app",
                note=_cpu_note(e.get("server_cpu_ms_per_request"), product.get("server_idle_cpu_ms_per_s")),
            )
        )
        for q in ("p50", "p99"):
            rows.append(
                Metric(
                    f"gateway.entries.c{c}.{q}",
                    f"Gateway POST /v1/time-entries {q}, {_users(c)}",
                    _p(e["entry_create"], q),
                    "ms",
                    "lower",
                    _p(ce.get("entry_create", {}), q),
                    "trivial app",
                )
            )
    s, cs = product["steady"], trivial.get("steady", {})
    rate = s["target_requests_per_s"]
    for q in ("p50", "p99"):
        rows.append(
            Metric(
                f"gateway.steady.{q}",
                f"Gateway timer requests {q} at a steady {rate:.0f} req/s "
                f"(achieved {s['achieved_requests_per_s']})",
                _p(s["all_requests"], q),
                "ms",
                "lower",
                _p(cs.get("all_requests", {}), q),
                "trivial app",
                Target("<", 50, ISSUE7) if q == "p99" else None,
            )
        )
    mem = product.get("memory", {})
    rows.append(
        Metric(
            "gateway.memory.peak_rss",
            "Peak resident memory of the five services together, during the gateway load",
            mem.get("peak_total_mib"),
            "MiB",
            "lower",
            target=Target("<", 1024, ISSUE7),
        )
    )
    return rows


def _step(results: dict, failures: dict, steal: dict, name: str, fn: Callable[[], Any]) -> None:
    """Run one benchmark; a failure is recorded and the rest still run. `steal` gets the share
    of the CPUs the hypervisor took while it ran."""
    print(f"\n=== {name} ===", flush=True)
    began = time.monotonic()
    cpu_before = cpu_times()
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - one benchmark's failure must not lose the others' numbers
        traceback.print_exc()
        failures[name] = f"{type(exc).__name__}: {exc}"
    steal[name] = steal_percent(cpu_before, cpu_times())
    print(f"--- {name}: {time.monotonic() - began:.0f} s, CPU steal {steal[name]}%", flush=True)


def run_suite(plan: Plan) -> tuple[dict, dict, dict]:
    """Every benchmark on one own stack; returns (results, failures, machine)."""
    load_before = os.getloadavg()[0]
    cfg = StackConfig.load("test")
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    steal: dict[str, float | None] = {}  # per benchmark: how much of the cores the hypervisor took
    cpu_at_start = cpu_times()
    with ExitStack() as cleanup:
        own = start_own_stack(cfg, cleanup, extra_env=gateway_load.UNLIMITED)
        machine = machine_info(own.databases["tracking"], cfg)
        trivial_url = gateway_load.start_trivial_http(cfg, cleanup)
        reporting = target_for(own)
        tracking_db = own.psycopg_url("tracking")

        def lag() -> dict:
            r = asyncio.run(reporting_lag.measure(reporting, plan.lag_rate, plan.lag_seconds))
            r["ceiling"] = asyncio.run(
                reporting_lag.raw_kafka_latency(cfg.kafka_bootstrap, plan.lag_rate, plan.lag_seconds)
            )
            reporting_lag.print_result(r)
            return r

        def sheet() -> dict:
            r = asyncio.run(timesheet_year.measure(reporting, plan.timesheet_entries, plan.timesheet_calls))
            timesheet_year.print_result(r)
            return r

        def timers() -> dict:
            r = tracking_timers.run(
                cfg.grpc_target("tracking"),
                cfg.grpc_target("projects"),
                plan.tracking_concurrency,
                plan.tracking_duration_s,
                plan.tracking_warmup_s,
                list(service_pids(cfg, ["tracking", "projects"]).values()),
            )
            r["ceiling"] = tracking_timers.pgbench_ceiling(
                tracking_db, plan.tracking_concurrency, plan.tracking_duration_s
            )
            r["framework"] = tracking_timers.run_framework_ceiling(
                cfg, plan.tracking_concurrency, plan.tracking_duration_s, plan.tracking_warmup_s
            )
            tracking_timers.print_result(r)
            return r

        def gateway() -> dict:
            r = asyncio.run(
                gateway_load.run(
                    cfg,
                    concurrencies=plan.gateway_concurrencies,
                    steady_users=plan.steady_users,
                    rate=plan.steady_rate,
                    warmup=plan.gateway_warmup_s,
                    duration=plan.gateway_duration_s,
                    ceiling_url=trivial_url,
                )
            )
            gateway_load.print_result(r)
            return r

        def invoices() -> dict:
            print("PDF rendering (WeasyPrint, in process):")
            r: dict[str, Any] = {"pdf": invoice_generation.bench_pdf(plan.pdf_pages)}
            print("Invoice generation (GenerateInvoice over gRPC, claim included):")
            sizes = plan.invoice_entries
            r["generation"] = asyncio.run(invoice_generation.bench_generation(cfg, tracking_db, sizes))
            return r

        _step(results, failures, steal, "reporting_lag", lag)
        _step(results, failures, steal, "timesheet_year", sheet)
        _step(results, failures, steal, "tracking_timers", timers)
        _step(results, failures, steal, "gateway_load", gateway)
        _step(results, failures, steal, "invoicing", invoices)
        machine["loadavg_before"] = load_before
        machine.pop("loadavg")
        machine["loadavg_end"] = os.getloadavg()[0]
        machine["steal_percent"] = {**steal, "whole run": steal_percent(cpu_at_start, cpu_times())}
    return results, failures, machine


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke of every benchmark")
    parser.add_argument("--doc", type=Path, help="where to render the table (default: see above)")
    parser.add_argument("--from-json", type=Path, help="re-render the doc from a run_all JSON; run nothing")
    args = parser.parse_args()
    doc = args.doc or (
        ROOT / "bench" / "results" / "benchmarks-quick.md" if args.quick else ROOT / "docs" / "benchmarks.md"
    )
    if args.from_json:
        combined = json.loads(args.from_json.read_text())
        if "results" in combined:  # today's rows and wording from the raw results
            combined["metrics"] = [m.as_dict() for m in metrics_from(combined["results"])]
        doc.write_text(render_report(combined))
        print(f"rendered {doc}")
        return 0

    plan = QUICK if args.quick else FULL
    started, began = datetime.now(UTC), time.monotonic()
    results, failures, machine = run_suite(plan)
    make = "make bench-quick" if args.quick else "make bench"
    script = shlex.join([".venv/bin/python", "bench/run_all.py", *sys.argv[1:]])
    combined = {
        "mode": "quick smoke (short phases; not for publishing)" if args.quick else "full",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - began, 1),
        "command": f"{make}    # this run: {script}",
        "plan": asdict(plan),
        "machine": machine,
        "metrics": [m.as_dict() for m in metrics_from(results)],
        "ceilings": CEILINGS,
        "notes": NOTES + [f"{name} failed: {why}" for name, why in failures.items()],
        "failures": failures,
        "results": results,
    }
    path = write_result("run_all", combined)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render_report(combined))
    print(f"\nwritten to {path}; table in {doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}")
    print(f"took {combined['elapsed_s']:.0f} s; failures: {failures or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
