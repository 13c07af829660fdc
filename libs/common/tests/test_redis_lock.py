"""The Redis lock against a real Redis: mutual exclusion, TTL, safe release."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tt_common.redis import LockNotAcquired, RedisLock, make_redis


@pytest.fixture
async def redis(infra):
    client = make_redis(infra.redis_url)
    yield client
    await client.aclose()


async def test_only_one_holder_at_a_time_under_a_real_race(redis) -> None:
    key = f"race:{uuid.uuid4()}"
    inside = 0
    max_inside = 0

    async def worker() -> None:
        nonlocal inside, max_inside
        async with RedisLock(redis, key, ttl_ms=5_000, wait_s=10):
            inside += 1
            max_inside = max(max_inside, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(30)))
    assert max_inside == 1


async def test_a_held_lock_times_out_waiters(redis) -> None:
    key = f"held:{uuid.uuid4()}"
    async with RedisLock(redis, key, ttl_ms=5_000):
        with pytest.raises(LockNotAcquired):
            await RedisLock(redis, key, wait_s=0.2).acquire()


async def test_expired_lock_is_not_released_by_its_old_holder(redis) -> None:
    key = f"ttl:{uuid.uuid4()}"
    old = RedisLock(redis, key, ttl_ms=100)
    await old.acquire()
    await asyncio.sleep(0.25)  # expired
    new = RedisLock(redis, key, ttl_ms=5_000)
    await new.acquire()
    assert await old.release() is False  # token mismatch: the new holder keeps it
    assert await redis.get(f"lock:{key}") == new.token.encode()
    assert await new.release() is True
