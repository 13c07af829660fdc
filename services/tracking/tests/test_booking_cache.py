"""The cache of granted bookings in front of projects: refresh ahead, never past its TTL.

Unit tests: the projects lookup (`_resolve`) is replaced by a scripted one that counts its calls;
the clock is the event loop's, with a TTL of a fraction of a second.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal

import grpc
import pytest

from tracking.directory import ProjectsDirectory
from tracking.domain import Billing
from tt_common.errors import PermissionDenied, Unavailable

TTL = 1.0
SLOW = 0.3  # a lookup that takes this long is waited for, or visibly not (under FAST)
FAST = 0.2
USER, PROJECT = uuid.uuid4(), uuid.uuid4()


def billing(rate: str) -> Billing:
    return Billing(hourly_rate=Decimal(rate), currency="EUR", is_billable=True)


class Projects:
    """What projects answers next (a Billing or an error to raise), after `delay_s`."""

    def __init__(self, answer: Billing | Exception, delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.calls = 0

    async def resolve(self, user_id: uuid.UUID, project_id: uuid.UUID, task_id: uuid.UUID | None) -> Billing:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def directory(projects: Projects) -> ProjectsDirectory:
    d = ProjectsDirectory(grpc.aio.insecure_channel("127.0.0.1:1"), deadline_s=1.0, cache_ttl_s=TTL)
    d._resolve = projects.resolve  # type: ignore[method-assign]
    return d


async def timed(d: ProjectsDirectory) -> tuple[Billing, float]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    got = await d.billing_for_booking(USER, PROJECT, None)
    return got, loop.time() - began


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_grant_is_reused_then_refreshed_in_the_background_without_a_wait() -> None:
    projects = Projects(billing("100.00"), delay_s=SLOW)
    d = await directory(projects)
    first, waited = await timed(d)
    assert first.hourly_rate == Decimal("100.00") and waited >= SLOW and projects.calls == 1

    again, waited = await timed(d)  # fresh: from the cache, projects not asked
    assert again == first and waited < FAST and projects.calls == 1

    # Past the refresh point, inside the TTL: the old grant at once, a lookup behind it.
    projects.answer = billing("120.00")
    await asyncio.sleep(TTL * ProjectsDirectory.REFRESH_AFTER + 0.02)
    stale, waited = await timed(d)
    assert stale.hourly_rate == Decimal("100.00") and waited < FAST
    await until(lambda: projects.calls == 2)
    await timed(d)  # one refresh at a time: this start did not launch another
    assert projects.calls == 2
    await until(lambda: not d._in_flight)
    fresh, waited = await timed(d)
    assert fresh.hourly_rate == Decimal("120.00") and waited < FAST and projects.calls == 2


async def refreshed_with(answer: Exception) -> tuple[ProjectsDirectory, Projects]:
    """A granted booking past its refresh point, whose refresh (now done) met `answer`."""
    projects = Projects(billing("100.00"))
    d = await directory(projects)
    await timed(d)
    projects.answer = answer
    await asyncio.sleep(TTL * ProjectsDirectory.REFRESH_AFTER + 0.02)
    got, _ = await timed(d)  # still inside the TTL: served, and a refresh goes out
    assert got.hourly_rate == Decimal("100.00")
    await until(lambda: projects.calls == 2 and not d._in_flight)
    await asyncio.sleep(0.02)
    return d, projects


async def test_a_refresh_that_is_refused_forgets_the_grant() -> None:
    d, projects = await refreshed_with(PermissionDenied("not a member of this project"))
    with pytest.raises(PermissionDenied):  # long before the TTL ends
        await d.billing_for_booking(USER, PROJECT, None)
    assert projects.calls == 3


async def test_projects_away_keeps_a_grant_until_its_ttl_and_never_past_it() -> None:
    d, _ = await refreshed_with(Unavailable("projects service unavailable (unavailable), retry later"))
    got, _ = await timed(d)  # the failed refresh kept it
    assert got.hourly_rate == Decimal("100.00")
    await asyncio.sleep(TTL)
    with pytest.raises(Unavailable):  # its TTL is over: asked again, and the outage is told
        await d.billing_for_booking(USER, PROJECT, None)


async def test_without_a_ttl_every_start_asks() -> None:
    projects = Projects(billing("100.00"))
    d = ProjectsDirectory(grpc.aio.insecure_channel("127.0.0.1:1"), deadline_s=1.0, cache_ttl_s=0)
    d._resolve = projects.resolve  # type: ignore[method-assign]
    for _ in range(3):
        await d.billing_for_booking(USER, PROJECT, None)
    assert projects.calls == 3
