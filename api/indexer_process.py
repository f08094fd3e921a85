"""The index writer of ``knownfix serve``, in a process of its own (``knownfix indexer``).

Applying a write to the index is CPU work under the interpreter lock (about 30 ms
for an incident at 100k articles, a few hundred when Whoosh merges segments), and
in a worker it stalled every request that worker was serving meanwhile: most of
all the suggestion a responder asks for right after reporting or resolving an
incident. ``serve`` starts this process before its workers, so that it takes the
directory's writer lock and the workers only search; if it dies, a worker takes
the lock over at its next look (``Indexer``), as when workers wrote the index.

It hears commits as the workers do (``other_processes_commits``) and stops with
SIGTERM or SIGINT, or when the server that started it is gone (``--parent``): an
index writer left behind would keep the lock from the next server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys

from knowledge.config import Settings
from knowledge.outbox.watcher import other_processes_commits
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer

logger = logging.getLogger("knownfix.search")

READY = "index writer ready"
PARENT_CHECK_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


async def run(settings: Settings, *, parent: int | None = None, ready: bool = False) -> int:
    """Keep the index in step with the database until told to stop. ``ready``: say
    ``READY`` on stdout once caught up (``serve`` waits for it), then nothing more."""
    if parent is not None and not _stops_with(parent):
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
        await indexer.start()
        await heard.start()
        if ready:
            sys.stdout.write(READY + "\n")
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


def _stops_with(parent: int) -> bool:
    """Have the kernel send SIGTERM when the parent dies (Linux; elsewhere the loop of
    ``run`` notices within ``PARENT_CHECK_SECONDS``). False if it is gone already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def start_beside_server() -> subprocess.Popen[str] | None:
    """Start ``knownfix indexer`` for this server (its settings are in the environment)
    and wait until it has caught up. ``None`` if it could not start: the workers then
    write the index themselves, as they always can."""
    parent = str(os.getpid())
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        # -P: the server's working directory is not where the code comes from.
        [sys.executable, "-P", "-m", "api.cli", "indexer", "--ready", "--parent", parent],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # as long as a first build of the index takes
    process.stdout.close()
    if line.strip() != READY:
        logger.warning("the index writer did not start (exit status %s)", process.wait())
        return None
    return process


def stop(process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
