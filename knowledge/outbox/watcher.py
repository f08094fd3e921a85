"""Hearing about commits of other processes on SQLite, by watching the data version.

SQLite has no LISTEN/NOTIFY (``listener.py`` is PostgreSQL's). Without this, a
write that one worker of ``knownfix serve --workers N`` committed reached the
others at their next outbox poll, a second later: the index writer applied it
late (so every worker searched without it meanwhile), and subscribers connected
to another worker heard of it late.

Every committed write increases the data version (``Database.data_version``),
which is read in microseconds on a connection of its own. Each process reads it
every ``interval`` seconds and wakes its followers when it moved, and once at its
first read (or after reads failed): a commit made between a follower's catch-up
at start and that read would otherwise wait for the next poll. Its own commits
move it too; they have woken the followers already, and an extra wake-up only
costs a look at the outbox. A read that fails (the file is being replaced, the
disk is full) is logged once and tried again: the followers still poll. A
follower whose wake-up fails is logged, and the others are still woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from knowledge.db import Database
from knowledge.outbox.listener import OutboxListener, wake_all

logger = logging.getLogger("knownfix.outbox")

# Well below the outbox poll (1 s), far above what a read costs (microseconds).
WATCH_INTERVAL = 0.05


class CommitWatcher:
    def __init__(
        self, db: Database, wake: Sequence[Callable[[], None]], *, interval: float = WATCH_INTERVAL
    ) -> None:
        self.db = db
        self.wake = list(wake)
        self.interval = interval
        # Set once the data version has been read (and while it can be read).
        self.watching = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching in the background; a database that fails now is retried."""
        self._task = asyncio.create_task(self._run(), name="knownfix-commit-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.watching.clear()

    async def _run(self) -> None:
        seen: int | None = None
        failing = False
        while True:
            try:
                version = await self.db.data_version()
            except Exception as error:  # the followers still poll; try again
                if not failing:
                    logger.warning(
                        "cannot read the data version (%s: %s); the outbox is polled meanwhile",
                        type(error).__name__,
                        error,
                    )
                failing = True
                seen = None
                self.watching.clear()
            else:
                failing = False
                if version != seen:
                    wake_all(self.wake)
                seen = version
                self.watching.set()
            await asyncio.sleep(self.interval)


def other_processes_commits(
    db: Database, wake: Sequence[Callable[[], None]]
) -> CommitWatcher | OutboxListener:
    """What wakes this process's followers when another process commits: NOTIFY on
    PostgreSQL, the data version on SQLite. Started and stopped by its owner."""
    return CommitWatcher(db, wake) if db.is_sqlite else OutboxListener(db.url, wake)
