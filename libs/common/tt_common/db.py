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
    statement (docs/decisions.md). Connections are opened on first use, so a
    service starts while PostgreSQL is still coming up; a connection that
    broke is replaced by the pool. Statements run in autocommit: one statement
    is one transaction, and nothing here changes session state (no SET, LISTEN
    or session advisory locks), so a connection goes back to the pool without
    asyncpg's reset query, which would double the round trips. Time limits:
    `statement_timeout` in the database, and the caller's gRPC deadline.
    """

    def __init__(self, url: str, *, size: int = 20, statement_timeout_ms: int = 15_000) -> None:
        # The SQLAlchemy URL names its driver ("postgresql+psycopg://"); asyncpg wants plain libpq form.
        self.dsn = "postgresql://" + url.split("://", 1)[1]
        self.size = size
        self.statement_timeout_ms = statement_timeout_ms
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=self.size,
                    server_settings={"statement_timeout": str(self.statement_timeout_ms)},
                    reset=_nothing_to_reset,
                )
            return self._pool

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """Run one statement; its first row (or None)."""
        async with self._connection() as con:
            return await con.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement; all its rows (decoded in C: a report's thousands of rows cost
        a fraction of what SQLAlchemy's result processing does)."""
        async with self._connection() as con:
            return await con.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run one statement; the first column of its first row."""
        async with self._connection() as con:
            return await con.fetchval(sql, *args)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open()
        async with pool.acquire() as con:
            try:
                yield con
            except asyncpg.InternalClientError:
                # The connection's protocol lost track of its state (seen while PostgreSQL was
                # killed under load: "another operation is in progress"): never hand it out again.
                con.terminate()
                raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """A released connection needs no reset query (see DriverPool); an open transaction is
    still rolled back by asyncpg itself before this is called."""


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
