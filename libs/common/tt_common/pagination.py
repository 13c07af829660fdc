"""Opaque cursor pagination shared by every List call.

A page token encodes the sort key of the last row returned; the next page is
"rows after that key". Tokens are base64url JSON, not secrets: they only steer
a query the caller is already allowed to run.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_SERIAL = 2**63 - 1  # PostgreSQL's bigint


def page_size(requested: int, field: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument.field(field, "must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_token(*key: Any) -> str:
    raw = json.dumps([str(k) for k in key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, parts: int, field: str = "page_token") -> list[str] | None:
    """The sort key a token carries, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field(field, "not a token this API issued") from None
    if not isinstance(key, list) or len(key) != parts or not all(isinstance(k, str) for k in key):
        raise InvalidArgument.field(field, "not a token this API issued")
    return key


def decode_time_id_token(token: str, field: str = "page_token") -> tuple[datetime, uuid.UUID] | None:
    """A (timestamp, id) keyset token, or None for the first page.

    A tampered token is refused as InvalidArgument, never handed to the database: a
    naive or out-of-range timestamp would otherwise compare wrongly or fail there.
    """
    key = decode_token(token, 2, field)
    if key is None:
        return None
    try:
        at = datetime.fromisoformat(key[0])
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), uuid.UUID(key[1])
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        raise InvalidArgument.field(field, "not a token this API issued") from None


def decode_serial_token(token: str, field: str = "page_token") -> int | None:
    """A token carrying one bigint serial (an audit id), or None for the first page."""
    key = decode_token(token, 1, field)
    if key is None:
        return None
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (key[0].isascii() and key[0].isdigit()) or int(key[0]) > MAX_SERIAL:
        raise InvalidArgument.field(field, "not a token this API issued")
    return int(key[0])


async def keyset_page(
    session: Any, stmt: Any, created_col: Any, id_col: Any, size: int, token: str
) -> tuple[list[Any], str]:
    """One page of `stmt` ordered by (created_col, id_col), after the token's key.

    Keyset pagination: stable under inserts, and as fast on page 1,000 as on page 1.
    """
    from sqlalchemy import tuple_

    after = decode_time_id_token(token)
    if after is not None:
        stmt = stmt.where(tuple_(created_col, id_col) > tuple_(*after))
    rows = list((await session.execute(stmt.order_by(created_col, id_col).limit(size + 1))).scalars())
    if len(rows) <= size:
        return rows, ""
    last = rows[size - 1]
    return rows[:size], encode_token(getattr(last, created_col.key).isoformat(), getattr(last, id_col.key))
