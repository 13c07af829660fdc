"""/healthz (the process is alive) and /readyz (every dependency answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from tt_common.grpc_client import check_health

from .config import GatewaySettings

DATABASE_SERVICES = ("projects", "tracking", "reporting", "invoicing")


class ReadinessProbe:
    def __init__(self, settings: GatewaySettings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis

    def _targets(self) -> dict[str, str]:
        s = self.settings
        return {
            "projects": s.projects_target,
            "tracking": s.tracking_target,
            "reporting": s.reporting_target,
            "invoicing": s.invoicing_target,
        }

    async def _redis(self) -> None:
        await self.redis.ping()

    async def _kafka(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, request_timeout_ms=3000
        )
        await admin.start()
        try:
            await admin.describe_cluster()
        finally:
            await admin.close()

    async def _postgresql(self) -> None:
        # The gateway owns no database; each service reports its own on the health service.
        targets = self._targets()
        results = await asyncio.gather(*(check_health(targets[s], "postgresql") for s in DATABASE_SERVICES))
        down = [s for s, ok in zip(DATABASE_SERVICES, results, strict=True) if not ok]
        if down:
            raise RuntimeError(f"database of {', '.join(down)} not ready")

    def _service(self, name: str) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            if not await check_health(self._targets()[name]):
                raise RuntimeError(f"{name} is not SERVING")

        return check

    async def check(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, Callable[[], Awaitable[None]]] = {
            "postgresql": self._postgresql,
            "redis": self._redis,
            "kafka": self._kafka,
            **{name: self._service(name) for name in self._targets()},
        }

        async def run(fn: Callable[[], Awaitable[None]]) -> str:
            try:
                await asyncio.wait_for(fn(), self.settings.readiness_timeout_s)
                return "ok"
            except TimeoutError:
                return "timeout"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return f"error: {exc}" if str(exc) else f"error: {type(exc).__name__}"

        results = await asyncio.gather(*(run(fn) for fn in checks.values()))
        report = dict(zip(checks, results, strict=True))
        return all(r == "ok" for r in results), report
