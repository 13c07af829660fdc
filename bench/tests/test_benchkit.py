"""The pure parts of the published benchmark table: percentiles, ratios, targets, markdown."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import (
    Metric,
    Target,
    cpu_seconds,
    cpu_times,
    fmt_number,
    per_op_ms,
    percentile,
    ratio,
    render_report,
    render_table,
    steal_percent,
    summary_ms,
    target_met,
    with_descendants,
)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100, shuffled order must not matter
    values.reverse()
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99  # not the maximum
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(range(1, 51)), 50) == 25
    assert math.isnan(percentile([], 50))


def test_summary_converts_seconds_to_milliseconds() -> None:
    s = summary_ms([0.001, 0.002, 0.003, 0.004], scale=1000)
    assert s == {"count": 4, "p50_ms": 2.0, "p90_ms": 4.0, "p99_ms": 4.0, "max_ms": 4.0, "mean_ms": 2.5}
    assert summary_ms([]) == {"count": 0}


def test_ratio_says_how_many_times_the_ceiling_is_better() -> None:
    assert ratio(500, 2700, "higher") == pytest.approx(5.4)  # rates: ceiling / product
    assert ratio(3.0, 0.5, "lower") == pytest.approx(6.0)  # times: product / ceiling
    assert ratio(100, 100, "higher") == 1.0
    assert ratio(None, 10, "lower") is None
    assert ratio(10, None, "lower") is None
    assert ratio(0, 10, "higher") is None
    assert ratio(float("nan"), 10, "higher") is None
    with pytest.raises(ValueError, match="better"):
        ratio(1, 2, "faster")


def test_target_met_checks_the_bound_itself() -> None:
    assert target_met(49.9, Target("<", 50)) is True
    assert target_met(50, Target("<", 50)) is False
    assert target_met(50, Target("<=", 50)) is True
    assert target_met(340, Target(">=", 340)) is True
    assert target_met(339.9, Target(">=", 340)) is False
    assert target_met(1, Target(">", 1)) is False
    assert target_met(None, Target("<", 1)) is None
    assert target_met(float("nan"), Target("<", 1)) is None
    assert target_met(3, None) is None
    with pytest.raises(ValueError, match="op"):
        Target("=<", 1)


def test_format_numbers() -> None:
    assert fmt_number(12345.6) == "12,346"
    assert fmt_number(123.4) == "123"
    assert fmt_number(0) == "0"
    assert fmt_number(50.0) == "50"
    assert fmt_number(12.34) == "12.3"
    assert fmt_number(1.234) == "1.23"
    assert fmt_number(0.01234) == "0.012"
    assert fmt_number(None) == "-"
    assert fmt_number(float("nan")) == "-"


def test_table_rows_carry_value_ceiling_ratio_target_and_verdict() -> None:
    rows = [
        Metric("a", "Timer cycles", 400, "cycles/s", "higher", 2000, "pgbench", Target(">=", 500, "issue 4")),
        Metric("b", "Lag p99", 120, "ms", "lower", 40, "raw aiokafka", Target("<", 1000, "issue 5")),
        Metric("c", "Memory | peak", 700, "MiB", "lower"),
    ]
    table = render_table(rows).splitlines()
    assert table[0] == "| Metric | Value | Ceiling (same run) | Ratio | Target | Met? |"
    assert table[2] == (
        "| Timer cycles | 400 cycles/s | 2,000 cycles/s (pgbench) | x5.00 "
        "| >= 500 cycles/s (issue 4) | **no** |"
    )
    assert table[3] == "| Lag p99 | 120 ms | 40 ms (raw aiokafka) | x3.00 | < 1,000 ms (issue 5) | yes |"
    assert table[4] == "| Memory \\| peak | 700 MiB | - | - | - | - |"  # a pipe must not break the row
    assert len(table) == 5


def test_metric_round_trips_through_json_and_the_report_counts_targets() -> None:
    metrics = [
        Metric("a", "Timer cycles", 600, "cycles/s", "higher", 2400, "pgbench", Target(">=", 500, "issue 4")),
        Metric("b", "PDF 50 pages", 12.5, "s", "lower", 2.5, "minimal PDF", Target("<", 10, "issue 6")),
        Metric("c", "Year timesheet p50", 20, "ms", "lower", 4, "SQL"),
    ]
    dicts = [m.as_dict() for m in metrics]
    assert [Metric.from_dict(d) for d in dicts] == metrics
    assert dicts[0]["ratio"] == 4.0 and dicts[0]["met"] is True
    assert dicts[1]["ratio"] == 5.0 and dicts[1]["met"] is False
    report = render_report(
        {
            "mode": "full",
            "started_at": "2026-11-25T05:00:00+00:00",
            "finished_at": "2026-11-25T05:10:00+00:00",
            "elapsed_s": 600,
            "command": "make bench",
            "machine": {
                "cpu_model": "Test CPU",
                "cpus": 2,
                "ram_gib": 24.0,
                "kernel": "6.1",
                "python": "3.11.7",
                "postgresql": "15.8",
                "kafka": "4.1.1",
                "git_commit": "abc123",
                "git_dirty": False,
                "loadavg_before": 0.2,
                "loadavg_end": 1.5,
            },
            "metrics": dicts,
            "ceilings": {"pgbench": "the same SQL"},
            "notes": ["a note"],
        }
    )
    assert "**Targets met**: 1 of 2" in report
    assert "`abc123`" in report and "uncommitted" not in report
    assert "Test CPU, 2 CPUs, 24.0 GiB RAM" in report
    assert "make bench" in report
    assert "before the run: 0.200, at its end: 1.50" in report
    assert "| PDF 50 pages | 12.5 s | 2.50 s (minimal PDF) | x5.00 | < 10 s (issue 6) | **no** |" in report
    assert "- **pgbench**: the same SQL" in report
    assert "CPU steal" not in report  # runs from before it was measured say nothing about it


def test_cpu_steal_is_the_hypervisors_share_of_the_cores_time() -> None:
    first = "cpu  100 5 50 800 10 0 5 30 0 0\ncpu0 50 2 25 400 5 0 2 15 0 0\n"
    later = "cpu  160 5 70 900 10 0 5 80 0 0\ncpu0 80 2 35 450 5 0 2 40 0 0\n"
    assert cpu_times(first) == (30, 1000)
    assert cpu_times(later) == (80, 1230)
    assert steal_percent(cpu_times(first), cpu_times(later)) == 21.7  # 50 of 230 ticks
    assert steal_percent((5, 10), (5, 10)) is None  # no time passed: no share
    steal, total = cpu_times()  # this machine's own /proc/stat
    assert 0 <= steal <= total and total > 0
    report = render_report(
        {
            "mode": "quick",
            "started_at": "s",
            "finished_at": "f",
            "elapsed_s": 1,
            "command": "c",
            "machine": {
                "cpu_model": "m",
                "cpus": 2,
                "ram_gib": 1,
                "kernel": "k",
                "python": "p",
                "git_commit": "x",
                "git_dirty": True,
                "steal_percent": {"tracking_timers": 18.2, "whole run": 3.5},
            },
            "metrics": [],
        }
    )
    assert "tracking_timers 18.2%, whole run 3.5%" in report


def test_cpu_per_operation_counts_this_process_working() -> None:
    before = cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    used = cpu_seconds([os.getpid()]) - before
    assert 0.1 <= used < 5
    assert cpu_seconds([2**22 + 12345]) == 0  # a pid that does not exist counts nothing
    assert per_op_ms(1.5, 300) == 5.0
    assert per_op_ms(1.5, 0) is None
    assert per_op_ms(1.5, 300, idle_ms_per_s=50, seconds=10) == 3.33  # (1,500 - 500 idle) / 300
    assert per_op_ms(0.1, 10, idle_ms_per_s=50, seconds=10) == 0.0  # noise never goes negative


def test_cpu_of_a_process_counts_its_children() -> None:
    """A multi-worker server is measured through its parent's pid: the workers' CPU counts too."""
    import subprocess
    import sys

    busy_then_idle = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", busy_then_idle])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and cpu_seconds([child.pid]) < 0.4:
            time.sleep(0.1)
        assert child.pid in with_descendants([os.getpid()])
        assert cpu_seconds([os.getpid()]) >= cpu_seconds([child.pid]) >= 0.4
    finally:
        child.kill()
        child.wait()
