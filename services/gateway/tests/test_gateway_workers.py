"""GATEWAY_WORKERS > 1: the supervisor serves the workers' summed metrics, and stopping it by
its pid file, or killing it, leaves no worker behind.

The session's gateway is restarted with two workers for this test and restarted as it was
afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.infra import RunningStack


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        await asyncio.sleep(0.2)
    return [p for p in pids if alive(p)]


@pytest.mark.timeout(900)  # four gateway starts; a worker imports the whole app
async def test_workers_sum_their_metrics_and_die_with_their_supervisor(
    running_services: RunningStack,
) -> None:
    from ttlocal import proc, services

    cfg = dataclasses.replace(running_services.config, services=("gateway",))
    two_workers = {**running_services.env, "GATEWAY_WORKERS": "2"}
    await asyncio.to_thread(services.stop, cfg)
    try:
        await asyncio.to_thread(services.start, cfg, two_workers)
        supervisor = proc.running_pid(cfg, "gateway")
        assert supervisor is not None
        workers = [p for p in descendants(supervisor) if b"spawn_main" in cmdline(p)]
        assert len(workers) == 2, workers

        # A new connection per request, so both workers answer some of them.
        requests = 40
        async with httpx.AsyncClient(base_url=cfg.gateway_url, timeout=30) as http:
            for _ in range(requests):
                resp = await http.get("/v1/me", headers={"Connection": "close"})
                assert resp.status_code == 401
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"http://127.0.0.1:{cfg.port('gateway_metrics')}/metrics")).text
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "http_server_requests_total"
            and sample.labels.get("route") == "/v1/me"
            and sample.labels.get("code") == "401"
        )
        assert counted == requests  # every worker's count, summed by the supervisor

        # The local runner's stop: SIGTERM to the pid file's process drains and stops every worker.
        tree = descendants(supervisor)
        await asyncio.to_thread(services.stop, cfg)
        assert await gone_within([supervisor, *tree], 5) == []

        # A supervisor that dies without stopping its workers (SIGKILL) takes them along.
        await asyncio.to_thread(services.start, cfg, two_workers)
        supervisor = proc.running_pid(cfg, "gateway")
        assert supervisor is not None
        tree = descendants(supervisor)
        assert len(tree) >= 2
        os.kill(supervisor, signal.SIGKILL)
        assert await gone_within(tree, 30) == [], "workers outlived their supervisor"
    finally:
        await asyncio.to_thread(services.stop, cfg)
        await asyncio.to_thread(services.start, cfg, running_services.env)
