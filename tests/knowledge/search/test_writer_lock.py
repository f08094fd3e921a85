"""Processes sharing an index directory: one writes, the others search, and one takes over.

The lock is a real ``flock`` on a file in the directory; a process that dies (even
by SIGKILL) gives it up, and another process's indexer becomes the writer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from whoosh import query as q

from api.cli import main
from knowledge.db import Database
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer
from knowledge.search.writer_lock import (
    PREFERRED_FILE,
    WriterLock,
    preferred_writer,
    rebuild_requests,
)
from tests.knowledge.search.support import NEVER, found, generation, generations, publish

DEADLINE = 20.0
PROCESS_TIMEOUT = 60

PUFFIN = (
    "Puffin mail relay rejects large attachments",
    "## Symptoms\nMessages over ten megabytes bounce.\n"
    "## Resolution\nRaise the relay message size limit.",
)
OCELOT = (
    "Ocelot build agents run out of inodes",
    "## Symptoms\nBuilds fail creating temporary files while disk space is free.\n"
    "## Resolution\nPrune the dependency cache on every agent.",
)

# Holds the lock until killed.
HOLDER = """
import sys, time
from pathlib import Path
from knowledge.search.writer_lock import WriterLock

lock = WriterLock(Path(sys.argv[1]))
print("held" if lock.acquire() else "refused", flush=True)
time.sleep(3600)
"""


@asynccontextmanager
async def holder_process(root: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another process holding the index's writer lock (until killed), as a server does."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(root), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PROCESS_TIMEOUT)
        assert line.decode().strip() == "held"
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), PROCESS_TIMEOUT)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll, bounded, for a state that no event announces."""
    try:
        async with asyncio.timeout(DEADLINE):
            while not condition():  # noqa: ASYNC110 - another task's state, not an Event
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def until_found(db: Database, index: SearchIndex, text: str, title: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE):
            while title not in await found(db, index, text):  # noqa: ASYNC110 - another task's work
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{title!r} never became searchable") from None


# --- the lock ---------------------------------------------------------------------------


def test_only_one_holder_at_a_time_and_the_next_takes_it_after_release(tmp_path: Path) -> None:
    first, second = WriterLock(tmp_path), WriterLock(tmp_path)
    assert first.acquire()
    assert first.acquire(), "taking it again is a no-op"
    assert not second.acquire()
    assert first.holder() == os.getpid()
    first.release()
    assert second.acquire()
    assert not first.acquire()
    second.release()


def test_a_lock_whose_directory_was_replaced_is_no_longer_current(tmp_path: Path) -> None:
    root = tmp_path / "index"
    lock = WriterLock(root)
    assert lock.acquire()
    assert lock.is_current()
    shutil.rmtree(root)
    root.mkdir()
    assert not lock.is_current()
    newcomer = WriterLock(root)
    assert newcomer.acquire(), "the new directory's lock file is free"
    newcomer.release()
    lock.release()


async def test_a_holder_killed_by_sigkill_gives_the_lock_up(tmp_path: Path) -> None:
    mine = WriterLock(tmp_path)
    async with holder_process(tmp_path) as process:  # killed with SIGKILL on the way out
        assert not mine.acquire(), "another process holds it"
        assert mine.holder() == process.pid
    assert mine.acquire()
    assert mine.holder() == os.getpid()
    mine.release()


# --- indexers sharing a directory -------------------------------------------------------


async def test_the_second_indexer_searches_what_the_first_writes_and_takes_over(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    # The follower of each looks at the outbox every 50 ms: nobody calls catch_up here.
    writer = Indexer(db, SearchIndex(root), poll_interval=0.05)
    reader = Indexer(db, SearchIndex(root), poll_interval=0.05)
    try:
        await writer.start()
        await reader.start()
        assert writer.is_writer
        assert not reader.is_writer
        assert reader.index.is_open, "a reader opens the index the writer built"

        await publish(db, PUFFIN)
        await until_found(db, reader.index, "puffin attachments", PUFFIN[0])
        assert not reader.is_writer

        await writer.stop()
        await until(lambda: reader.is_writer, "the reader to take over")
        await publish(db, OCELOT)
        await until_found(db, reader.index, "ocelot inodes", OCELOT[0])
        assert await found(db, reader.index, "puffin") == [PUFFIN[0]]
    finally:
        await writer.stop()  # stopping twice is harmless
        await reader.stop()
    assert not reader.is_writer, "stopping gives the lock up"


# --- the process meant to write (serve's index writer) and its stand-ins -----------------


@asynccontextmanager
async def named_process(*argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A process with this command line, doing nothing until killed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(3600)", *argv
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), PROCESS_TIMEOUT)


INDEXER = ("api.cli", "indexer")  # the command line of serve's index writer, in part


def name_preferred(root: Path, pid: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / PREFERRED_FILE).write_text(f"{pid}\n", encoding="ascii")


async def test_the_preferred_writer_counts_only_while_an_index_writer_runs_as_it(
    tmp_path: Path,
) -> None:
    assert preferred_writer(tmp_path) is None, "nobody named"
    async with named_process(*INDEXER) as writer:
        name_preferred(tmp_path, writer.pid)
        assert preferred_writer(tmp_path) == writer.pid
    assert preferred_writer(tmp_path) is None, "it exited"
    # Processes that have reused its id since.
    for argv in (["api.cli", "serve"], ["pytest", "-k", "indexer"]):
        async with named_process(*argv) as other:
            name_preferred(tmp_path, other.pid)
            assert preferred_writer(tmp_path) is None, argv


async def test_a_stand_in_writes_only_while_the_preferred_writer_is_gone(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    stand_in = Indexer(db, SearchIndex(root), poll_interval=0.05, stand_in=True)
    try:
        async with named_process(*INDEXER) as writer:
            name_preferred(root, writer.pid)
            await stand_in.start()
            assert not stand_in.is_writer, "the lock is free, but left to the preferred writer"
        await until(lambda: stand_in.is_writer, "the stand-in to take over")
        await publish(db, PUFFIN)
        await until_found(db, stand_in.index, "puffin attachments", PUFFIN[0])

        async with named_process(*INDEXER) as writer:
            name_preferred(root, writer.pid)
            stand_in.notify()
            await until(lambda: not stand_in.is_writer, "the stand-in to hand the lock back")
            lock = WriterLock(root)
            assert lock.acquire(), "free for the preferred writer to take"
            lock.release()
    finally:
        await stand_in.stop()


async def test_the_preferred_writer_names_itself_whenever_the_name_is_gone(
    db: Database, tmp_path: Path
) -> None:
    # After the directory was replaced (or another writer let its name go), a worker
    # would otherwise take the lock and keep it.
    root = tmp_path / "index"
    named = root / PREFERRED_FILE
    writer = Indexer(db, SearchIndex(root), poll_interval=0.05, preferred=True)
    try:
        await writer.start()
        assert named.read_text() == f"{os.getpid()}\n"
        named.unlink()
        writer.notify()
        await until(named.exists, "the writer to name itself again")
        assert named.read_text() == f"{os.getpid()}\n"
    finally:
        await writer.stop()
    assert not named.exists(), "a writer that stopped lets its name go"


async def test_a_reader_brings_its_searcher_up_to_date_before_anyone_searches(
    db: Database, tmp_path: Path
) -> None:
    # A server's other workers: a new searcher after each write is opened by their
    # indexer's round, not by the next suggestion, which would wait for it.
    root = tmp_path / "index"
    writer = Indexer(db, SearchIndex(root), poll_interval=0.05)
    reader = Indexer(db, SearchIndex(root), poll_interval=NEVER, follow_interval=NEVER)
    try:
        await writer.start()
        await reader.start()
        assert not reader.is_writer
        before = reader.index._searcher
        await publish(db, PUFFIN)
        await until(lambda: before is not None and not before.up_to_date(), "the writer to apply")
        assert reader.index._searcher is before, "nothing searched: nothing refreshed yet"
        reader.notify()
        await until(
            lambda: reader.index._searcher is not before and "segments" in reader.index.memo(),
            "the reader's round to open the new searcher",
        )
        assert reader.index._searcher is not None
        assert reader.index._searcher.up_to_date()
    finally:
        await writer.stop()
        await reader.stop()


async def test_a_reader_opens_each_commit_of_the_writer_without_being_told(
    db: Database, tmp_path: Path
) -> None:
    # On SQLite nothing tells the other workers that the writer committed, and the
    # outbox poll is a second: they look at the index directory much more often.
    root = tmp_path / "index"
    writer = Indexer(db, SearchIndex(root), poll_interval=0.05)
    reader = Indexer(db, SearchIndex(root), poll_interval=NEVER)

    async def commit_is_opened(article: tuple[str, str]) -> None:
        before = reader.index._searcher
        await publish(db, article)
        await until(lambda: reader.index._searcher is not before, "the reader to open it")
        assert reader.index._searcher is not None
        assert reader.index._searcher.up_to_date()

    try:
        await writer.start()
        await reader.start()
        assert not reader.is_writer
        await commit_is_opened(PUFFIN)
        await commit_is_opened(OCELOT)
    finally:
        await writer.stop()
        await reader.stop()


async def test_a_reader_creates_nothing_and_builds_the_index_once_the_lock_is_free(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    root.mkdir()
    await publish(db, PUFFIN)
    blocker = WriterLock(root)
    assert blocker.acquire()  # a writer that has not built anything yet
    reader = Indexer(db, SearchIndex(root), poll_interval=NEVER)
    try:
        await reader.start()
        assert not reader.is_writer
        assert not reader.index.is_open, "nothing to open, and a reader creates nothing"
        assert not list(root.glob("gen-*"))
        blocker.release()
        reader.notify()
        # It holds the lock a moment before it has created and opened the index.
        await until(lambda: reader.is_writer and reader.index.is_open, "the reader to open it")
        await until_found(db, reader.index, "puffin", PUFFIN[0])
    finally:
        await reader.stop()
        blocker.release()


def test_a_read_section_keeps_its_searcher_while_the_writer_commits(tmp_path: Path) -> None:
    root = tmp_path / "index"
    writer = SearchIndex(root)
    writer.open()
    reader = SearchIndex(root)
    try:
        writer.apply([{"key": "article:1", "kind": "article", "title": "first"}], [], 1)
        assert reader.open_existing()
        with reader.reading():
            results = reader.run_query(q.Term("kind", "article"), limit=None)
            writer.apply([{"key": "article:2", "kind": "article", "title": "second"}], [], 2)
            # A second query in the same section (search does one for "did you mean")
            # must not close the searcher the first results still read from.
            again = reader.run_query(q.Term("kind", "article"), limit=None)
            assert [hit["key"] for hit in results] == ["article:1"]
            assert [hit["key"] for hit in again] == ["article:1"], "one snapshot per section"
        assert reader.last_seq() == 2, "the next section sees the commit"
        with reader.reading():
            found = reader.run_query(q.Term("kind", "article"), limit=None)
            assert sorted(hit["key"] for hit in found) == ["article:1", "article:2"]
    finally:
        reader.close()
        writer.close()


# --- knownfix reindex beside a process that writes the index -----------------------------


async def reindex(db: Database, root: Path, *flags: str) -> int:
    """``knownfix reindex`` in a thread: it starts its own event loop, as in a shell."""
    argv = ["reindex", "--database-url", db.url, "--index-dir", str(root), *flags]
    return await asyncio.to_thread(main, argv)


async def test_reindex_leaves_an_index_another_process_writes_as_it_was(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an index built, and a process that writes it and never rebuilds on request
    root = tmp_path / "index"
    await publish(db, PUFFIN)
    assert await reindex(db, root) == 0
    capsys.readouterr()
    before = generations(root)
    async with holder_process(root) as holder:
        # when reindex is run without waiting, then with too short a wait
        at_once = await reindex(db, root, "--wait", "0")
        refusal = capsys.readouterr().err
        waited = await reindex(db, root, "--wait", "0.3")
        timeout = capsys.readouterr().err

        # then each says who writes it and what to do, and changes nothing
        assert at_once == 1
        assert f"is written by process {holder.pid}" in refusal
        assert "nothing was done" in refusal
        assert "--wait SECONDS" in refusal
        assert waited == 1
        assert f"process {holder.pid}, which writes the search index" in timeout
        assert "has not rebuilt it within 0.3 s" in timeout
        assert "longer --wait" in timeout
        assert generations(root) == before
        assert rebuild_requests(root) == [], "the request is withdrawn"


async def test_reindex_has_the_server_that_writes_the_index_rebuild_it(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a running server's indexer, the writer of the index, looking every 50 ms
    root = tmp_path / "index"
    await publish(db, PUFFIN, OCELOT)
    server = Indexer(db, SearchIndex(root), poll_interval=0.05)
    await server.start()
    try:
        assert server.is_writer
        before = generation(root)

        # when reindex runs beside it
        status = await reindex(db, root, "--wait", "60")

        # then the server rebuilt the index into a new generation, and still writes it
        captured = capsys.readouterr()
        assert status == 0, captured.err
        assert f"process {os.getpid()} rebuilt the index in {root} (2 documents)" in captured.out
        assert generation(root) != before
        assert generations(root) == [generation(root)]
        assert rebuild_requests(root) == []
        assert server.is_writer
        await publish(db, (PUFFIN[0] + " again", PUFFIN[1]))
        server.notify()
        await until_found(db, server.index, "puffin", PUFFIN[0] + " again")
    finally:
        await server.stop()


async def test_reindex_rebuilds_the_index_itself_when_its_writer_exits_meanwhile(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "index"
    await publish(db, PUFFIN)
    assert await reindex(db, root) == 0
    before = generation(root)
    async with holder_process(root) as holder:
        # given reindex waiting for the writer to honour its request
        rebuilding = asyncio.create_task(reindex(db, root, "--wait", "60"))
        await until(lambda: bool(rebuild_requests(root)), "reindex to ask for a rebuild")
        # when the writer exits instead
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(holder.wait(), PROCESS_TIMEOUT)
        status = await asyncio.wait_for(rebuilding, PROCESS_TIMEOUT)
    # then reindex took the lock and rebuilt it itself
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"indexed 1 documents into {root}" in captured.out
    assert generation(root) != before
    assert rebuild_requests(root) == []
    assert WriterLock(root).acquire(), "reindex gave the lock back"
