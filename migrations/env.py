"""Alembic environment: async engines, batch mode for SQLite, Knownfix's metadata.

``knowledge.migrate`` passes an open connection in ``config.attributes`` so that
tests and the CLI share one code path; the ``alembic`` command line falls back to
``KNOWNFIX_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from knowledge import migrate
from knowledge.config import Settings
from knowledge.db import create_engine
from knowledge.models import metadata

config = context.config


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    url = Settings.from_env().database_url
    engine = create_engine(url)
    try:
        # Foreign keys off on SQLite while tables are rebuilt (see knowledge.migrate).
        async with migrate.migration_connection(engine) as connection:
            await connection.run_sync(run_with)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")

connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_online())
