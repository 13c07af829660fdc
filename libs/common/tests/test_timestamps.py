"""tt_common.timestamps against protobuf's own (slow, pure Python) conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from tt_common.timestamps import (
    epoch_micros,
    from_epoch_micros,
    set_timestamp,
    set_timestamp_micros,
    timestamp,
)

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


@given(instants)
def test_epoch_microseconds_round_trip_and_convert_like_from_datetime(value: datetime) -> None:
    micros = epoch_micros(value)
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    assert from_epoch_micros(micros) == aware
    assert from_epoch_micros(micros).tzinfo is UTC
    expected = Timestamp()
    expected.FromDatetime(value)
    target = Timestamp()
    set_timestamp_micros(target, micros)
    assert target == expected
