"""Background workers (relays, consumers, schedulers) restarted after a crash: the pause doubles
while a worker keeps crashing, and starts over once it had been running well."""

from __future__ import annotations

import asyncio

from tt_common.grpc_server import WORKER_BACKOFF_S, WORKER_HEALTHY_RUN_S, supervise


class Scripted:
    """A worker that crashes after running for the given (fake) seconds, then returns."""

    def __init__(self, runs_s: list[float]) -> None:
        self.now = 0.0
        self.runs_s = runs_s
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    async def worker(self) -> None:
        if not self.runs_s:
            return
        self.now += self.runs_s.pop(0)
        raise RuntimeError("producer cannot send again")


async def test_pauses_double_in_a_crash_loop_up_to_the_most_and_start_over_after_a_healthy_run() -> None:
    first, most = WORKER_BACKOFF_S
    script = Scripted([0.1] * 9 + [WORKER_HEALTHY_RUN_S + 1, 0.1])
    await supervise("relay", script.worker, asyncio.Event(), clock=script.clock, sleep=script.sleep)
    loop_pauses = [min(first * 2**i, most) for i in range(9)]
    assert script.pauses == [*loop_pauses, first, first * 2]
    assert max(script.pauses) == most


async def test_a_worker_that_returns_is_not_restarted_and_stopping_ends_supervision() -> None:
    script = Scripted([])
    await supervise("done", script.worker, asyncio.Event(), clock=script.clock, sleep=script.sleep)
    assert script.pauses == []

    stopping = asyncio.Event()
    stopping.set()
    crashing = Scripted([0.1, 0.1])
    await supervise("stopping", crashing.worker, stopping, clock=crashing.clock, sleep=crashing.sleep)
    assert crashing.pauses == [] and crashing.runs_s == [0.1, 0.1]
