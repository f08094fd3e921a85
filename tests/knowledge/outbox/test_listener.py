"""Other processes' outbox writes wake this one through PostgreSQL LISTEN/NOTIFY.

Real notifications from the trigger that migration 0005 adds, on the test's own
database; a lost connection is provoked with ``pg_terminate_backend`` on the
listener's own backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from knowledge.db import Database
from knowledge.outbox.listener import APPLICATION_NAME, OutboxListener, asyncpg_dsn
from tests.conftest import TEST_DATABASE_URL
from tests.knowledge.search.support import publish

postgres_only = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="LISTEN/NOTIFY is PostgreSQL's; SQLite serves one host"
)

DEADLINE = 20.0

LEMUR = (
    "Lemur metrics exporter leaks file handles",
    "## Symptoms\nThe exporter dies with too many open files after a week.\n"
    "## Resolution\nUpgrade the exporter and cap its scrape concurrency.",
)
NEWT = ("Newt CDN serves stale assets", "## Resolution\nPurge by surrogate key after deploys.")


class Woken:
    """A follower's wake-up callback that a test can await."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.event.set()

    async def next(self) -> None:
        await asyncio.wait_for(self.event.wait(), DEADLINE)
        self.event.clear()


async def listener_backends(db: Database) -> list[int]:
    async with db.read() as session:
        return list(
            await session.scalars(
                sa.text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            )
        )


async def until_one_backend(db: Database, other_than: int | None = None) -> int:
    """The listener's backend, once there is exactly one (and not ``other_than``)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            backends = await listener_backends(db)
            if len(backends) == 1 and backends[0] != other_than:
                return backends[0]
            await asyncio.sleep(0.05)


@pytest.fixture
async def listening(db: Database) -> AsyncIterator[tuple[OutboxListener, Woken]]:
    woken = Woken()
    listener = OutboxListener(db.url, [woken], check_interval=1.0, max_backoff=1.0)
    await listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), DEADLINE)
        await woken.next()  # on connecting it wakes the followers once, for what it missed
        yield listener, woken
    finally:
        await listener.stop()


def test_the_dsn_keeps_everything_but_the_driver() -> None:
    dsn = asyncpg_dsn("postgresql+asyncpg://kf:s3cret@db.internal:6543/knownfix?ssl=require")
    assert dsn == "postgresql://kf:s3cret@db.internal:6543/knownfix?ssl=require"


def test_the_dsn_drops_what_only_sqlalchemys_dialect_understands() -> None:
    """asyncpg would send these to the server as settings, and it refuses them."""
    dsn = asyncpg_dsn(
        "postgresql+asyncpg://kf@db.internal/knownfix?prepared_statement_cache_size=0"
        "&ssl=require&prepared_statement_name_func=tests.names"
    )
    assert dsn == "postgresql://kf@db.internal/knownfix?ssl=require"


@postgres_only
async def test_the_listener_hears_through_a_url_made_for_pgbouncer(db: Database) -> None:
    separator = "&" if "?" in db.url else "?"
    woken = Woken()
    listener = OutboxListener(
        f"{db.url}{separator}prepared_statement_cache_size=0", [woken], max_backoff=0.1
    )
    await listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), DEADLINE)
        await woken.next()
        await publish(db, LEMUR)
        await woken.next()
    finally:
        await listener.stop()


@postgres_only
async def test_a_committed_outbox_row_wakes_the_listener(
    db: Database, listening: tuple[OutboxListener, Woken]
) -> None:
    _, woken = listening
    assert not woken.event.is_set()
    await publish(db, LEMUR)  # another Database object could be another host: same SQL
    await woken.next()


@postgres_only
async def test_a_killed_connection_is_replaced_and_hears_again(
    db: Database, listening: tuple[OutboxListener, Woken]
) -> None:
    listener, woken = listening
    first = await until_one_backend(db)
    async with db.transaction() as session:
        await session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

    # It reconnects on a new backend and wakes the followers for what it may have missed.
    second = await until_one_backend(db, other_than=first)
    await asyncio.wait_for(listener.listening.wait(), DEADLINE)
    await woken.next()
    assert second != first

    await publish(db, NEWT)
    await woken.next()


@postgres_only
async def test_stopping_closes_the_connection(db: Database) -> None:
    listener = OutboxListener(db.url, [])
    await listener.start()
    await asyncio.wait_for(listener.listening.wait(), DEADLINE)
    assert len(await listener_backends(db)) == 1
    await listener.stop()
    assert not listener.listening.is_set()
    async with asyncio.timeout(DEADLINE):
        while await listener_backends(db):  # noqa: ASYNC110 - the server's state, no event
            await asyncio.sleep(0.05)


@postgres_only
async def test_an_unreachable_database_is_retried_without_failing_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = OutboxListener("postgresql+asyncpg://knownfix@127.0.0.1:1/none", [], max_backoff=0.1)
    with caplog.at_level(logging.WARNING, logger="knownfix.outbox"):
        await listener.start()
        try:
            async with asyncio.timeout(DEADLINE):
                while len(retries(caplog)) < 3:  # noqa: ASYNC110 - log records, no event
                    await asyncio.sleep(0.05)
            assert not listener.listening.is_set()
        finally:
            await listener.stop()
    assert "polling meanwhile" in retries(caplog)[0]


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not listening" in r.getMessage()]
