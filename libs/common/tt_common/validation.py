"""Small validators shared by services; each raises InvalidArgument naming the field."""

from __future__ import annotations

import uuid
from functools import cache
from zoneinfo import available_timezones

from .errors import InvalidArgument


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "must be a UUID") from None


def parse_optional_uuid(value: str, field: str) -> uuid.UUID | None:
    return parse_uuid(value, field) if value else None


def bounded_text(value: str, field: str, *, max_length: int = 200, required: bool = True) -> str:
    """Trimmed text of at most `max_length` characters; non-empty when `required`."""
    text = (value or "").strip()
    if required and not text:
        raise InvalidArgument.field(field, "must not be empty")
    if len(text) > max_length:
        raise InvalidArgument.field(field, f"at most {max_length} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InvalidArgument.field(field, "must not contain control characters")
    return text


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_timezone(value: str, field: str = "timezone") -> str:
    """An IANA time zone name such as Europe/Berlin."""
    name = (value or "").strip()
    if name not in _zones():
        raise InvalidArgument.field(field, f"{value!r} is not an IANA time zone name")
    return name
