"""tt_common.timestamps against protobuf's own (slow, pure Python) conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from tt_common.timestamps import set_timestamp, timestamp

ZONES = [None, UTC, timezone(timedelta(hours=5, minutes=45)), timezone(-timedelta(hours=8))]
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(ZONES)
)


@given(instants)
def test_the_fast_conversion_equals_from_datetime(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value)
    assert timestamp(value) == expected
    target = Timestamp()
    set_timestamp(target, value)
    assert target == expected
    assert 0 <= target.nanos < 1_000_000_000
