"""Rate-limit leases against the real Redis: a gateway process takes a few tokens per round
trip, and leasing never lets a caller past the bucket by more than one lease per process."""

from __future__ import annotations

import math
import time
import uuid
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from gateway.auth import Quotas
from gateway.config import GatewaySettings
from gateway.problems import HttpProblem
from gateway.ratelimit import Quota, RateLimiter
from tests.support.infra import Infra


def test_tight_quotas_lease_one_token_and_the_general_quota_a_tenth_of_a_second() -> None:
    defaults = {name: field.default for name, field in GatewaySettings.model_fields.items()}
    settings = SimpleNamespace(**defaults)  # the configured defaults, nothing else needed
    quotas = Quotas.from_settings(settings)  # type: ignore[arg-type]
    assert quotas.general.lease == 10  # 100/s for 0.1 s; burst 200 allows 20
    assert quotas.heavy.lease == 1  # 2/s: exact, as without leases
    assert quotas.login.lease == 1
    assert Quota("q", 100_000, 100_000).lease == 20  # never more than LEASE_MAX
    assert Quota("q", 1_000, 30).lease == 3  # never more than a tenth of the burst


@pytest.fixture
async def redis(infra: Infra):
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def test_one_round_trip_serves_a_lease(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    quota = Quota(f"lease-{uuid.uuid4().hex[:8]}", 100, 200)
    subject = "u:lease-test"
    key = f"ratelimit:{quota.name}:{subject}"
    await limiter.take(quota, subject)
    tokens_after_first = float(await redis.hget(key, "tokens"))
    assert 190 <= tokens_after_first < 191  # the whole lease of 10 left the bucket at once
    for _ in range(9):  # the rest of the lease: no round trip, the bucket is not touched
        await limiter.take(quota, subject)
    assert float(await redis.hget(key, "tokens")) == tokens_after_first
    await limiter.take(quota, subject)  # the 11th request leases again
    assert float(await redis.hget(key, "tokens")) < tokens_after_first


async def test_two_processes_leasing_one_bucket_stay_within_burst_plus_a_lease_each(redis: Redis) -> None:
    quota = Quota(f"lease-{uuid.uuid4().hex[:8]}", 20, 40)  # lease 2
    assert quota.lease == 2
    subject = "u:two-gateways"
    gateways = [RateLimiter(redis), RateLimiter(redis)]
    allowed, refused = 0, None
    started = time.monotonic()
    for i in range(1000):
        try:
            await gateways[i % 2].take(quota, subject)
        except HttpProblem as exc:
            refused = exc
            break
        allowed += 1
    elapsed = time.monotonic() - started
    assert refused is not None, "the bucket never ran dry"
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    # The bucket's burst, what it refilled meanwhile, and at most one lease per process.
    # Refused early by at most the tokens the other process still holds.
    assert 40 - quota.lease <= allowed <= 40 + math.ceil(quota.rate_per_s * elapsed) + 2 * quota.lease
