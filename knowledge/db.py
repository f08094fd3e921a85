"""Declarative base, reusable column types, engines and transactions.

One ``Database`` object per process owns the async engine. Reads and writes use
different transaction starts on SQLite: a write transaction begins with
``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of
failing with "database is locked" when a deferred read lock is upgraded
(DESIGN.md, "Known traps"). Before that, a writer waits its turn in its process
(an asyncio lock) and then among the host's processes (``knowledge.sqlite_writers``);
a write that waits too long fails with ``DatabaseBusyError``, a retryable error.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import errno
import socket
import sqlite3
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import ConnectionPoolEntry

# Re-exported: callers need not know where the writers' queue lives.
from knowledge.sqlite_writers import DatabaseBusyError as DatabaseBusyError
from knowledge.sqlite_writers import HostWriteLock

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 5000
# How long a write waits for the other processes' writers on this host before it gives
# up with DatabaseBusyError (``KNOWNFIX_SQLITE_WRITE_WAIT_MS``). They take turns, so this
# is their queue's length in time.
SQLITE_WRITE_WAIT_MS = 30_000
SQLITE_BUSY = 5  # sqlite3's primary result code; extended codes keep it in the low byte
# What a socket reports when the database server is down or cannot be reached.
UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite keeps no offset, so values come back naive; this restores UTC on the
    way out and refuses naive values on the way in, where they would be ambiguous.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC time is required")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - aiosqlite returns str for some queries
            value = dt.datetime.fromisoformat(value)
        moment: dt.datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)


intpk = Annotated[int, mapped_column(sa.Integer, primary_key=True)]
bigintpk = Annotated[
    int, mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
]
str40 = Annotated[str, mapped_column(sa.String(40))]
str80 = Annotated[str, mapped_column(sa.String(80))]
str200 = Annotated[str, mapped_column(sa.String(200))]
str500 = Annotated[str, mapped_column(sa.String(500))]
text = Annotated[str, mapped_column(sa.Text)]
created_at = Annotated[
    dt.datetime, mapped_column(UTCDateTime(), default=utcnow, server_default=sa.func.now())
]
updated_at = Annotated[
    dt.datetime,
    mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=sa.func.now()),
]
json_list = Annotated[list[Any], mapped_column(sa.JSON, default=list)]
json_dict = Annotated[dict[str, Any], mapped_column(sa.JSON, default=dict)]


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    # Every datetime column is an aware UTC timestamp, including Optional ones.
    type_annotation_map = {dt.datetime: UTCDateTime()}


def grouped(rows: Iterable[Any]) -> dict[int, list[Any]]:
    """``(key, value)`` rows as lists per key (for DataLoader batch functions)."""
    result: dict[int, list[Any]] = defaultdict(list)
    for key, value in rows:
        result[key].append(value)
    return result


def str_enum(enum_cls: type[Any], name: str) -> sa.Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint holding the values."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine with the SQLite settings that make it a safe embedded store."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_timeout", 10)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 10)
    connect_args.setdefault("command_timeout", 30)
    return create_async_engine(url, connect_args=connect_args, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_unreachable(error: BaseException) -> bool:
    """Whether an error means the database server is down or out of reach, rather
    than that a statement was wrong: the caller can say "try again later".

    Nothing has to be reset afterwards: the pool pings a connection before handing it
    out and replaces dead ones, so requests succeed again once the server is back.
    asyncpg lets socket errors through unwrapped (a refused connection is a bare
    ``ConnectionRefusedError``) and reports a server shutting down with its own
    exceptions, wrapped by SQLAlchemy, so the whole chain of causes is examined.
    """
    import asyncpg  # type: ignore[import-untyped]

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DatabaseBusyError):
            return False  # the database answered: another writer holds its lock
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if isinstance(cause, OSError) and (
            cause.errno in UNREACHABLE_ERRNOS or str(cause).startswith("Multiple exceptions")
        ):
            return True  # asyncio's create_connection when every address of a host failed
        if isinstance(
            cause,
            asyncpg.PostgresConnectionError
            | asyncpg.CannotConnectNowError
            | asyncpg.AdminShutdownError
            | asyncpg.CrashShutdownError
            | asyncpg.ConnectionDoesNotExistError,
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def is_busy(error: BaseException) -> bool:
    """Whether an error means SQLite's write lock stayed taken too long: nothing was
    written, and the caller can say "busy, try again" rather than report a bug."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DatabaseBusyError):
            return True
        if isinstance(cause, DBAPIError) and isinstance(cause.orig, BaseException):
            cause = cause.orig  # the driver's error, which SQLAlchemy wrapped
        if isinstance(cause, sqlite3.OperationalError):
            code: int | None = getattr(cause, "sqlite_errorcode", None)
            if code is not None:
                return code & 0xFF == SQLITE_BUSY
            return str(cause).startswith("database is locked")
        cause = cause.__cause__ or cause.__context__
    return False


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


async def flush_or_conflict(session: AsyncSession, *, what: str, field: str | None = None) -> None:
    """Flush, turning a lost race into a ``ConflictError`` instead of a 500.

    A uniqueness violation means someone created the same thing first; a stale
    version means someone updated the row between our read and our write.
    """
    from knowledge.errors import ConflictError

    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"{what} already exists", field=field) from exc
    except StaleDataError as exc:
        raise ConflictError(
            f"{what} was changed by someone else; reload and try again", field="expectedVersion"
        ) from exc


# A row of knowledge.numbering's counters table: no write transaction goes without it.
DATA_VERSION_COUNTER = "data_version"


async def _bump_data_version(session: AsyncSession) -> None:
    from knowledge.numbering import next_number

    await next_number(session, DATA_VERSION_COUNTER)


class DataVersionReader:
    """Reads the data version on a connection of its own, sharing reads between callers.

    A caller may take the value of a read that *started* after the caller arrived (it
    sees every write committed before then), never of one that started earlier: under
    load, the requests waiting for one read share the next, so there are at most about
    two reads per read's duration however many requests arrive.

    SQLite: a plain ``sqlite3`` connection, read on the event loop: a primary-key
    lookup in WAL mode takes microseconds and readers never wait for writers, which is
    less than the hop to a driver thread would cost. PostgreSQL: one asyncpg
    connection per event loop, reopened after an error.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._started = 0  # reads started so far
        self._last_read = 0  # the number of the last read completed...
        self._last_value = 0  # ...and what it read
        self._sqlite: Any = None
        # asyncio locks and asyncpg connections belong to one event loop each.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._locks = weakref.WeakKeyDictionary()
        self._pg: dict[asyncio.AbstractEventLoop, Any] = {}

    async def read(self) -> int:
        arrived_after = self._started
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._last_read > arrived_after:
                return self._last_value
            self._started += 1
            number = self._started
            value = await self._fetch()
            if number > self._last_read:
                self._last_read, self._last_value = number, value
            return value

    async def _fetch(self) -> int:
        if self.url.startswith("sqlite"):
            return self._fetch_sqlite()
        return await self._fetch_postgresql()

    def _fetch_sqlite(self) -> int:
        import sqlite3

        if self._sqlite is None:
            path = sa.engine.make_url(self.url).database or ""
            # mode=rw: never create a database file that is not there.
            self._sqlite = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None, check_same_thread=False,
            )  # fmt: skip
        try:
            row = self._sqlite.execute(
                "SELECT value FROM counters WHERE name = ?", (DATA_VERSION_COUNTER,)
            ).fetchone()
        except Exception:
            self._sqlite.close()
            self._sqlite = None
            raise
        return int(row[0]) if row else 0

    async def _fetch_postgresql(self) -> int:
        import asyncpg

        from knowledge.outbox.listener import asyncpg_dsn

        loop = asyncio.get_running_loop()
        for stale in [other for other in self._pg if other.is_closed()]:
            with contextlib.suppress(Exception):
                self._pg.pop(stale).terminate()
        connection = self._pg.get(loop)
        if connection is not None and connection.is_closed():  # lost while idle
            del self._pg[loop]
            connection = None
        if connection is None:
            # Behind PgBouncer, URLs say prepared_statement_cache_size=0: no prepared
            # statements kept here either.
            keep = sa.engine.make_url(self.url).query.get("prepared_statement_cache_size")
            connection = self._pg[loop] = await asyncpg.connect(
                asyncpg_dsn(self.url), timeout=10,
                statement_cache_size=100 if keep in (None, "") else int(str(keep)),
                server_settings={"application_name": "knownfix-data-version"},
            )  # fmt: skip
        try:
            value = await connection.fetchval(
                "SELECT value FROM counters WHERE name = $1", DATA_VERSION_COUNTER, timeout=10
            )
        except BaseException as error:
            self._pg.pop(loop, None)
            lost = connection.is_closed()
            connection.terminate()
            if lost and isinstance(error, Exception) and not is_unreachable(error):
                # e.g. InterfaceError "connection is closed": the server went away.
                raise ConnectionError("the data version's connection was lost") from error
            raise
        return int(value or 0)

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        loop = asyncio.get_running_loop()
        for other, connection in list(self._pg.items()):
            del self._pg[other]
            if other is not loop:
                with contextlib.suppress(Exception):
                    connection.terminate()
                continue
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()


_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("knownfix_writing", default=False)


class Database:
    """The process's engine and its two kinds of transaction."""

    def __init__(
        self, url: str, *, write_wait: float = SQLITE_WRITE_WAIT_MS / 1000, **engine_kwargs: Any
    ) -> None:
        self.url = url
        self.write_wait = write_wait  # seconds; SQLite only
        self.engine = create_engine(url, **engine_kwargs)
        self.is_sqlite = url.startswith("sqlite")
        write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._read = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write = async_sessionmaker(write_engine, expire_on_commit=False, autoflush=False)
        # Called after every committed write transaction (e.g. to wake the indexer).
        self.on_commit: list[Callable[[], None]] = []
        # SQLite has one writer at a time. This process's write transactions queue here,
        # in order, rather than in BEGIN IMMEDIATE's busy loop, whose timeout fails them
        # once a busy process has more than a few seconds of writes waiting. One lock
        # per event loop: a lock belongs to the loop that first waits on it.
        self._write_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._write_gates = weakref.WeakKeyDictionary()
        self._version_reader = DataVersionReader(url)
        # ... and then among the host's processes (see knowledge/sqlite_writers.py).
        database_file = sqlite_file(url) if self.is_sqlite else None
        self._host_writers = (
            None
            if database_file is None
            else HostWriteLock(database_file.with_name(database_file.name + "-writers.lock"))
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    def read_session(self) -> AsyncSession:
        """A read session that the caller closes (to share one among several reads)."""
        return self._read()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits on success, rolls back on any exception.

        Its last statement moves the data version on (see ``data_version``), so the
        change and the new version become visible together, to every process.
        On SQLite, ``DatabaseBusyError`` when the write lock could not be had in time
        (nothing written; the same transaction may be tried again).
        """
        try:
            async with self._write_turn(), self._write() as session, session.begin():
                yield session
                # A body that rolled back on purpose (an import with problems) wrote
                # nothing, and its transaction is closed: there is nothing to announce.
                if session.in_transaction():
                    await session.flush()  # the counter's row lock last: one statement
                    await _bump_data_version(session)
        except DBAPIError as error:
            if self.is_sqlite and is_busy(error):
                raise DatabaseBusyError(
                    "the database stayed locked by another writer past its busy timeout"
                ) from error
            raise
        for callback in self.on_commit:
            callback()

    async def data_version(self) -> int:
        """A number that every committed write transaction has increased, whichever
        process made it: equal values mean that no write committed in between.

        Read it before reading data: whatever is read afterwards is at least as new as
        the version says (api/response_cache.py keys responses on it). It is read on
        every request, so not through the pool and a session (about 1 ms of CPU on
        SQLite, where each driver call is a hop to aiosqlite's thread) but on a
        connection of its own (``DataVersionReader``)."""
        return await self._version_reader.read()

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        # A transaction opened inside another one skips the queue (it would wait for
        # itself); SQLite then refuses it after its busy timeout, as it always did.
        if not self.is_sqlite or _writing.get():
            yield
            return
        gate = self._write_gates.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with gate:
            token = _writing.set(True)
            try:
                if self._host_writers is None:
                    yield
                else:
                    async with self._host_writers.hold(self.write_wait):
                        yield
            finally:
                _writing.reset(token)

    async def ping(self) -> None:
        """Raise unless the database answers now (see ``is_unreachable`` for what an
        outage raises)."""
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self._version_reader.close()
        await self.engine.dispose()
