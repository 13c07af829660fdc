"""datetime to protobuf Timestamp, fast.

Timestamp.FromDatetime is pure Python and dominates when a response or an
outbox batch holds 100k entries; this is the same conversion (seconds floored,
nanos non-negative, naive means UTC) in exact integer arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_timestamp(target: Timestamp, value: datetime) -> None:
    # A timedelta is normalised to days, 0 <= seconds < 86400 and 0 <= microseconds < 10**6,
    # so days * 86400 + seconds is the floor of the whole seconds, without a division.
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    target.seconds = since.days * 86_400 + since.seconds
    target.nanos = since.microseconds * 1000


def timestamp(value: datetime) -> Timestamp:
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


# Instants as whole microseconds since the Unix epoch: PostgreSQL hands them over as
# int8 ((extract(epoch FROM t) * 1000000)::int8) several times cheaper than asyncpg
# decodes a timestamptz into a datetime, and they compare and convert with integer
# arithmetic. For bulk reads (a year's timesheet); a datetime stays the default.


def epoch_micros(value: datetime) -> int:
    """Microseconds since 1970-01-01 UTC (naive means UTC)."""
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def from_epoch_micros(micros: int) -> datetime:
    """The UTC datetime `micros` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def set_timestamp_micros(target: Timestamp, micros: int) -> None:
    """set_timestamp for an instant given as epoch microseconds."""
    seconds, rest = divmod(micros, 1_000_000)  # floored: nanos stay non-negative
    target.seconds = seconds
    target.nanos = rest * 1000
