"""Hearing about outbox rows written by other processes, through PostgreSQL LISTEN/NOTIFY.

Each process follows the outbox twice (its index replica and its subscribers'
events) and is woken at once by its own commits. Commits made by other
processes or hosts would otherwise wait for the next poll. An AFTER INSERT
trigger on the outbox (migration 0005) sends ``NOTIFY knownfix_outbox`` when a
writing transaction commits; this module keeps one connection per process
listening and wakes the followers.

Why PostgreSQL and not Redis: the database every process already shares does
it, with nothing else to deploy, and the notification is transactional (sent on
commit, never for a rollback, never before the rows are visible). The outbox
stays the only record: a notification carries nothing, and one missed while the
connection was down costs at most one poll interval, because the followers
still poll. After every (re)connection the followers are woken once for that
reason.

The connection is checked every ``check_interval`` seconds: a connection whose
peer vanished without a word (a failover, a dropped NAT entry) would otherwise
look healthy and hear nothing. Reconnection backs off from half a second to
``max_backoff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

logger = logging.getLogger("knownfix.outbox")

CHANNEL = "knownfix_outbox"
# Shows the connection in pg_stat_activity, for operators and tests.
APPLICATION_NAME = "knownfix-listener"
CONNECT_TIMEOUT = 10.0
FIRST_BACKOFF = 0.5


# Query options SQLAlchemy's asyncpg dialect takes for itself (``AsyncAdapt_asyncpg_dbapi
# .connect`` in sqlalchemy/dialects/postgresql/asyncpg.py) and never passes to asyncpg.
# asyncpg would send them to the server as settings, which refuses them (behind
# PgBouncer, URLs carry ``prepared_statement_cache_size=0``).
DIALECT_OPTIONS = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn"}
)


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://...``) as a libpq DSN asyncpg takes."""
    return (
        make_url(database_url)
        .difference_update_query(DIALECT_OPTIONS)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


class OutboxListener:
    def __init__(
        self,
        database_url: str,
        wake: Sequence[Callable[[], None]],
        *,
        check_interval: float = 15.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.wake = list(wake)
        self.check_interval = check_interval
        self.max_backoff = max_backoff
        # Set while a connection is listening; cleared while reconnecting.
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening in the background; never waits for the database."""
        self._task = asyncio.create_task(self._run(), name="knownfix-outbox-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _wake_all(self) -> None:
        wake_all(self.wake)

    def _on_notification(self, *_: Any) -> None:
        self._wake_all()

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            try:
                await self._listen()
                backoff = FIRST_BACKOFF  # it was up: reconnect at once, then back off
            except Exception as error:  # whatever it was, the listener must not die of it
                logger.warning(
                    "not listening for outbox notifications (%s: %s); polling meanwhile, "
                    "retrying in %.1f s",
                    type(error).__name__,
                    error,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self) -> None:
        """Listen on one connection until it is lost."""
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": APPLICATION_NAME},
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(CHANNEL, self._on_notification)
            self.listening.set()
            logger.info("listening for outbox notifications")
            self._wake_all()  # whatever was committed while nobody listened
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.check_interval):
                        await lost.wait()
                if not lost.is_set():
                    await connection.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT)
            logger.warning("the outbox listener's connection was closed; reconnecting")
        finally:
            self.listening.clear()
            if not connection.is_closed():
                try:
                    await connection.close(timeout=CONNECT_TIMEOUT)
                except Exception:
                    connection.terminate()


def wake_all(wake: Sequence[Callable[[], None]]) -> None:
    """Call every follower's wake-up; one that fails is logged and the others still
    hear of the commit (it must not end the task that listens for all of them)."""
    for callback in wake:
        try:
            callback()
        except Exception:
            logger.exception("waking %r after a commit failed", callback)
