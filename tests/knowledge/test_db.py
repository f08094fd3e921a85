"""Telling a database outage from a failing statement; queueing SQLite's writers."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from knowledge import db as db_module
from knowledge.db import Database, is_unreachable
from knowledge.numbering import Counter
from tests.conftest import TEST_DATABASE_URL


def caused_by(cause: BaseException) -> Exception:
    try:
        try:
            raise cause
        except BaseException as error:
            raise RuntimeError("while serving a request") from error
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError(),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 99] ..."),
        DBAPIError("SELECT 1", None, Exception("closed"), connection_invalidated=True),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        caused_by(ConnectionRefusedError(errno.ECONNREFUSED, "refused")),
    ],
    ids=repr,
)
def test_an_unreachable_server_is_recognised(error: BaseException) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad input"),
        IntegrityError("INSERT", None, Exception("duplicate key")),
        OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")),
        OperationalError("SELECT", None, sqlite3.OperationalError("no such table: incident")),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),  # e.g. an index file
        PermissionError(errno.EACCES, "Permission denied"),
        caused_by(ValueError("bad input")),
    ],
    ids=repr,
)
def test_a_failing_statement_or_a_local_file_error_is_not_an_outage(error: BaseException) -> None:
    assert not is_unreachable(error)


@pytest.mark.skipif(TEST_DATABASE_URL != "", reason="SQLite's single writer")
async def test_sqlite_writers_of_one_process_queue_instead_of_timing_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no busy timeout at all, concurrent writers would fail at once with "database
    # is locked"; queued in the process, every one of them commits, in turn.
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 0)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}")
    try:
        async with db.engine.begin() as connection:
            # Every write transaction raises the data version, kept in the counters table.
            await connection.run_sync(Counter.__table__.create)
            await connection.execute(sa.text("CREATE TABLE notes (n INTEGER)"))

        async def write(n: int) -> None:
            async with db.transaction() as session:
                await session.execute(sa.text("INSERT INTO notes VALUES (:n)"), {"n": n})
                # Give the other writers a turn to try while this one holds the lock.
                await asyncio.sleep(0)
                await session.execute(sa.text("SELECT count(*) FROM notes"))

        await asyncio.gather(*(write(n) for n in range(20)))
        async with db.read() as session:
            written = list(await session.scalars(sa.text("SELECT n FROM notes ORDER BY n")))
        assert written == list(range(20))
    finally:
        await db.dispose()


async def test_every_committed_write_transaction_raises_the_data_version(db: Database) -> None:
    before = await db.data_version()
    async with db.transaction():
        pass  # even one that changed nothing: the version is a promise, not a diff
    assert await db.data_version() == before + 1

    async def write_then_fail() -> None:
        async with db.transaction() as session:
            await session.execute(sa.text("DELETE FROM outbox"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    assert await db.data_version() == before + 1


async def test_another_engine_sees_the_version_a_write_committed(db: Database) -> None:
    other = Database(db.url)
    try:
        before = await other.data_version()
        async with db.transaction():
            pass
        assert await other.data_version() == before + 1
    finally:
        await other.dispose()
