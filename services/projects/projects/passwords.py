"""Password hashing (argon2id) and the constant-effort login check."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tt_common.errors import InvalidArgument

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 is costly on purpose; don't let a megabyte "password" through

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs what a hit costs
# and response times don't reveal which emails have accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-amount-of-work")


def validate(password: str, field: str = "password") -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidArgument.field(field, f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument.field(field, f"at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(validate(password))


def verify(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; always does one full argon2 verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password[:MAX_LENGTH]) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
