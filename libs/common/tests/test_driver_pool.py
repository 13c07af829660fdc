"""DriverPool's own checkout, against a real PostgreSQL: bounded, fair, and never hands out a
connection that may be mid-statement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tt_common.db import DriverPool

PID = "SELECT pg_backend_pid()"


@pytest.fixture
async def pool(infra) -> AsyncIterator[DriverPool]:
    pool = DriverPool(infra.database_url("postgres"), size=2)
    yield pool
    await pool.close()


async def running(infra, pid: int) -> str | None:
    """The statement backend `pid` is running now, if any."""
    admin = DriverPool(infra.database_url("postgres"), size=1)
    try:
        return await admin.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid
        )
    finally:
        await admin.close()


async def test_no_more_connections_than_its_size_and_every_caller_is_served(pool: DriverPool) -> None:
    # Ten callers, each holding a connection for 50 ms, on a pool of two.
    pids = await asyncio.gather(
        *(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(10))
    )
    assert len(set(pids)) == 2
    assert pool._open == 2


async def test_an_error_reply_keeps_the_connection(pool: DriverPool) -> None:
    before = await pool.fetchval(PID)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await pool.fetchval("SELECT 1 / 0")
    assert await pool.fetchval(PID) == before


async def test_a_cancelled_statement_is_cancelled_in_postgresql_before_its_connection_serves_again(
    infra, pool: DriverPool
) -> None:
    both = await asyncio.gather(
        *(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(2))
    )
    sleeper = asyncio.create_task(pool.fetchval("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.3)
    (sleeping,) = set(both) - {await pool.fetchval(PID)}
    assert await running(infra, sleeping) == "SELECT pg_sleep(30)"
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    async with asyncio.timeout(5):  # both serve at once again, the cancelled one included
        now = await asyncio.gather(
            *(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(2))
        )
    assert set(now) == set(both)
    assert await running(infra, sleeping) is None
    assert pool._open == 2


async def test_a_connection_killed_by_the_server_is_replaced(infra, pool: DriverPool) -> None:
    victim = await pool.fetchval(PID)
    admin = DriverPool(infra.database_url("postgres"), size=1)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
    finally:
        await admin.close()
    seen = set()
    for _ in range(4):  # a call on the dead connection may fail once; then a new one serves
        try:
            seen.add(await pool.fetchval(PID))
        except (asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError, asyncpg.InternalClientError):
            # What asyncpg raises on a connection whose server ended it depends on when the
            # goodbye arrived; InternalClientError: it came while the connection was idle.
            pass
    assert seen and victim not in seen
    assert pool._open <= 2


async def test_a_cancelled_waiter_is_skipped_and_the_next_one_served(infra) -> None:
    pool = DriverPool(infra.database_url("postgres"), size=1)
    try:
        holder = asyncio.create_task(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.2)"))
        await asyncio.sleep(0.05)
        first = asyncio.create_task(pool.fetchval(PID))
        second = asyncio.create_task(pool.fetchval(PID))
        await asyncio.sleep(0.05)
        first.cancel()  # queued first, gone before its turn
        async with asyncio.timeout(5):
            held, after = await asyncio.gather(holder, second)
        assert held == after  # the one connection, handed past the cancelled waiter
        with pytest.raises(asyncio.CancelledError):
            await first
        assert pool._open == 1
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_work(infra) -> None:
    pool = DriverPool(infra.database_url("postgres"), size=1)
    await pool.fetchval(PID)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError, match="closed"):
        await pool.fetchval(PID)
