"""The refresh-token store (Redis) unreachable: every operation says "retry later"
(Unavailable, a 503 at the edge), none escapes as a RedisError (a 500)."""

from __future__ import annotations

import socket

import pytest

from gateway.auth import RefreshTokens
from tt_common.errors import Unavailable
from tt_common.redis import make_redis


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_every_session_store_operation_is_unavailable_while_redis_is_down() -> None:
    redis = make_redis(f"redis://127.0.0.1:{closed_port()}/0")
    tokens = RefreshTokens(redis, ttl_s=60)
    try:
        for operation in (
            tokens.issue("user"),
            tokens.rotate("rt_" + "x" * 40),
            tokens.revoke("rt_" + "x" * 40),
            tokens.revoke_family("family"),  # refreshing a deactivated user's token revokes its login
        ):
            with pytest.raises(Unavailable, match="session store unavailable"):
                await operation
    finally:
        await redis.aclose()
