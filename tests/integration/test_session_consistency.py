"""The acceptance check of issue 9: after the whole suite, the consistency checker reports zero
differences between tracking, reporting and invoicing in the session's shared databases.

Ordered last by the `session_end` marker (see conftest.py). Tests that write what the product
never would (synthetic events, rows inserted behind a service's back, deliberate corruption)
run on their own databases (tests/support/infra.py: isolated_stack, fresh_databases), so any
difference here is one the services made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.infra import ROOT, RunningStack

# Long enough for the last events of the suite to be published and applied, and for the
# invoicing reconciler to finish a generation or release that a fault test interrupted.
SETTLE_SECONDS = 120


@pytest.mark.session_end
def test_the_consistency_checker_reports_zero_differences_after_the_suite(
    running_services: RunningStack,
) -> None:
    env = {
        **os.environ,
        **{f"{s.upper()}_DATABASE_URL": url for s, url in running_services.databases.items()},
    }
    result = subprocess.run(
        [sys.executable, "-m", "consistency", "--json", "--settle-seconds", str(SETTLE_SECONDS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SETTLE_SECONDS + 300,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["tracking_entries"] > 0, "the suite should have left entries to compare"
    assert report["consistent"], json.dumps(report, indent=2)[:20_000]
    assert result.returncode == 0
