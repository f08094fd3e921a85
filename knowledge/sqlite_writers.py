"""One queue for the SQLite writers of every process on a host.

Write transactions begin with ``BEGIN IMMEDIATE`` and, within a process, wait
their turn on an asyncio lock (``knowledge.db.Database``). Between processes
(``knownfix serve --workers N``, the CLI beside a server) that left SQLite's
busy handler as the queue, and it is no queue: a waiter sleeps and polls (1 ms,
then up to 100 ms between tries), while the process holding the lock hands it
straight to its own next queued writer on release. A busy process can keep the
lock for itself longer than the busy timeout, and the other processes' writers
fail with "database is locked" (measured: three processes of eight writers,
each write holding the lock 50 ms, lost one write each within 15 s; the
slowest acknowledged write had waited 8.7 s).

So before ``BEGIN IMMEDIATE`` a writer takes an OS file lock (``flock``) beside
the database file. Waiting for it happens in the kernel, which wakes a waiter
as soon as the holder lets go, so the lock passes between processes instead of
staying with the busiest one. The wait is bounded: past ``wait`` seconds the
writer gives up with ``DatabaseBusyError``, which callers answer as "busy, try
again" (GraphQL ``DATABASE_BUSY``, HTTP 503 with Retry-After), having written
nothing. Programs that do not take this lock (the ``sqlite3`` shell, a backup)
still meet SQLite's own busy timeout, as before.

The blocking ``flock`` calls run on one daemon thread per lock file, not on the
event loop and not in the default executor (whose threads an interpreter joins
at exit, and which the search index uses). A writer that gave up leaves its call
behind: the file is closed, and the lock let go, as soon as that call gets it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path


class DatabaseBusyError(Exception):
    """A write waited longer than it may for SQLite's one write lock; nothing was written,
    and the same write may simply be tried again."""


Done = Callable[[BaseException | None], None]


class HostWriteLock:
    """The write turn of one SQLite file among this host's processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._requests: queue.SimpleQueue[tuple[int, Done]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    @asynccontextmanager
    async def hold(self, wait: float) -> AsyncIterator[None]:
        """Hold the lock for the block; ``DatabaseBusyError`` after ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        taken: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if taken.done():  # the writer gave up: let go at once
                os.close(fd)
            elif error is not None:
                os.close(fd)
                taken.set_exception(error)
            else:
                taken.set_result(None)

        def done(error: BaseException | None) -> None:  # on the lock thread
            try:
                loop.call_soon_threadsafe(settle, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                os.close(fd)

        self._requests.put((fd, done))
        self._ensure_thread()
        try:
            async with asyncio.timeout(wait):
                await taken  # cancelled on timeout; settle() then closes the file
        except TimeoutError:
            pass
        if not taken.done() or taken.cancelled():
            raise DatabaseBusyError(
                f"another process has held the database's write lock for over {wait:g} s"
            )
        try:
            yield
        finally:
            os.close(fd)  # closing the file lets the lock go

    def _ensure_thread(self) -> None:
        with self._start:
            # Not alive after a fork: a child process needs a thread of its own.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name=f"knownfix-writers:{self.path.name}", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            fd, done = self._requests.get()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as error:
                done(error)
            else:
                done(None)
