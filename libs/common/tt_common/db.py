"""Async SQLAlchemy 2 on psycopg 3: one engine per service, sessions per request.

Repositories take an `AsyncSession`; the edge (gRPC handler, Kafka handler)
opens it with `transaction()` and commits once. Service code never commits.

A hot path that must cost one round trip and little CPU (tracking's timers)
uses `DriverPool` instead: raw asyncpg connections, each statement prepared
once per connection and reused, no ORM. One statement is one transaction
there, so a unit of work is written as one statement (data-modifying CTEs).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from .settings import DatabaseSettings

# Stable constraint names make Alembic autogenerate and error mapping predictable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; each service defines its own subclass with its own metadata."""

    __abstract__ = True


def make_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 20, statement_timeout_ms: int = 15_000) -> AsyncEngine:
    """An engine that survives a PostgreSQL restart (pre-ping drops dead connections).

    Up to `pool_size` connections, all kept open once made: no overflow, because
    SQLAlchemy closes an overflow connection when it is returned, so a burst
    above the pool paid a PostgreSQL connect (a backend fork) per transaction.

    Sessions run in UTC whatever the server's TimeZone: psycopg then returns
    timestamptz values with `datetime.UTC` as tzinfo. With a named zone (a stock
    server says 'Etc/UTC') it attaches a ZoneInfo, and every comparison or
    subtraction against a UTC datetime calls its utcoffset(): a third of a
    year's timesheet went there. Instants are the same either way.
    """
    options = ["-c timezone=UTC"]
    if statement_timeout_ms:
        options.append(f"-c statement_timeout={statement_timeout_ms}")
    connect_args = {"options": " ".join(options)}
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends normally, rolls back otherwise."""
    async with sessions() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    """Readiness check: raises when PostgreSQL does not answer."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def engine_from_settings(settings: DatabaseSettings) -> AsyncEngine:
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )


class DriverPool:
    """Raw asyncpg connections for hot paths: one prepared statement per call, no ORM.

    asyncpg prepares each statement text once per connection and reuses it
    (its statement cache), and costs about half of psycopg's client CPU per
    statement (docs/decisions.md). Statements run in autocommit: one statement
    is one transaction, and nothing here changes session state (no SET, LISTEN,
    transactions or session advisory locks), so a connection needs no reset
    between uses.

    The checkout is this class's own, not asyncpg's Pool: its acquire and
    release (a timeout scope, a shielded task per release, reset and listener
    bookkeeping) cost about as much client CPU as the statement itself (130
    against 71 µs per one-row statement, measured on this machine), and
    nothing here needs them. Up to `size` connections, opened on first use (a
    service starts while PostgreSQL is still coming up); a caller finding
    none idle and the pool full waits for the next one released, first come
    first served. A connection goes back idle only after its statement ended
    with PostgreSQL's answer (a result or an error reply such as a constraint
    violation); one whose statement its caller cut short (a deadline, a
    cancelled call) after asyncpg's cancel request and one round trip proving
    it back in step; anything else (a broken socket, a protocol out of step)
    may leave it mid-statement, so it is terminated, and a closed one is never
    handed out again. Time limits: `statement_timeout` in the
    database, and the caller's gRPC deadline.
    """

    def __init__(self, url: str, *, size: int = 20, statement_timeout_ms: int = 15_000) -> None:
        # The SQLAlchemy URL names its driver ("postgresql+psycopg://"); asyncpg wants plain libpq form.
        self.dsn = "postgresql://" + url.split("://", 1)[1]
        self.size = size
        self.statement_timeout_ms = statement_timeout_ms
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # connections made and not terminated: idle, in use, or being opened
        self._waiting: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._settling: set[asyncio.Task[None]] = set()
        self._closed = False

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """Run one statement; its first row (or None)."""
        row: asyncpg.Record | None = await self._run(asyncpg.Connection.fetchrow, sql, args)
        return row

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement; all its rows (decoded in C: a report's thousands of rows cost
        a fraction of what SQLAlchemy's result processing does)."""
        rows: list[asyncpg.Record] = await self._run(asyncpg.Connection.fetch, sql, args)
        return rows

    async def _run(self, call: Any, sql: str, args: tuple[Any, ...]) -> Any:
        """`call(connection, sql, *args)` on a checked-out connection, released as it ended."""
        con = await self._acquire()
        try:
            result = await call(con, sql, *args)
        except BaseException as exc:
            self._release(con, exc)
            raise
        self._release(con)
        return result

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run one statement; the first column of its first row."""
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def _acquire(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the driver pool is closed")
            while self._idle:
                con = self._idle.pop()
                if not con.is_closed():
                    return con
                self._open -= 1  # it died while idle (PostgreSQL restarted): forget it
            if self._open < self.size:
                return await self._connect()
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                con = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection (or room for one) as we were cancelled: pass it on.
                    handed = waiter.result()
                    if handed is None:
                        self._hand_over(None)
                    else:
                        self._release(handed)
                raise
            if con is not None and not con.is_closed():
                return con
            if con is not None:
                self._open -= 1
            # None: a connection was terminated, so there is room to open one; look again.

    async def _connect(self) -> asyncpg.Connection:
        self._open += 1
        try:
            return await asyncpg.connect(
                self.dsn, server_settings={"statement_timeout": str(self.statement_timeout_ms)}
            )
        except BaseException:
            self._open -= 1
            self._hand_over(None)
            raise

    def _release(self, con: asyncpg.Connection, failure: BaseException | None = None) -> None:
        """Back to a waiter or idle after PostgreSQL answered (a result, or an error reply such
        as a constraint violation); a statement its caller cut short is settled first; anything
        else may have left the connection out of step, so it is terminated."""
        if self._closed or con.is_closed():
            self._terminate(con)
        elif failure is None or isinstance(failure, asyncpg.PostgresError):
            if not self._hand_over(con):
                self._idle.append(con)
        elif isinstance(failure, asyncio.CancelledError | TimeoutError):
            settling = asyncio.get_running_loop().create_task(self._settle(con))
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)
        else:
            self._terminate(con)

    async def _settle(self, con: asyncpg.Connection) -> None:
        """A statement cut short by its caller (a deadline, a cancelled call): asyncpg asks
        PostgreSQL to cancel it, and the connection serves again once a round trip shows it
        back in step; a connection that does not come back within 5 s is terminated."""
        try:
            async with asyncio.timeout(5):
                await con.fetchval("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure: the connection is not reused
            self._terminate(con)
        except asyncio.CancelledError:
            self._terminate(con)
            raise
        else:
            self._release(con)

    def _terminate(self, con: asyncpg.Connection) -> None:
        con.terminate()
        self._open -= 1
        self._hand_over(None)

    def _hand_over(self, con: asyncpg.Connection | None) -> bool:
        """Give `con` (or, with None, room to open one) to the longest waiting caller."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(con)
                return True
        return False

    async def close(self) -> None:
        self._closed = True
        for settling in list(self._settling):
            settling.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)
        idle, self._idle = self._idle, []
        for con in idle:
            self._open -= 1
            await con.close()
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)
        self._waiting.clear()


def driver_pool_from_settings(settings: DatabaseSettings) -> DriverPool:
    return DriverPool(
        settings.database_url,
        size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )


def violated_constraint(exc: BaseException) -> tuple[str, str] | None:
    """(constraint name, detail) of an integrity violation from either driver; None for other errors."""
    if isinstance(exc, IntegrityError):
        diag = getattr(exc.orig, "diag", None)
        name = getattr(diag, "constraint_name", None)
        return (name, getattr(diag, "message_detail", None) or "") if name else None
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        name = getattr(exc, "constraint_name", None)
        return (name, getattr(exc, "detail", None) or "") if name else None
    return None


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database is down or overloaded, not that the request was wrong."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.CannotConnectNowError
        | asyncpg.QueryCanceledError
        | asyncpg.TooManyConnectionsError
        | asyncpg.InternalClientError  # a connection broken under a statement (see DriverPool)
        | ConnectionError
        | TimeoutError,
    )
