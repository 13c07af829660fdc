"""Redis: the client factory and a lock with a token, a TTL and a safe release."""

from __future__ import annotations

import asyncio
import secrets
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .errors import Unavailable

# Delete the key only if it still holds our token: a lock that expired and was
# taken by someone else must not be released by us.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def make_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry_on_timeout=False,
    )


class LockNotAcquired(Exception):
    """Someone else holds the lock for longer than we were willing to wait."""


class RedisLock:
    """`async with RedisLock(redis, "timer:user-1"):` serialises one key across processes.

    The lock is an optimisation for the common path; correctness never rests on
    it alone (the database constraint is the safety net when Redis fails).
    """

    def __init__(self, redis: Redis, key: str, *, ttl_ms: int = 10_000, wait_s: float = 5.0) -> None:
        self.redis = redis
        self.key = f"lock:{key}"
        self.ttl_ms = ttl_ms
        self.wait_s = wait_s
        self.token = secrets.token_hex(16)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        delay = 0.01
        try:
            while True:
                if await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
                    return
                if loop.time() >= deadline:
                    raise LockNotAcquired(self.key)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        except RedisError as exc:
            raise Unavailable("lock service (Redis) unavailable, retry later") from exc

    async def release(self) -> bool:
        try:
            # redis-py's registered script: EVALSHA, loading the text only when Redis lacks it.
            release = self.redis.register_script(_RELEASE)
            return bool(await release(keys=[self.key], args=[self.token]))
        except RedisError:
            # The TTL frees the key anyway; failing the caller's committed work would be worse.
            return False

    async def __aenter__(self) -> RedisLock:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
