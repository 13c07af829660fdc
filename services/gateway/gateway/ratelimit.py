"""Token-bucket rate limits in Redis, one atomic Lua script per check.

A bucket holds up to `burst` tokens and refills at `rate` per second; a
request takes one. The script reads Redis's own clock (TIME), so gateways with
skewed clocks share buckets correctly. When Redis is unreachable the limiter
lets requests through (logged): a rate limiter outage must not become an API
outage; the services' own limits (deadlines, pools) still hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tt_common.logging import get_logger

from .problems import HttpProblem

log = get_logger(__name__)

# KEYS[1] bucket; ARGV: rate per second, burst, cost.
# Returns {allowed (0/1), milliseconds until `cost` tokens are available}.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait_ms}
"""


@dataclass(frozen=True)
class Quota:
    name: str
    rate_per_s: float
    burst: int


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_TOKEN_BUCKET)

    async def take(self, quota: Quota, subject: str) -> None:
        """Take one token from `subject`'s bucket, or raise 429 with Retry-After."""
        try:
            allowed, wait_ms = await self._script(
                keys=[f"ratelimit:{quota.name}:{subject}"], args=[quota.rate_per_s, quota.burst, 1]
            )
        except RedisError as exc:
            log.warning("rate limiter unavailable; request let through", error=str(exc))
            return
        if not int(allowed):
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise HttpProblem(
                429,
                "rate_limited",
                f"too many requests ({quota.name} quota: {quota.burst} burst, {quota.rate_per_s:g}/s); "
                f"retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
