"""Property-based API testing of the running stack against its own OpenAPI document.

A `schemathesis run` against /openapi.json generates requests (valid and invalid) for
every operation, as an ADMIN (who reaches the most), and checks: no 5xx, only
documented status codes and content types, every response body matching its schema.
Bounded by GATEWAY_SCHEMATHESIS_EXAMPLES per operation and a timeout, so the run
stays within a few minutes on a 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway_testkit import World

MAX_EXAMPLES = os.environ.get("GATEWAY_SCHEMATHESIS_EXAMPLES", "10")
TIMEOUT_S = 240
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    running_services, world: World, tmp_path: Path
) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{running_services.gateway_url}/openapi.json",
            "--checks",
            CHECKS,
            "--header",
            f"Authorization: Bearer {world.admin.access_token}",
            "--max-examples",
            MAX_EXAMPLES,
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--report-dir",
            str(tmp_path),
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
