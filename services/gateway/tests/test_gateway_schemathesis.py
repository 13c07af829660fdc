"""Property-based API testing of the running stack against its own OpenAPI document.

Two `schemathesis run`s against /openapi.json, as an ADMIN (who reaches the most):
- stateless: requests (valid and invalid) for every operation, one at a time;
- stateful: chains of calls along the links schemathesis infers from the schema
  (an id a response returns feeds the path of GET/PATCH/DELETE/POST on it), so it
  reaches objects that exist: create a client, then its project, its tasks, ...
Both check: no 5xx, only documented status codes and content types, every response
body matching its schema; the stateful run also that a deleted object is gone
(use_after_free).
Bounded by GATEWAY_SCHEMATHESIS_EXAMPLES (per operation / per scenario) and a
timeout, so each run stays within a minute or two on a 2-core machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from gateway_testkit import World

MAX_EXAMPLES = os.environ.get("GATEWAY_SCHEMATHESIS_EXAMPLES", "10")
STATEFUL_EXAMPLES = os.environ.get("GATEWAY_SCHEMATHESIS_STATEFUL_EXAMPLES", "200")
TIMEOUT_S = 240
STATEFUL_ATTEMPTS = 3
MIN_LINKS = 10  # a full run follows 25-30
# Replays a run: the seed is in the output of a failed one.
SEED = os.environ.get("GATEWAY_SCHEMATHESIS_SEED")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Not ensure_resource_availability: POST /v1/system/pipeline-probes answers 202 and the
# probe is readable only once it has crossed Kafka, which that check reads as a bug.
STATEFUL_CHECKS = f"{CHECKS},use_after_free"


def schemathesis(running_services, world: World, tmp_path: Path, *args: str) -> str:
    cli = Path(sys.executable).with_name("schemathesis")
    tmp_path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{running_services.gateway_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {world.admin.access_token}",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--report-dir",
            str(tmp_path),
            *(["--seed", SEED] if SEED else []),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
    )
    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    log = os.environ.get("GATEWAY_SCHEMATHESIS_LOG")
    if log:
        Path(log).write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-12_000:] + result.stderr[-3_000:]
    return result.stdout


def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    running_services, world: World, tmp_path: Path
) -> None:
    schemathesis(
        running_services,
        world,
        tmp_path,
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
    )


def test_schemathesis_stateful_chains_find_no_5xx(running_services, world: World, tmp_path: Path) -> None:
    # Hypothesis sometimes ends a stateful run early although nothing failed: with seed
    # 301363533831056055484269269137509706236 its generation gave up after 22-41 scenarios
    # (8-9 links) in three runs, where other seeds run 200-330 scenarios over 25-30 links.
    # Such a run proves less, so a fresh seed follows it; every run must pass every check.
    best = (0, 0)
    for attempt in range(1 if SEED else STATEFUL_ATTEMPTS):
        out = schemathesis(
            running_services,
            world,
            tmp_path / f"run{attempt}",
            "--checks",
            STATEFUL_CHECKS,
            "--max-examples",
            STATEFUL_EXAMPLES,
            "--phases",
            "stateful",
        )
        # The state machine really chained calls: links were found and some were followed.
        links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", out)
        scenarios = re.search(r"Scenarios:\s+(\d+)", out)
        assert links and scenarios, out[-3_000:]
        covered, selected = int(links[1]), int(links[2])
        assert selected >= 50, out[-3_000:]
        best = max(best, (covered, int(scenarios[1])))
        if covered >= MIN_LINKS or int(scenarios[1]) >= int(STATEFUL_EXAMPLES) // 2:
            break  # enough chaining, or a full run that must stand on its own
    assert best[0] >= MIN_LINKS, f"best run followed {best[0]} links in {best[1]} scenarios\n{out[-3_000:]}"
