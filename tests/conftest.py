"""Shared fixtures: one migrated database per test session, cleaned after each test.

SQLite by default; PostgreSQL when ``KNOWNFIX_TEST_DATABASE_URL`` is set. On
PostgreSQL each session creates its own database (and drops it at the end), so
parallel or repeated runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from api.app import create_app
from knowledge import migrate
from knowledge.clock import ManualClock
from knowledge.config import Environment, Settings
from knowledge.db import DATA_VERSION_COUNTER, Database, utcnow
from knowledge.models import metadata
from tests.support import Accounts, GraphQLClient

TEST_DATABASE_URL = os.environ.get("KNOWNFIX_TEST_DATABASE_URL", "").strip()


class DatabaseFactory:
    """Creates empty databases on the backend under test and drops them afterwards."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.created: list[str] = []

    @property
    def backend(self) -> str:
        return "postgresql" if TEST_DATABASE_URL else "sqlite"

    async def create(self) -> str:
        name = f"knownfix_test_{uuid.uuid4().hex[:12]}"
        if not TEST_DATABASE_URL:
            return f"sqlite+aiosqlite:///{self.tmp_dir / (name + '.db')}"
        admin = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()
        self.created.append(name)
        return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        if not self.created:
            return
        admin = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                for name in self.created:
                    await connection.execute(
                        sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    )
        finally:
            await admin.dispose()


@pytest.fixture(scope="session")
async def database_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    await factory.drop_all()


@pytest.fixture(scope="session")
async def database(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    """The session's database, built by running the migrations (never create_all)."""
    db = Database(await database_factory.create())
    await migrate.upgrade(db.engine)
    yield db
    await db.dispose()


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """The shared database, emptied after the test so every test starts clean."""
    yield database
    await empty(database)


async def empty(database: Database) -> None:
    """Delete every row (module-scoped fixtures that share the database call this too).

    The data version goes on rising rather than back to zero: an app that outlives
    the cleaning must not take the next test's data for what it cached before."""
    tables = [t.name for t in metadata.sorted_tables]
    version = await database.data_version()
    async with database.engine.begin() as connection:
        if database.is_sqlite:
            for name in reversed(tables):
                await connection.execute(sa.text(f'DELETE FROM "{name}"'))
        else:
            joined = ", ".join(f'"{name}"' for name in tables)
            await connection.execute(sa.text(f"TRUNCATE {joined} RESTART IDENTITY CASCADE"))
        await connection.execute(
            sa.text("INSERT INTO counters (name, value) VALUES (:name, :value)"),
            {"name": DATA_VERSION_COUNTER, "value": version + 1},
        )


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(database_url=db.url, index_dir=tmp_path / "index")


@pytest.fixture
def clock() -> ManualClock:
    """The app's clock: starts at the real time and moves only when a test says so."""
    return ManualClock(utcnow())


def _app(db: Database, settings: Settings, clock: ManualClock | None = None) -> Starlette:
    return create_app(settings, db=db, clock=clock)


@pytest.fixture
async def app(db: Database, settings: Settings, clock: ManualClock) -> AsyncIterator[Starlette]:
    """The real application, with its lifespan run (index opened, indexer following)."""
    application = _app(db, settings, clock)
    async with application.router.lifespan_context(application):
        yield application


@asynccontextmanager
async def http_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://knownfix.test") as http:
        yield http


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[GraphQLClient]:
    async with http_client(app) as http:
        yield GraphQLClient(http)


@pytest.fixture
async def production_client(db: Database, settings: Settings) -> AsyncIterator[GraphQLClient]:
    application = _app(db, settings.replace(env=Environment.PRODUCTION))
    async with application.router.lifespan_context(application), http_client(application) as http:
        yield GraphQLClient(http)


@pytest.fixture
def accounts(db: Database) -> Accounts:
    return Accounts(db)
