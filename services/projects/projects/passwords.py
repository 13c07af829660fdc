"""Password hashing (argon2id) and the constant-effort login check.

argon2 costs tens of milliseconds of CPU on purpose. It runs on a small thread
pool (argon2-cffi releases the GIL), never on the event loop: a burst of logins
must not stall every other call of the projects service (access checks, billing
lookups) past its callers' deadlines. Two threads bound the memory (argon2's
64 MiB each) and the CPU a login flood can take; more logins wait their turn.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tt_common.errors import InvalidArgument

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 is costly on purpose; don't let a megabyte "password" through

_hasher = PasswordHasher()
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
# Verified against when the email is unknown, so a miss costs what a hit costs
# and response times don't reveal which emails have accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-amount-of-work")


def validate(password: str, field: str = "password") -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidArgument.field(field, f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument.field(field, f"at most {MAX_LENGTH} characters")
    return password


async def hash_password(password: str) -> str:
    validate(password)
    return await asyncio.get_running_loop().run_in_executor(_pool, _hasher.hash, password)


async def verify(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; always does one full argon2 verification."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify, stored_hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password[:MAX_LENGTH]) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
