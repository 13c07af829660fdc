"""Tracking's invariants hold in the database itself (created by its Alembic migrations)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(session_databases: dict[str, str]) -> Iterator[psycopg.Connection]:
    url = session_databases["tracking"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def insert(conn: psycopg.Connection, user: uuid.UUID, start: datetime, end: datetime | None) -> uuid.UUID:
    entry_id = uuid.uuid4()
    conn.execute(
        """INSERT INTO time_entries (entry_id, user_id, project_id, start_time, end_time,
                                     is_billable, hourly_rate, currency)
           VALUES (%s, %s, %s, %s, %s, true, 100.00, 'EUR')""",
        (entry_id, user, uuid.uuid4(), start, end),
    )
    return entry_id


def test_overlapping_entries_are_rejected_with_23P01(conn: psycopg.Connection) -> None:
    user = uuid.uuid4()
    insert(conn, user, T0, T0 + timedelta(hours=2))
    with pytest.raises(errors.ExclusionViolation) as exc:
        insert(conn, user, T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert exc.value.sqlstate == "23P01"
    assert exc.value.diag.constraint_name == "ex_time_entries_no_overlap"


def test_back_to_back_entries_and_other_users_are_fine(conn: psycopg.Connection) -> None:
    user = uuid.uuid4()
    insert(conn, user, T0, T0 + timedelta(hours=1))
    insert(conn, user, T0 + timedelta(hours=1), T0 + timedelta(hours=2))  # [) bounds touch, no overlap
    insert(conn, uuid.uuid4(), T0, T0 + timedelta(hours=2))  # another user, same time


def test_a_running_timer_blocks_later_overlapping_entries(conn: psycopg.Connection) -> None:
    user = uuid.uuid4()
    insert(conn, user, T0, None)  # running: the range extends to infinity
    with pytest.raises(errors.ExclusionViolation):
        insert(conn, user, T0 + timedelta(days=3), T0 + timedelta(days=3, hours=1))
    insert(conn, user, T0 - timedelta(hours=2), T0)  # before the timer started is fine


def test_at_most_one_running_timer_per_user(conn: psycopg.Connection) -> None:
    user = uuid.uuid4()
    insert(conn, user, T0, None)
    # Two running timers always overlap too, so either constraint may fire first; both must exist.
    with pytest.raises((errors.UniqueViolation, errors.ExclusionViolation)):
        insert(conn, user, T0 - timedelta(days=5), None)
    indexdef = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_time_entries_one_running_timer'"
    ).fetchone()
    assert indexdef is not None
    assert "UNIQUE" in indexdef[0] and "(end_time IS NULL)" in indexdef[0]
    assert conn.execute("SELECT count(*) FROM time_entries WHERE user_id = %s", (user,)).fetchone() == (1,)


def test_end_must_follow_start_and_span_at_most_24h(conn: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with pytest.raises(errors.CheckViolation):
        insert(conn, user, T0, T0)
    with pytest.raises(errors.CheckViolation):
        insert(conn, user, T0, T0 + timedelta(hours=24, seconds=1))
    insert(conn, user, T0, T0 + timedelta(hours=24))


def test_putting_entries_on_an_invoice_is_a_heap_only_update(conn: psycopg.Connection) -> None:
    """No index covers invoice_id and pages keep room (fillfactor 50), so a claim of a full page
    of entries adds no index entries and runs no exclusion check (migration 0004)."""
    user, project = uuid.uuid4(), uuid.uuid4()
    for i in range(60):  # more than a page of rows
        conn.execute(
            """INSERT INTO time_entries (entry_id, user_id, project_id, start_time, end_time,
                                         is_billable, hourly_rate, currency)
               VALUES (%s, %s, %s, %s, %s, true, 100.00, 'EUR')""",
            (uuid.uuid4(), user, project, T0 + timedelta(hours=i), T0 + timedelta(hours=i, minutes=30)),
        )
    with conn.transaction():
        conn.execute(
            "UPDATE time_entries SET invoice_id = %s, version = version + 1, updated_at = now()"
            " WHERE project_id = %s",
            (uuid.uuid4(), project),
        )
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'time_entries'"
        ).fetchone()
    assert row is not None
    updated, heap_only = row
    # With an index on invoice_id none would be; a page shared with other tests' rows (their
    # dead versions not yet pruned) may push a few new versions to another page.
    assert updated == 60 and heap_only >= 54
