"""datetime to protobuf Timestamp, fast.

Timestamp.FromDatetime is pure Python and dominates when a response or an
outbox batch holds 100k entries; this is the same conversion (seconds floored,
nanos non-negative, naive means UTC) in exact integer arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def set_timestamp(target: Timestamp, value: datetime) -> None:
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    target.seconds = since // _SECOND
    target.nanos = since.microseconds * 1000


def timestamp(value: datetime) -> Timestamp:
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(seconds=since // _SECOND, nanos=since.microseconds * 1000)
