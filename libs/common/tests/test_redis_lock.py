"""The Redis lock against a real Redis: mutual exclusion, TTL, safe release."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ResponseError

from tt_common.redis import LockNotAcquired, RedisLock, make_redis, short_commands


@pytest.fixture
async def redis(infra):
    client = make_redis(infra.redis_url)
    yield client
    await short_commands(client).aclose()
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


async def test_release_works_after_redis_forgot_the_script(redis) -> None:
    key = f"flushed:{uuid.uuid4()}"
    lock = RedisLock(redis, key, ttl_ms=5_000)
    await lock.acquire()
    await redis.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert await lock.release() is True
    assert await redis.exists(f"lock:{key}") == 0


async def test_locks_survive_redis_closing_their_connections(redis) -> None:
    key = f"killed:{uuid.uuid4()}"
    async with RedisLock(redis, key, ttl_ms=5_000):
        pass
    assert short_commands(redis)._idle, "the lock keeps its connection for the next command"
    # Every other client's connection dropped, as when Redis restarts.
    await redis.client_kill_filter(_type="normal", skipme=True)
    lock = RedisLock(redis, key, ttl_ms=5_000, wait_s=0)
    await lock.acquire()  # sent again on a new connection, not reported as Redis being down
    assert await redis.get(f"lock:{key}") == lock.token.encode()
    assert await lock.release() is True


async def test_an_error_reply_is_raised_and_the_connection_stays_usable(redis) -> None:
    key = f"text:{uuid.uuid4()}"
    await redis.set(key, "not a number", px=5_000)
    commands = short_commands(redis)
    with pytest.raises(ResponseError):
        await commands.execute("INCR", key)
    assert await commands.execute("GET", key) == b"not a number"
