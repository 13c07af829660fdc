"""Who is calling: JWT access tokens, rotating refresh tokens, personal API tokens.

- Access tokens: JWT, HS256 pinned (`algorithms=["HS256"]`, so `none` or an
  RS/HS confusion is refused), signed with the active key and verified with
  the key its `kid` header names (unknown kids are refused), so keys rotate by
  adding a new one, making it active, and dropping the old one 15 minutes
  later. `iss`, `aud`, `exp`, `iat` and `sub` are required; lifetime <= 15 min.
  A verified token's claims are remembered (keyed by the whole token, so a
  changed signature or payload is verified afresh) until the token expires;
  every use still checks `exp` against the clock. Nothing else can change a
  verified token's answer: access tokens are not revocable (the 15-minute
  lifetime is the bound, as for role changes) and keys only change with the
  process's configuration.
  The role travels in the token: a role change or deactivation takes effect
  at the next refresh (<= 15 minutes), when the user is looked up again.
- Refresh tokens: opaque random strings, stored in Redis by their SHA-256
  with a TTL, single use: each refresh returns a new one in the same family.
  Presenting a used one again means it was stolen (or replayed by the thief):
  the whole family is revoked, so the thief's copy dies too.
- Personal API tokens (`tt_...`): verified by the projects service, which
  stores their SHA-256; answers are cached in-process for a few seconds.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import grpc
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.errors import Unauthenticated, Unavailable

from .clients import ServiceClients
from .config import GatewaySettings
from .problems import HttpProblem
from .ratelimit import Quota, RateLimiter

ALGORITHM = "HS256"
REFRESH_PREFIX = "rt_"
API_TOKEN_PREFIX = "tt_"
API_TOKEN_CACHE_S = 10.0
LEEWAY_S = 5
VERIFIED_CACHE_SIZE = 10_000  # ~10k live access tokens per process; the oldest go first

ROLE_NAMES = {ppb.ROLE_EMPLOYEE: "EMPLOYEE", ppb.ROLE_MANAGER: "MANAGER", ppb.ROLE_ADMIN: "ADMIN"}
Role = Literal["EMPLOYEE", "MANAGER", "ADMIN"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    role: str
    via: Literal["jwt", "api_token"]
    rate_subject: str  # whose bucket a request draws from

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


def _unauthenticated(detail: str, code: str = "unauthenticated") -> HttpProblem:
    return HttpProblem(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="timetracking"'})


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class JwtCodec:
    def __init__(self, settings: GatewaySettings, clock: Callable[[], float] = time.time) -> None:
        self.keys = dict(settings.jwt_keys)
        self.active_kid = settings.jwt_active_kid
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.ttl_s = settings.access_token_ttl_s
        self.clock = clock
        # token -> its verified claims; HMAC and JSON decoding were a tenth of a request's CPU
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(self, user_id: str, role: str, *, now: float | None = None) -> str:
        iat = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "role": role,
        }
        return jwt.encode(
            claims, self.keys[self.active_kid], algorithm=ALGORITHM, headers={"kid": self.active_kid}
        )

    def verify(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] + LEEWAY_S <= self.clock():
                del self._verified[token]
                raise _unauthenticated("access token expired; refresh it", "token_expired")
            return claims
        claims = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise _unauthenticated("malformed access token", "invalid_token") from None
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _unauthenticated("access token signed with an unknown key", "invalid_token")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("access token expired; refresh it", "token_expired") from None
        except jwt.PyJWTError:
            raise _unauthenticated("invalid access token", "invalid_token") from None
        if claims.get("role") not in ("EMPLOYEE", "MANAGER", "ADMIN") or claims["exp"] - claims["iat"] > 900:
            raise _unauthenticated("invalid access token", "invalid_token")
        return claims


# KEYS[1] = the presented token's record. Returns {status, user_id, family}.
_ROTATE = """
local rec = redis.call('HMGET', KEYS[1], 'user_id', 'family', 'used')
if not rec[1] then return {'invalid', '', ''} end
local family_key = 'refresh-family:' .. rec[2]
if redis.call('EXISTS', family_key) == 0 then return {'revoked', rec[1], rec[2]} end
if rec[3] == '1' then
  redis.call('DEL', family_key)
  return {'reused', rec[1], rec[2]}
end
redis.call('HSET', KEYS[1], 'used', '1')
return {'ok', rec[1], rec[2]}
"""


class RefreshTokens:
    """Opaque, single-use refresh tokens in token families (Redis)."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._rotate = redis.register_script(_ROTATE)

    async def issue(self, user_id: str, family: str | None = None) -> str:
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        family = family or uuid.uuid4().hex
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    f"refresh:{_sha256(token)}", mapping={"user_id": user_id, "family": family, "used": 0}
                )
                pipe.expire(f"refresh:{_sha256(token)}", self.ttl_s)
                pipe.set(f"refresh-family:{family}", user_id, ex=self.ttl_s)
                await pipe.execute()
        except RedisError as exc:
            raise Unavailable("session store unavailable, retry later") from exc
        return token

    async def rotate(self, token: str) -> tuple[str, str]:
        """(user_id, family) of a valid, unused token, now marked used; 401 otherwise."""
        if not token.startswith(REFRESH_PREFIX) or len(token) > 100:
            raise _unauthenticated("invalid refresh token", "invalid_refresh_token")
        try:
            status, user_id, family = await self._rotate(keys=[f"refresh:{_sha256(token)}"])
        except RedisError as exc:
            raise Unavailable("session store unavailable, retry later") from exc
        status = status.decode() if isinstance(status, bytes) else status
        if status != "ok":
            raise _unauthenticated("invalid refresh token", "invalid_refresh_token")
        as_str = [v.decode() if isinstance(v, bytes) else v for v in (user_id, family)]
        return as_str[0], as_str[1]

    async def revoke(self, token: str) -> None:
        """Log out: the token's whole family stops working. Unknown tokens are ignored."""
        try:
            family = await self.redis.hget(f"refresh:{_sha256(token)}", "family")
        except RedisError as exc:
            raise Unavailable("session store unavailable, retry later") from exc
        if family:
            await self.revoke_family(family.decode() if isinstance(family, bytes) else str(family))

    async def revoke_family(self, family: str) -> None:
        """Every refresh token of one login stops working."""
        try:
            await self.redis.delete(f"refresh-family:{family}")
        except RedisError as exc:
            raise Unavailable("session store unavailable, retry later") from exc


class Authenticator:
    """Login, refresh, and turning an Authorization header into a Principal."""

    def __init__(self, settings: GatewaySettings, clients: ServiceClients, redis: Redis) -> None:
        self.codec = JwtCodec(settings)
        self.refresh = RefreshTokens(redis, settings.refresh_token_ttl_s)
        self.clients = clients
        self._api_tokens: dict[str, tuple[float, Principal]] = {}

    async def _tokens_for(self, user: ppb.User, family: str | None = None) -> IssuedTokens:
        role = ROLE_NAMES.get(user.role, "EMPLOYEE")
        return IssuedTokens(
            access_token=self.codec.issue(user.user_id, role),
            expires_in=self.codec.ttl_s,
            refresh_token=await self.refresh.issue(user.user_id, family),
            refresh_expires_in=self.refresh.ttl_s,
        )

    async def login(self, email: str, password: str) -> IssuedTokens:
        try:
            user = await self.clients.write(
                self.clients.projects.VerifyCredentials,
                ppb.VerifyCredentialsRequest(email=email, password=password),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise _unauthenticated("invalid email or password", "invalid_credentials") from None
            raise
        return await self._tokens_for(user)

    async def refresh_tokens(self, refresh_token: str) -> IssuedTokens:
        user_id, family = await self.refresh.rotate(refresh_token)
        try:
            user = await self.clients.read(self.clients.projects.GetUser, ppb.GetUserRequest(user_id=user_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            user = None
        if user is None or not user.active:
            await self.refresh.revoke_family(family)
            raise _unauthenticated("invalid refresh token", "invalid_refresh_token")
        return await self._tokens_for(user, family)

    async def principal(self, token: str) -> Principal:
        if token.startswith(API_TOKEN_PREFIX):
            return await self._api_token_principal(token)
        claims = self.codec.verify(token)
        return Principal(
            user_id=claims["sub"], role=claims["role"], via="jwt", rate_subject=f"u:{claims['sub']}"
        )

    async def _api_token_principal(self, secret: str) -> Principal:
        digest = _sha256(secret)
        now = time.monotonic()
        cached = self._api_tokens.get(digest)
        if cached and cached[0] > now:
            return cached[1]
        try:
            resp = await self.clients.read(
                self.clients.projects.VerifyApiToken, ppb.VerifyApiTokenRequest(secret=secret)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise _unauthenticated("invalid API token", "invalid_api_token") from None
            raise
        principal = Principal(
            user_id=resp.user.user_id,
            role=ROLE_NAMES.get(resp.user.role, "EMPLOYEE"),
            via="api_token",
            rate_subject=f"t:{resp.token_id}",
        )
        if len(self._api_tokens) > 10_000:
            self._api_tokens.clear()
        self._api_tokens[digest] = (now + API_TOKEN_CACHE_S, principal)
        return principal

    def forget_api_tokens(self) -> None:
        """After a revocation through this gateway: no cached answer outlives it here."""
        self._api_tokens.clear()


class BearerPrincipal(HTTPBearer):
    """The caller, authenticated and within their rate limit, as one dependency.

    It is the bearer scheme of the OpenAPI document and the check of the token in one
    object: FastAPI's dependency machinery costs per dependency and per request, and
    the scheme used to be a second dependency under this one.
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        credentials = await super().__call__(request)
        if credentials is None or not credentials.credentials:
            raise _unauthenticated("send Authorization: Bearer <token>", "missing_credentials")
        gw = request.app.state.gw
        principal: Principal = await gw.auth.principal(credentials.credentials)
        await gw.limiter.take(gw.quotas.general, principal.rate_subject)
        return principal


current_principal = BearerPrincipal(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="A JWT access token from POST /v1/auth/token, or a personal API token (tt_...).",
)


async def heavy_quota(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> None:
    """The tighter quota of reports and PDFs, on top of the general one."""
    gw = request.app.state.gw
    await gw.limiter.take(gw.quotas.heavy, principal.rate_subject)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class Quotas:
    general: Quota
    heavy: Quota
    login: Quota

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> Quotas:
        return cls(
            general=Quota("general", s.rate_per_s, s.rate_burst),
            heavy=Quota("heavy", s.heavy_rate_per_s, s.heavy_rate_burst),
            login=Quota("login", s.login_rate_per_s, s.login_rate_burst),
        )


__all__ = ["Authenticator", "CurrentPrincipal", "Principal", "Quotas", "RateLimiter", "Unauthenticated"]
