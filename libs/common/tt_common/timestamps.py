"""datetime to protobuf Timestamp, fast.

Timestamp.FromDatetime is pure Python and dominates when a response or an
outbox batch holds 100k entries; this is the same conversion (seconds floored,
nanos non-negative, naive means UTC) in exact integer arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
