"""The index writer of ``knownfix serve``, in a process of its own (``knownfix indexer``).

Applying a write to the index is CPU work under the interpreter lock (about 30 ms
for an incident at 100k articles, a few hundred when Whoosh merges segments), and
in a worker it stalled every request that worker was serving meanwhile: most of
all the suggestion a responder asks for right after reporting or resolving an
incident. ``serve`` starts this process before its workers, so that it takes the
directory's writer lock and the workers only search; if it dies, a worker takes
the lock over at its next look (``Indexer``), as when workers wrote the index, until
``serve`` has started it again (``Supervisor``) and the worker hands the lock back.

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
import time
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
# serve starts its index writer again after this, doubled after each failed start.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0


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
        preferred=True,
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


def spawn() -> subprocess.Popen[str]:
    """Start ``knownfix indexer`` for this server (its settings are in the environment).

    It gets a process group of its own, so that a Ctrl-C meant for the server does
    not stop it before the workers (one of them would take the lock over as they
    shut down); the server stops it once they have.
    """
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        # -P: the server's working directory is not where the code comes from.
        [sys.executable, "-P", "-m", "api.cli", "indexer", "--ready", "--parent",
         str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )  # fmt: skip


def wait_ready(process: subprocess.Popen[str]) -> Started | None:
    """Wait until it has caught up (as long as a first build of the index takes);
    ``None`` if it exited first."""
    assert process.stdout is not None
    try:
        line = process.stdout.readline().strip()
    except BaseException:  # the server was told to stop meanwhile
        stop(process)
        raise
    finally:
        process.stdout.close()
    if line not in (READY, WAITING):
        process.wait()
        return None
    return Started(process, writing=line == READY)


class Supervisor:
    """``serve``'s index writer, started again whenever it exits unasked (uvicorn does
    the same for its workers): after a crash, or if it could not start. Meanwhile a
    worker writes the index, and hands it back once the new process runs
    (``writer.preferred``). It exits 0 only when told to stop: then it stays stopped,
    and a worker writes the index."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # _process and _stopping change together
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Started | None:
        """Start it and wait until it is ready; ``None`` if it could not start (it is
        tried again in the background)."""
        started = self._start()
        if started is None:
            logger.warning(
                "the index writer did not start; the workers write the index until it does"
            )
        self._thread = threading.Thread(
            target=self._supervise, args=(started,), name="index-writer-supervisor",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        return started

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            stop(process)
        if self._thread is not None:
            self._thread.join(RESTART_MAX_SECONDS)

    def _start(self) -> Started | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self._process = process = spawn()
        return wait_ready(process)

    def _supervise(self, started: Started | None) -> None:
        delay = RESTART_FIRST_SECONDS
        while True:
            if started is not None:
                began = time.monotonic()
                status = started.process.wait()
                if self._stopping.is_set():
                    return
                if status == 0:
                    logger.warning("the index writer (process %d) was stopped; the workers "
                                   "write the index", started.process.pid)  # fmt: skip
                    return
                if time.monotonic() - began > RESTART_MAX_SECONDS:
                    delay = RESTART_FIRST_SECONDS  # it ran well: not a crash loop
                logger.warning(
                    "the index writer (process %d) exited with status %d; a worker writes "
                    "the index until it is started again, in %.0f s",
                    started.process.pid, status, delay,
                )  # fmt: skip
            if self._stopping.wait(delay):
                return
            delay = min(2 * delay, RESTART_MAX_SECONDS)
            try:
                started = self._start()
            except Exception:  # cannot even spawn it (out of processes): later, then
                logger.exception("starting the index writer failed")
                started = None
            if self._stopping.is_set():
                return
            if started is None:
                logger.warning("the index writer did not start; trying again in %.0f s", delay)
            else:
                logger.warning("the index writer was started again, as process %d",
                               started.process.pid)  # fmt: skip


def stop(process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
