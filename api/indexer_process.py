"""The index writer of ``knownfix serve``, in a process of its own (``knownfix indexer``).

Applying a write to the index is CPU work under the interpreter lock (about 30 ms
for an incident at 100k articles, a few hundred when Whoosh merges segments), and
in a worker it stalled every request that worker was serving meanwhile: most of
all the suggestion a responder asks for right after reporting or resolving an
incident. ``serve`` starts this process before its workers, so that it takes the
directory's writer lock and the workers only search; if it dies, a worker takes
the lock over at its next look (``Indexer``), as when workers wrote the index.

It hears commits as the workers do (``other_processes_commits``) and stops with
SIGTERM or SIGINT, even while it catches up (a first build of the index takes
minutes), or when the server that started it is gone (``--parent``): an index
writer left behind would keep the lock from the next server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable

from api.process_tree import stop_with
from knowledge.config import Settings
from knowledge.outbox.watcher import other_processes_commits
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer

logger = logging.getLogger("knownfix.search")

READY = "index writer ready"
# Another process (another server's index writer) holds the directory's writer lock:
# this one follows it, and takes the lock when it is let go.
WAITING = "index writer waiting for the lock"
PARENT_CHECK_SECONDS = 1.0


async def run(settings: Settings, *, parent: int | None = None, ready: bool = False) -> int:
    """Keep the index in step with the database until told to stop. ``ready``: say
    ``READY`` on stdout once caught up (``serve`` waits for it), then nothing more."""
    if parent is not None and not stop_with(parent):
        return 0
    db = settings.database()
    # It searches nothing: no memory for postings, no searcher made ready for searches.
    indexer = Indexer(
        db,
        SearchIndex(settings.index_dir, postings_cache_bytes=0, warm_after_write=False),
        outbox_retention=settings.outbox_retention,
    )
    heard = other_processes_commits(db, [indexer.notify])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    try:
        if not await _unless_stopped(indexer.start(), stop):
            return 0
        await heard.start()
        if ready:
            sys.stdout.write((READY if indexer.is_writer else WAITING) + "\n")
            sys.stdout.flush()
            # Whoever reads it stops there: a full pipe would block a later write.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PARENT_CHECK_SECONDS):
                    await stop.wait()
            if parent is not None and os.getppid() != parent:
                logger.warning("the server that started this index writer is gone; stopping")
                break
    finally:
        await heard.stop()
        await indexer.stop()
        await db.dispose()
    return 0


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run ``work`` to its end, or cancel it once ``stop`` is set; whether it ended."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if working.done():
        working.result()
        return True
    working.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await working
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    process: subprocess.Popen[str]
    writing: bool  # it holds the writer lock (else another server's writer does)


def start_beside_server() -> Started | None:
    """Start ``knownfix indexer`` for this server (its settings are in the environment)
    and wait until it has caught up. ``None`` if it could not start: the workers then
    write the index themselves, as they always can.

    It gets a process group of its own, so that a Ctrl-C meant for the server does
    not stop it before the workers (one of them would take the lock over as they
    shut down); the server stops it once they have.
    """
    parent = str(os.getpid())
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        # -P: the server's working directory is not where the code comes from.
        [sys.executable, "-P", "-m", "api.cli", "indexer", "--ready", "--parent", parent],
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline().strip()  # as long as a first build takes
    except BaseException:  # the server was told to stop meanwhile
        stop(process)
        raise
    finally:
        process.stdout.close()
    if line not in (READY, WAITING):
        logger.warning("the index writer did not start (exit status %s)", process.wait())
        return None
    return Started(process, writing=line == READY)


def report_exit(process: subprocess.Popen[str]) -> None:
    """Wait for the index writer in a thread of the server: reaped at once, it is seen
    gone by the workers (one takes over), and an unexpected exit is logged."""

    def wait() -> None:
        status = process.wait()
        if status not in (0, -signal.SIGTERM):
            logger.warning(
                "the index writer (process %d) exited with status %d; a worker writes the "
                "index instead", process.pid, status,
            )  # fmt: skip

    threading.Thread(target=wait, name="index-writer-exit", daemon=True).start()


def stop(process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
