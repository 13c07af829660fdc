"""Alembic's env.py for every service, so each service's env.py is three lines.

The database URL comes from `-x url=...` or the service's `<PREFIX>DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _url(env_var: str) -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    url = x_args.get("url") or os.environ.get(env_var)
    if not url:
        raise SystemExit(f"alembic: set {env_var} or pass -x url=postgresql+psycopg://...")
    return url


def _configure(connection: Connection | None, metadata: MetaData, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
        include_schemas=False,
    )


def run_migrations(metadata: MetaData, env_var: str) -> None:
    """Run offline (SQL script) or online (async engine) migrations."""
    url = _url(env_var)
    if context.is_offline_mode():
        _configure(None, metadata, url)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_online() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(_run_sync, metadata)
        await engine.dispose()

    asyncio.run(run_online())


def _run_sync(connection: Connection, metadata: MetaData) -> None:
    _configure(connection, metadata)
    with context.begin_transaction():
        context.run_migrations()


def add_outbox_encoded_bodies() -> None:
    """Migration step for every service's outbox: rows may carry a JSON body for a relay encoder.

    `payload` becomes nullable; a row has either a payload or an encoder and a body.
    """
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects import postgresql

    op.add_column("outbox", sa.Column("encoder", sa.Text(), nullable=True))
    op.add_column("outbox", sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.alter_column("outbox", "payload", existing_type=postgresql.BYTEA(), nullable=True)
    op.create_check_constraint(
        op.f("ck_outbox_payload_or_body"),
        "outbox",
        "payload IS NOT NULL OR (encoder IS NOT NULL AND body IS NOT NULL)",
    )


def drop_outbox_encoded_bodies() -> None:
    """The downgrade of `add_outbox_encoded_bodies`; refuses while unpublished bodies would be lost."""
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects import postgresql

    pending = op.get_bind().execute(
        sa.text("SELECT count(*) FROM outbox WHERE payload IS NULL AND published_at IS NULL")
    )
    if pending.scalar_one():
        raise RuntimeError(
            "outbox holds unpublished events with JSON bodies: let the relay publish them first"
        )
    op.execute("DELETE FROM outbox WHERE payload IS NULL")
    op.drop_constraint(op.f("ck_outbox_payload_or_body"), "outbox", type_="check")
    op.alter_column("outbox", "payload", existing_type=postgresql.BYTEA(), nullable=False)
    op.drop_column("outbox", "body")
    op.drop_column("outbox", "encoder")
