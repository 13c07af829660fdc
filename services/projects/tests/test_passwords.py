"""argon2 is slow on purpose; it must be slow off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from projects import passwords
from tt_common.errors import InvalidArgument


async def test_hashing_and_verifying_leave_the_event_loop_free() -> None:
    """While a login's argon2 runs, other calls on the loop keep being served (here: a ticker).

    On the loop itself the ticker could not run at all until argon2 finished.
    """
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    stored = await passwords.hash_password("correct horse battery")
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "wrong horse battery")
    assert not await passwords.verify(None, "correct horse battery")  # unknown email: same work, refused
    done = True
    await task
    assert ticks - before > 50, f"the loop ran only {ticks - before} times during four argon2 calls"


async def test_a_too_short_password_is_refused_before_any_hashing() -> None:
    with pytest.raises(InvalidArgument, match="password"):
        await passwords.hash_password("short")
