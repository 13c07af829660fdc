"""Access-token verification, and the cache of verified tokens in front of it.

Unit tests: no stack. The cache must never make the gateway accept a token that a
fresh verification would refuse.
"""

from __future__ import annotations

import time

import jwt
import pytest

from gateway import auth
from gateway.auth import JwtCodec
from gateway.config import GatewaySettings
from gateway.problems import HttpProblem

KEY = "k" * 48


def settings(**overrides: object) -> GatewaySettings:
    values: dict[str, object] = {
        "http_port": 8080,
        "projects_target": "127.0.0.1:1",
        "tracking_target": "127.0.0.1:1",
        "reporting_target": "127.0.0.1:1",
        "invoicing_target": "127.0.0.1:1",
        "redis_url": "redis://127.0.0.1:1/0",
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "jwt_keys": {"k1": KEY},
        "jwt_active_kid": "k1",
        **overrides,
    }
    return GatewaySettings(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def refused_code(codec: JwtCodec, token: str) -> str:
    with pytest.raises(HttpProblem) as refused:
        codec.verify(token)
    assert refused.value.status == 401
    return refused.value.code


def test_a_cached_token_is_refused_once_it_expires() -> None:
    clock = Clock()
    codec = JwtCodec(settings(access_token_ttl_s=60), clock=clock)
    token = codec.issue("user-1", "EMPLOYEE")
    assert codec.verify(token)["sub"] == "user-1"
    assert codec.verify(token)["sub"] == "user-1"  # from the cache
    clock.now += 60 + auth.LEEWAY_S + 1
    assert refused_code(codec, token) == "token_expired"
    assert token not in codec._verified


def test_an_expired_token_is_refused_before_it_is_cached() -> None:
    codec = JwtCodec(settings(access_token_ttl_s=60))
    token = codec.issue("user-1", "EMPLOYEE", now=time.time() - 60 - auth.LEEWAY_S - 1)
    assert refused_code(codec, token) == "token_expired"
    assert codec._verified == {}


def test_the_cache_is_keyed_by_the_whole_token() -> None:
    codec = JwtCodec(settings())
    token = codec.issue("user-1", "EMPLOYEE")
    codec.verify(token)
    header, payload, signature = token.split(".")
    forged_sig = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert refused_code(codec, f"{header}.{payload}.{forged_sig}") == "invalid_token"
    other = JwtCodec(settings(jwt_keys={"k1": "x" * 48})).issue("user-1", "ADMIN")
    assert refused_code(codec, other) == "invalid_token"


def test_refused_tokens_are_not_cached() -> None:
    codec = JwtCodec(settings())
    claims = {"iss": codec.issuer, "aud": codec.audience, "sub": "u", "iat": int(time.time())}
    no_exp = jwt.encode({**claims, "role": "ADMIN"}, KEY, algorithm="HS256", headers={"kid": "k1"})
    for _ in range(2):
        assert refused_code(codec, no_exp) == "invalid_token"
    none_alg = jwt.encode({**claims, "exp": claims["iat"] + 60, "role": "ADMIN"}, None, algorithm="none")
    for _ in range(2):
        assert refused_code(codec, none_alg) == "invalid_token"
    assert codec._verified == {}


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_CACHE_SIZE", 3)
    codec = JwtCodec(settings())
    tokens = [codec.issue(f"user-{i}", "EMPLOYEE") for i in range(5)]
    for token in tokens:
        codec.verify(token)
    assert list(codec._verified) == tokens[2:]
    assert codec.verify(tokens[0])["sub"] == "user-0"  # verified afresh
