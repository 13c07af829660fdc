"""Types every resource shares: problems, pages, bounded text, decimals, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from tt_common.money import currency_codes

T = TypeVar("T")

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class FieldError(BaseModel):
    field: str
    reason: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details) with a stable machine-readable `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable error code, e.g. not_found, timer_already_running")
    errors: list[FieldError] | None = Field(default=None, description="the offending fields")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next page (null: the last page)."""

    data: list[T]
    next_cursor: str | None = None


class Input(BaseModel):
    """Request bodies: unknown fields are refused, so protected fields cannot be slipped in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _no_control_chars(value: str) -> str:
    if any(ord(c) < 32 and c not in "\n\t" for c in value) or "\x7f" in value:
        raise ValueError("must not contain control characters")
    return value


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1970 and 2100")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control_chars)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_control_chars)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50), AfterValidator(_no_control_chars)]
Tags = Annotated[list[Tag], Field(max_length=20)]
Timestamp_ = Annotated[AwareDatetime, AfterValidator(_in_range)]
Rate = Annotated[str, StringConstraints(pattern=r"^\d{1,7}(\.\d{1,2})?$")]
Hours = Annotated[str, StringConstraints(pattern=r"^\d{1,7}(\.\d{1,2})?$")]
Amount = Annotated[str, StringConstraints(pattern=r"^\d{1,13}(\.\d{1,2})?$")]
Percent = Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,2})?$")]
# The enum tells clients (and schemathesis) which codes exist; the services still check.
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(json_schema_extra={"enum": currency_codes()})
]
Date = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Limit = Annotated[int, Field(ge=1, le=200, description="page size (default 50)")]
Cursor = Annotated[str, StringConstraints(max_length=500, pattern=r"^[A-Za-z0-9_\-=]*$")]


def dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def dt_or_none(msg: object, field: str) -> datetime | None:
    return dt(getattr(msg, field)) if msg.HasField(field) else None  # type: ignore[attr-defined]


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def or_none(value: str) -> str | None:
    return value or None
