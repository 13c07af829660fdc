"""The rows run_all publishes, from the scripts' raw results: targets where the issues set them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run_all import metrics_from


def _phase(cycles_per_s: float, p99: float) -> dict:
    stats = {"count": 10, "p50_ms": p99 / 2, "p99_ms": p99}
    return {
        "timer": {
            "cycles_per_s": cycles_per_s,
            "server_cpu_ms_per_cycle": 3.0,
            "timer_start": stats,
            "timer_stop": stats,
        },
        "entries": {"requests_per_s": 100.0, "server_cpu_ms_per_request": 2.0, "entry_create": stats},
    }


def test_rows_from_results_judge_each_target_and_skip_missing_benchmarks() -> None:
    gateway = {
        "by_concurrency": {"1": _phase(50, 10), "20": _phase(400, 40)},
        "steady": {
            "target_requests_per_s": 200,
            "achieved_requests_per_s": 199.5,
            "all_requests": {"p50_ms": 12.0, "p99_ms": 60.0},
        },
        "memory": {"peak_total_mib": 700.0},
    }
    trivial = {
        "by_concurrency": {"1": _phase(200, 2), "20": _phase(1600, 8)},
        "steady": {"all_requests": {"p50_ms": 1.0, "p99_ms": 5.0}},
    }
    gateway["by_concurrency"]["20"]["timer"] |= {
        "load_generator": "go",
        "load_generator_cpu_ms_per_cycle": 0.35,
    }
    results = {
        "gateway_load": {"gateway": gateway, "ceiling": trivial},
        "invoicing": {
            "pdf": [
                {
                    "pages": 50,
                    "lines": 1040,
                    "render_s": 8.0,
                    "render_cpu_s": 7.5,
                    "ceiling_minimal_pdf_s": 2.0,
                }
            ],
            "generation": [{"entries": 10_000, "generate_s": 2.5, "ceiling_claim_update_s": 0.5}],
        },
    }
    rows = {m.key: m for m in metrics_from(results)}

    c20 = rows["gateway.timer.c20.cycles_per_s"]
    assert c20.met is True and c20.ratio == 4.0  # 400 >= 340; the trivial app did 1,600
    assert rows["gateway.timer.c1.cycles_per_s"].target is None  # the issue sets it at 20 users only
    assert rows["gateway.steady.p99"].met is False  # 60 ms against < 50 ms
    assert rows["gateway.steady.p99"].ratio == 12.0
    assert rows["gateway.memory.peak_rss"].met is True
    assert rows["gateway.timer.c20.cpu_per_cycle"].value == 3.0
    loadgen = rows["gateway.timer.c20.load_generator_cpu_per_cycle"]
    assert loadgen.value == 0.35 and "(go)" in loadgen.name and loadgen.target is None
    assert "gateway.timer.c1.load_generator_cpu_per_cycle" not in rows  # not reported: no row
    assert rows["invoicing.pdf.50_pages"].met is True
    assert "CPU 7.50 s" in rows["invoicing.pdf.50_pages"].note
    assert rows["invoicing.generate.10000"].met is False  # 2.5 s against < 2 s
    assert rows["invoicing.generate.10000"].ratio == 5.0
    assert not any(k.startswith(("tracking.", "reporting.")) for k in rows)  # not run: no rows
