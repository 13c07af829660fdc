"""What every route needs, built once at startup and kept on `app.state.gw`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from .access import Access
from .auth import Authenticator, Quotas
from .clients import ServiceClients
from .config import GatewaySettings
from .health import ReadinessProbe
from .idempotency import IdempotencyStore
from .ratelimit import RateLimiter


@dataclass
class Gateway:
    settings: GatewaySettings
    clients: ServiceClients
    redis: Redis
    limiter: RateLimiter
    quotas: Quotas
    auth: Authenticator
    access: Access
    idempotency: IdempotencyStore
    readiness: ReadinessProbe

    @classmethod
    def build(cls, settings: GatewaySettings, clients: ServiceClients, redis: Redis) -> Gateway:
        return cls(
            settings=settings,
            clients=clients,
            redis=redis,
            limiter=RateLimiter(redis),
            quotas=Quotas.from_settings(settings),
            auth=Authenticator(settings, clients, redis),
            access=Access(clients, settings.access_cache_ttl_s),
            idempotency=IdempotencyStore(redis, settings.idempotency_ttl_s, settings.idempotency_lock_s),
            readiness=ReadinessProbe(settings, redis),
        )

    async def close(self) -> None:
        await self.clients.close()
        await self.redis.aclose()


async def gateway(request: Request) -> Gateway:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hop per request for an attribute lookup.
    gw: Gateway = request.app.state.gw
    return gw


GatewayDep = Annotated[Gateway, Depends(gateway)]
