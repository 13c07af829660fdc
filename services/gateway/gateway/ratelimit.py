"""Token-bucket rate limits in Redis, one atomic Lua script per check, with per-process leases.

A bucket holds up to `burst` tokens and refills at `rate` per second; a
request takes one. The script reads Redis's own clock (TIME), so gateways with
skewed clocks share buckets correctly. When Redis is unreachable the limiter
lets requests through (logged): a rate limiter outage must not become an API
outage; the services' own limits (deadlines, pools) still hold.

Leases: a Redis round trip per request was a tenth of the gateway's CPU, so a
gateway process takes a few tokens at once (a lease: up to a tenth of a
second of refill, at most a tenth of the burst, at most LEASE_MAX) and spends
them locally for up to LEASE_S; what is left then lapses. The bucket grants a
lease only from tokens it has (fewer than asked when it is nearly empty, never
fewer than one), so leasing only takes tokens earlier: over any period a
caller spends at most what the bucket granted plus one lease per gateway
process, which never raises the sustained rate and exceeds the burst by at
most a tenth of it per process. Tight quotas (reports and PDFs, logins: rate
under 10/s) lease one token, exactly as without leases.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tt_common.logging import get_logger

from .problems import HttpProblem

log = get_logger(__name__)

# KEYS[1] bucket; ARGV: rate per second, burst, tokens wanted (a lease).
# Returns {tokens granted (0 when not even one is there), milliseconds until one token is}.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
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
local granted = math.min(want, math.floor(tokens))
local wait_ms = 0
if granted >= 1 then
  tokens = tokens - granted
else
  granted = 0
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait_ms}
"""


LEASE_MAX = 20  # tokens per Redis round trip, at most
LEASE_REFILL_S = 0.1  # a lease is at most this much of the bucket's refill ...
LEASE_BURST_SHARE = 10  # ... and at most 1/10 of its burst
LEASE_S = 1.0  # unspent leased tokens lapse after this long
LEASES_KEPT = 10_000  # subjects with a live lease per process, before expired ones are swept


@dataclass(frozen=True)
class Quota:
    name: str
    rate_per_s: float
    burst: int

    @property
    def lease(self) -> int:
        """Tokens a gateway process takes from the bucket at once."""
        return max(1, min(LEASE_MAX, self.burst // LEASE_BURST_SHARE, int(self.rate_per_s * LEASE_REFILL_S)))


class RateLimiter:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.clock = clock
        self._script = redis.register_script(_TOKEN_BUCKET)
        # bucket key -> (leased tokens left, lapse time on `clock`)
        self._leases: dict[str, tuple[int, float]] = {}

    async def take(self, quota: Quota, subject: str) -> None:
        """Take one token from `subject`'s bucket (or this process's lease of it), or raise 429."""
        key = f"ratelimit:{quota.name}:{subject}"
        now = self.clock()
        left, until = self._leases.get(key, (0, 0.0))
        if left > 0 and until > now:
            self._leases[key] = (left - 1, until)
            return
        try:
            granted, wait_ms = await self._script(
                keys=[key], args=[quota.rate_per_s, quota.burst, quota.lease]
            )
        except RedisError as exc:
            log.warning("rate limiter unavailable; request let through", error=str(exc))
            return
        granted = int(granted)
        if granted < 1:
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise HttpProblem(
                429,
                "rate_limited",
                f"too many requests ({quota.name} quota: {quota.burst} burst, {quota.rate_per_s:g}/s); "
                f"retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        if granted > 1:
            # Another request of the same caller may have leased meanwhile: keep both leases' tokens.
            left, until = self._leases.get(key, (0, 0.0))
            kept = left if until > now else 0
            if len(self._leases) >= LEASES_KEPT:
                self._sweep(now)
            self._leases[key] = (kept + granted - 1, now + LEASE_S)

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, until) in self._leases.items() if until <= now]:
            del self._leases[key]
        if len(self._leases) >= LEASES_KEPT:  # all live: drop them (their tokens lapse early)
            self._leases.clear()
