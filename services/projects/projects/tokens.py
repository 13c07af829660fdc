"""Personal API tokens: created, listed, revoked and verified.

A token is `tt_` + 32 random bytes (base64url, 43 characters). Only its
SHA-256 is stored. A fast hash is enough here, unlike passwords: a password is
guessable, so it needs a slow, salted hash (argon2) to make offline guessing
expensive; a 256-bit random secret cannot be guessed, so a leaked hash gives
nothing to brute-force, and a single SHA-256 lets every API request be
verified by one indexed lookup instead of an argon2 run. The hash is the
lookup key, so no per-token salt is needed either.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import func, select

from timetracking.projects.v1 import projects_pb2 as pb
from tt_common.errors import FailedPrecondition, NotFound, Unauthenticated
from tt_common.pagination import page_size
from tt_common.validation import bounded_text, parse_uuid

from .models import ApiToken, User
from .repository import Repository

PREFIX = "tt_"
SECRET_BYTES = 32
DISPLAY_CHARS = 9  # "tt_" + 6 characters of the secret, enough to tell tokens apart in a list
MAX_TOKENS_PER_USER = 50
_INVALID = "invalid API token"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_token(secret: str) -> bool:
    return secret.startswith(PREFIX) and 20 <= len(secret) <= 100


class ApiTokens:
    """API token operations on one unit of work (the edge commits)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    async def create(self, req: pb.CreateApiTokenRequest) -> tuple[ApiToken, str]:
        user_id = parse_uuid(req.user_id, "user_id")
        user = await self.repo.get(User, user_id, "user", for_update=True)  # serialises the count
        if not user.active:
            raise FailedPrecondition("user_id: the user is deactivated")
        name = bounded_text(req.name, "name", max_length=100)
        if await self.repo.count_active_tokens(user_id) >= MAX_TOKENS_PER_USER:
            raise FailedPrecondition(
                f"at most {MAX_TOKENS_PER_USER} active API tokens per user; revoke one first",
                error_code="too_many_api_tokens",
            )
        secret = new_secret()
        token = ApiToken(
            token_id=uuid.uuid4(),
            user_id=user_id,
            name=name,
            prefix=secret[:DISPLAY_CHARS],
            token_hash=hash_secret(secret),
        )
        await self.repo.add(token)
        await self.repo.session.refresh(token)
        return token, secret

    async def list(self, req: pb.ListApiTokensRequest) -> tuple[list[ApiToken], str]:
        user_id = parse_uuid(req.user_id, "user_id")
        stmt = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        rows, token = await self.repo.page(
            stmt, ApiToken.created_at, ApiToken.token_id, page_size(req.page_size), req.page_token
        )
        return list(rows), token

    async def revoke(self, req: pb.RevokeApiTokenRequest) -> None:
        user_id = parse_uuid(req.user_id, "user_id")
        token_id = parse_uuid(req.token_id, "token_id")
        token = await self.repo.session.get(ApiToken, token_id, with_for_update=True)
        # Another user's token is "not found": its existence is none of the caller's business.
        if token is None or token.user_id != user_id or token.revoked_at is not None:
            raise NotFound("API token not found")
        token.revoked_at = func.now()
        await self.repo.flush()

    async def verify(self, secret: str) -> tuple[User, ApiToken]:
        """The token's owner; one error for unknown, revoked and deactivated alike."""
        if not looks_like_token(secret):
            raise Unauthenticated(_INVALID, error_code="invalid_api_token")
        found = await self.repo.token_with_owner(hash_secret(secret))
        if found is None:
            raise Unauthenticated(_INVALID, error_code="invalid_api_token")
        token, user = found
        if token.revoked_at is not None or not user.active:
            raise Unauthenticated(_INVALID, error_code="invalid_api_token")
        return user, token
