"""Redis: the client factory and a lock with a token, a TTL and a safe release."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import weakref
from types import TracebackType
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from .errors import Unavailable

# Delete the key only if it still holds our token: a lock that expired and was
# taken by someone else must not be released by us.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
# Redis names a script by the SHA-1 of its text (EVALSHA).
_RELEASE_SHA = hashlib.sha1(_RELEASE.encode()).hexdigest()


def make_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry_on_timeout=False,
    )


class ShortCommands:
    """One short command at a time per connection, past redis-py's client and pool layers.

    Through `Redis.execute_command` a command cost about 150 µs of client CPU
    (a retry wrapper, the pool's lock and observability hooks, a task per
    socket write for the timeout), twice what the round trip itself costs; a
    timer start takes two (the lock). These are redis-py's own connections
    (made from the client's settings: address, credentials, protocol), kept
    idle in a list and used by one command at a time, under one timeout for the
    whole round trip. A connection that fails or times out is dropped; a command
    that failed to reach Redis on a reused connection (Redis restarted since) is
    sent once more on a new one, as the client's retry would.
    """

    def __init__(self, redis: Redis, *, timeout_s: float = 2.0, max_idle: int = 32) -> None:
        pool = redis.connection_pool
        self._connection_class = pool.connection_class
        # The one timeout below replaces the per-read and per-write socket timeouts.
        self._connection_kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: list[AbstractConnection] = []

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; Redis's error replies are raised."""
        reused = bool(self._idle)
        try:
            return await self._round_trip(self._idle.pop() if reused else self._new(), args)
        except RedisConnectionError:
            if not reused:
                raise
        return await self._round_trip(self._new(), args)

    def _new(self) -> AbstractConnection:
        return self._connection_class(**self._connection_kwargs)

    async def _round_trip(self, conn: AbstractConnection, args: tuple[Any, ...]) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                await conn.send_packed_command(conn.pack_command(*args), check_health=False)
                reply = await conn.read_response()
        except RedisError as exc:
            if isinstance(exc, RedisConnectionError):
                await conn.disconnect(nowait=True)
                raise
            await self._keep(conn)  # an error reply, read in full: the connection is fine
            raise
        except BaseException:
            # A timeout or a cancellation mid-reply leaves the connection out of step.
            await conn.disconnect(nowait=True)
            raise
        await self._keep(conn)
        return reply

    async def _keep(self, conn: AbstractConnection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            await conn.disconnect()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()


# Each client's lane for locks, made on first use and gone with the client.
_short_commands: weakref.WeakKeyDictionary[Redis, ShortCommands] = weakref.WeakKeyDictionary()


def short_commands(redis: Redis) -> ShortCommands:
    """The client's `ShortCommands`, with the client's socket timeout (2 s when it has none)."""
    lane = _short_commands.get(redis)
    if lane is None:
        timeout = redis.connection_pool.connection_kwargs.get("socket_timeout") or 2.0
        lane = _short_commands[redis] = ShortCommands(redis, timeout_s=timeout)
    return lane


class LockNotAcquired(Exception):
    """Someone else holds the lock for longer than we were willing to wait."""


class RedisLock:
    """`async with RedisLock(redis, "timer:user-1"):` serialises one key across processes.

    The lock is an optimisation for the common path; correctness never rests on
    it alone (the database constraint is the safety net when Redis fails).
    """

    def __init__(self, redis: Redis, key: str, *, ttl_ms: int = 10_000, wait_s: float = 5.0) -> None:
        self.redis = redis
        self._commands = short_commands(redis)
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
                if await self._commands.execute("SET", self.key, self.token, "NX", "PX", self.ttl_ms):
                    return
                if loop.time() >= deadline:
                    raise LockNotAcquired(self.key)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        except (RedisError, TimeoutError, OSError) as exc:
            raise Unavailable("lock service (Redis) unavailable, retry later") from exc

    async def release(self) -> bool:
        try:
            try:
                return bool(await self._commands.execute("EVALSHA", _RELEASE_SHA, 1, self.key, self.token))
            except NoScriptError:  # a Redis that restarted or flushed its scripts: send the text
                return bool(await self._commands.execute("EVAL", _RELEASE, 1, self.key, self.token))
        except (RedisError, TimeoutError, OSError):
            # The TTL frees the key anyway; failing the caller's committed work would be worse.
            return False

    async def __aenter__(self) -> RedisLock:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
