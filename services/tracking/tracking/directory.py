"""What tracking asks the projects service: may this user book time here, and at what rate."""

from __future__ import annotations

import asyncio
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

import grpc

from timetracking.projects.v1 import projects_pb2, projects_pb2_grpc
from tt_common.errors import DomainError, FailedPrecondition, PermissionDenied, Unavailable
from tt_common.grpc_calls import call
from tt_common.logging import get_logger

from .domain import Billing

DEPENDENCY = "projects service"

log = get_logger(__name__)


class Directory(Protocol):
    async def billing_for_booking(
        self, user_id: uuid.UUID, project_id: uuid.UUID, task_id: uuid.UUID | None
    ) -> Billing: ...


class ProjectsDirectory:
    """Access check and billing resolution, both over gRPC with a deadline.

    The two calls run concurrently (they are independent reads), so a start
    waits for one round trip, not two. Nothing is written before both answered.

    A granted booking is remembered for `cache_ttl_s` (0 = never), so a user
    who starts and stops timers all day costs projects one lookup per TTL, not
    two per start. The price is bounded staleness: a rate change, a removed
    membership or an archived project takes effect on new entries within the
    TTL. Refusals and errors are never cached.

    Refresh ahead: once a remembered booking has lived `REFRESH_AFTER` of its
    TTL, the start that finds it still uses it and asks projects again in the
    background, so a user who keeps booking never waits for the lookup (without
    it, one start in ~100 at 20 busy users waited for projects: the start's p99).
    A booking is never used past its own TTL; a refresh that projects refuses
    forgets it (the next start asks and is refused), one that fails keeps it
    until its TTL ends.
    """

    REFRESH_AFTER = 0.5

    def __init__(self, channel: grpc.aio.Channel, deadline_s: float, cache_ttl_s: float = 0.0) -> None:
        self.stub = projects_pb2_grpc.ProjectsServiceStub(channel)
        self.deadline_s = deadline_s
        self.cache_ttl_s = cache_ttl_s
        # key -> (refresh at, expires at, billing), on the event loop's clock
        self._granted: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], tuple[float, float, Billing]] = {}
        self._in_flight: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], asyncio.Future[Billing]] = {}
        self._refreshing: set[asyncio.Task[None]] = set()

    async def billing_for_booking(
        self, user_id: uuid.UUID, project_id: uuid.UUID, task_id: uuid.UUID | None
    ) -> Billing:
        if self.cache_ttl_s <= 0:
            return await self._resolve(user_id, project_id, task_id)
        key = (user_id, project_id, task_id)
        now = asyncio.get_running_loop().time()
        cached = self._granted.get(key)
        if cached is not None and cached[1] > now:
            refresh_at, _, billing = cached
            if refresh_at <= now and key not in self._in_flight:
                task = asyncio.create_task(self._refresh(key))
                self._refreshing.add(task)
                task.add_done_callback(self._refreshing.discard)
            return billing
        return await self._lookup(key)

    async def _lookup(self, key: tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]) -> Billing:
        """One lookup per key at a time (concurrent starts of one user share it); a grant is
        remembered."""
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Billing] = loop.create_future()
        self._in_flight[key] = future
        try:
            billing = await self._resolve(*key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._in_flight[key]
        future.set_result(billing)
        if len(self._granted) > 50_000:
            self._granted.clear()
        fetched = loop.time()
        self._granted[key] = (
            fetched + self.cache_ttl_s * self.REFRESH_AFTER,
            fetched + self.cache_ttl_s,
            billing,
        )
        return billing

    async def _refresh(self, key: tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]) -> None:
        try:
            await self._lookup(key)
        except Unavailable:
            pass  # projects is away: the booking stays usable until its own TTL ends
        except DomainError:
            self._granted.pop(key, None)  # refused: the next start asks and hears why
        except Exception as exc:  # noqa: BLE001 (a background task: nobody else would see it)
            self._granted.pop(key, None)
            log.warning("booking refresh failed", error=repr(exc))

    async def _resolve(self, user_id: uuid.UUID, project_id: uuid.UUID, task_id: uuid.UUID | None) -> Billing:
        access_call = call(
            self.stub.CheckAccess,
            projects_pb2.CheckAccessRequest(
                user_id=str(user_id),
                project_id=str(project_id),
                purpose=projects_pb2.ACCESS_PURPOSE_BOOK_TIME,
            ),
            dependency=DEPENDENCY,
            deadline_s=self.deadline_s,
        )
        billing_call = call(
            self.stub.ResolveBilling,
            projects_pb2.ResolveBillingRequest(
                user_id=str(user_id), project_id=str(project_id), task_id=str(task_id) if task_id else ""
            ),
            dependency=DEPENDENCY,
            deadline_s=self.deadline_s,
        )
        results: Any = await asyncio.gather(access_call, billing_call, return_exceptions=True)
        access, billing = results
        # The access answer speaks first: "no access" beats "task not in project".
        if isinstance(access, BaseException):
            raise access
        check_booking_access(access)
        if isinstance(billing, BaseException):
            raise billing
        return billing_from(billing)


def check_booking_access(access: projects_pb2.CheckAccessResponse) -> None:
    status = access.project_status
    if status not in (projects_pb2.PROJECT_STATUS_UNSPECIFIED, projects_pb2.PROJECT_STATUS_ACTIVE):
        name = projects_pb2.ProjectStatus.Name(status).removeprefix("PROJECT_STATUS_")
        raise FailedPrecondition(f"project_id: the project is {name}; time is booked on ACTIVE projects only")
    if not access.allowed:
        raise PermissionDenied(access.reason or "the user may not book time on this project")


def billing_from(resp: projects_pb2.ResolveBillingResponse) -> Billing:
    try:
        rate = Decimal(resp.hourly_rate)
    except InvalidOperation:
        raise RuntimeError(f"projects returned a malformed hourly_rate {resp.hourly_rate!r}") from None
    if not rate.is_finite() or rate < 0 or len(resp.currency) != 3:
        raise RuntimeError(f"projects returned a bad rate {resp.hourly_rate!r} {resp.currency!r}")
    return Billing(
        hourly_rate=rate.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
        currency=resp.currency,
        is_billable=resp.is_billable,
    )
