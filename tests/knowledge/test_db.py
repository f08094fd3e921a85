"""Telling a database outage from a failing statement; queueing SQLite's writers."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from knowledge import db as db_module
from knowledge.db import Database, DatabaseBusyError, is_busy, is_unreachable, sqlite_file
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


async def test_a_transaction_its_body_rolled_back_ends_quietly_and_keeps_the_version(
    db: Database,
) -> None:
    # An import with problems rolls its whole batch back and returns normally.
    before = await db.data_version()
    async with db.transaction() as session:
        await session.execute(sa.text("DELETE FROM outbox"))
        await session.rollback()
    assert await db.data_version() == before


async def test_another_engine_sees_the_version_a_write_committed(db: Database) -> None:
    other = Database(db.url)
    try:
        before = await other.data_version()
        async with db.transaction():
            pass
        assert await other.data_version() == before + 1
    finally:
        await other.dispose()


# One process of several writing one SQLite file: WRITERS concurrent writers, each
# committing WRITES rows, every transaction reading before it writes and holding the
# lock a little. SQLite's busy timeout is 0, so a writer that met another process's
# write lock would fail at once with "database is locked" instead of hiding in the
# busy loop: only the turns the processes take among themselves keep them apart.
WRITER_PROCESS = """
import asyncio, sys
from pathlib import Path
import sqlalchemy as sa
from knowledge import db as db_module
from knowledge.db import Database

db_module.SQLITE_BUSY_TIMEOUT_MS = 0
url, name, ready, processes, writers, writes = sys.argv[1:7]

async def main() -> None:
    db = Database(url)
    async with db.read() as session:  # connected before the start line
        await session.execute(sa.text("SELECT count(*) FROM notes"))
    (Path(ready) / name).touch()
    while len(list(Path(ready).iterdir())) < int(processes):
        await asyncio.sleep(0.005)

    async def write(w: int) -> None:
        for n in range(int(writes)):
            async with db.transaction() as session:
                await session.execute(sa.text("SELECT count(*) FROM notes"))
                await session.execute(
                    sa.text("INSERT INTO notes VALUES (:note)"), {"note": f"{name}-{w}-{n}"}
                )
                await asyncio.sleep(0.002)

    try:
        await asyncio.gather(*(write(w) for w in range(int(writers))))
    finally:
        await db.dispose()

asyncio.run(main())
"""


@pytest.mark.skipif(TEST_DATABASE_URL != "", reason="SQLite's single writer")
def test_sqlite_writers_of_several_processes_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    # given a database file and three processes about to write it at once
    path = tmp_path / "shared.db"
    keeper = sqlite3.connect(path)  # keeps the WAL open: no recovery races at connect
    keeper.execute("PRAGMA journal_mode=WAL")
    keeper.execute("CREATE TABLE notes (note TEXT)")
    # Every write transaction raises the data version, kept in the counters table.
    keeper.execute("CREATE TABLE counters (name VARCHAR(40) PRIMARY KEY, value BIGINT)")
    keeper.commit()
    ready = tmp_path / "ready"
    ready.mkdir()
    names, writers, writes = ["a", "b", "c"], 4, 15
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    try:
        # when they all write, each with several writers of its own
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WRITER_PROCESS,
                    f"sqlite+aiosqlite:///{path}",
                    name,
                    str(ready),
                    str(len(names)),
                    str(writers),
                    str(writes),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in names
        ]
        outcomes = [process.communicate(timeout=120) for process in processes]
        # then none failed, and every write is there
        for name, process, (_, stderr) in zip(names, processes, outcomes, strict=True):
            assert process.returncode == 0, f"writer process {name} failed:\n{stderr[-3000:]}"
        stored = sorted(note for (note,) in keeper.execute("SELECT note FROM notes"))
    finally:
        keeper.close()
    expected = sorted(
        f"{name}-{w}-{n}" for name in names for w in range(writers) for n in range(writes)
    )
    assert stored == expected


@contextmanager
def writers_lock_held(db: Database) -> Iterator[None]:
    """The host's writer lock of ``db``'s file, held as another process's writer holds it
    (a real ``flock`` on its own open file: it excludes other files within a process too)."""
    database = sqlite_file(db.url)
    assert database is not None
    fd = os.open(database.with_name(database.name + "-writers.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.mark.skipif(TEST_DATABASE_URL != "", reason="SQLite's single writer")
async def test_a_write_that_waits_too_long_for_another_process_is_busy_and_writes_nothing(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}", write_wait=0.2)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(Counter.__table__.create)
            await connection.execute(sa.text("CREATE TABLE notes (n INTEGER)"))

        with writers_lock_held(db), pytest.raises(DatabaseBusyError) as raised:
            async with db.transaction() as session:
                await session.execute(sa.text("INSERT INTO notes VALUES (1)"))
        async with db.transaction() as session:  # the lock is free again: a retry succeeds
            await session.execute(sa.text("INSERT INTO notes VALUES (2)"))

        assert is_busy(raised.value)
        async with db.read() as session:
            assert list(await session.scalars(sa.text("SELECT n FROM notes"))) == [2]
    finally:
        await db.dispose()


@pytest.mark.skipif(TEST_DATABASE_URL != "", reason="SQLite's single writer")
async def test_a_write_lock_held_past_the_busy_timeout_by_another_program_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Programs that do not take the host's writer lock (the sqlite3 shell, a backup)
    # meet SQLite's own busy timeout: its "database is locked" is the same clear error.
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "shell.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    shell = sqlite3.connect(path, isolation_level=None)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(Counter.__table__.create)
            await connection.execute(sa.text("CREATE TABLE notes (n INTEGER)"))
        shell.execute("BEGIN IMMEDIATE")

        with pytest.raises(DatabaseBusyError) as raised:
            async with db.transaction() as session:
                await session.execute(sa.text("INSERT INTO notes VALUES (1)"))
        shell.execute("ROLLBACK")

        assert isinstance(raised.value.__cause__, OperationalError)
        assert is_busy(raised.value.__cause__)
    finally:
        shell.close()
        await db.dispose()


def test_only_a_lock_timeout_counts_as_busy() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert is_busy(OperationalError("BEGIN IMMEDIATE", None, locked))
    assert is_busy(DatabaseBusyError("waited too long"))
    assert not is_busy(OperationalError("SELECT", None, sqlite3.OperationalError("no such table")))
    assert not is_busy(IntegrityError("INSERT", None, Exception("database is locked")))
