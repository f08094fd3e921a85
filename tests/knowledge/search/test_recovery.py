"""The index survives crashes, loss and corruption: the database is the source of truth.

Real processes are killed with SIGKILL between a commit and its indexing; index
folders are deleted or damaged on disk; rebuilds run under live searches.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from whoosh import query as q

from api.cli import main
from knowledge.accounts.principal import ANONYMOUS_VIEWER
from knowledge.db import Database
from knowledge.search.index import CURRENT, SearchIndex
from knowledge.search.service import search
from knowledge.search.sync import Indexer
from tests.knowledge.search.support import (
    NEVER,
    draft,
    found,
    generation,
    generations,
    max_outbox_id,
    on_disk,
    publish,
    running,
)

PROCESS_TIMEOUT = 60

GLACIER = (
    "Glacier backups stall at ninety percent",
    "## Symptoms\nThe nightly archive job hangs near the end.\n"
    "## Resolution\nRaise the multipart chunk size and rerun the job.",
)
QUOKKA = (
    "Quokka cache evictions stall checkout",
    "## Symptoms\nCheckout pages time out while the cache sheds keys.\n"
    "## Cause\nAn eviction storm after a deploy warmed nothing.\n"
    "## Resolution\nPrewarm the cache before shifting traffic.",
)
KESTREL = (
    "Kestrel workers drop webhook deliveries",
    "## Symptoms\nPartners report missing webhook calls during peaks.\n"
    "## Resolution\nScale the worker pool and enable redelivery.",
)
MARMOT = (
    "Marmot scheduler skips cron runs after failover",
    "## Symptoms\nJobs scheduled for the failover minute never start.\n"
    "## Resolution\nReplay missed runs from the scheduler journal.",
)

# A separate process that commits an article and dies before anything indexes it.
# With an index folder, it first runs an indexer there (catching up on what came
# before), then commits, then dies with that indexer still holding the index open.
CRASHING_WRITER = """
import asyncio, os, signal, sys
from pathlib import Path

import knowledge.models  # every table, for the foreign keys between them
from knowledge.accounts.principal import SYSTEM
from knowledge.articles.service import ArticleDraft, Transition, create, transition
from knowledge.db import Database
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer


async def main(url, index_dir, title, body):
    db = Database(url)
    if index_dir:
        indexer = Indexer(db, SearchIndex(Path(index_dir)), poll_interval=3600)
        await indexer.start()
        print("indexed", flush=True)
    async with db.transaction() as session:
        article = await create(
            session=session, principal=SYSTEM, draft=ArticleDraft(title=title, body=body)
        )
        await transition(
            session=session, principal=SYSTEM, article_id=article.id, action=Transition.PUBLISH
        )
    print("committed", article.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


asyncio.run(main(*sys.argv[1:]))
"""


async def commit_then_die(db: Database, article: tuple[str, str], index_dir: str = "") -> str:
    """Run CRASHING_WRITER; return what it printed (it must have been killed by SIGKILL)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_WRITER,
        db.url,
        index_dir,
        *article,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    assert process.returncode == -signal.SIGKILL, err.decode()
    assert "committed" in out.decode(), err.decode()
    return out.decode()


# --- a crash between commit and indexing --------------------------------------------


async def test_an_article_committed_by_a_process_killed_before_indexing_is_caught_up(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, GLACIER)
    async with running(db, root):
        pass
    old_seq, _ = await asyncio.to_thread(on_disk, root)
    old_generation = generation(root)

    await commit_then_die(db, QUOKKA)
    newest = await max_outbox_id(db)
    assert newest > old_seq
    assert await asyncio.to_thread(on_disk, root) == (old_seq, 1), "nothing indexed it yet"

    async with running(db, root) as indexer:
        assert indexer.last_error is None
        assert await found(db, indexer.index, "quokka") == [QUOKKA[0]]
        assert await found(db, indexer.index, "glacier") == [GLACIER[0]]
    assert await asyncio.to_thread(on_disk, root) == (newest, 2)
    assert generation(root) == old_generation, "caught up in place, not rebuilt"


async def test_a_writer_killed_while_its_own_indexer_runs_loses_nothing(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, GLACIER)
    async with running(db, root):
        pass
    # Committed while no indexer runs: the crashing process's indexer catches it up.
    await publish(db, KESTREL)
    seq_before_crash = await max_outbox_id(db)

    printed = await commit_then_die(db, MARMOT, str(root))
    assert printed.startswith("indexed")
    newest = await max_outbox_id(db)
    assert newest > seq_before_crash
    assert await asyncio.to_thread(on_disk, root) == (seq_before_crash, 2)
    crashed_generation = generation(root)

    async with running(db, root) as indexer:
        assert indexer.last_error is None
        assert await found(db, indexer.index, "kestrel webhook") == [KESTREL[0]]
        assert await found(db, indexer.index, "marmot") == [MARMOT[0]]
        assert await found(db, indexer.index, "glacier") == [GLACIER[0]]
    assert await asyncio.to_thread(on_disk, root) == (newest, 3)
    assert generation(root) == crashed_generation, "caught up in place, not rebuilt"


# --- a missing or broken index ------------------------------------------------------


async def build_index(db: Database, root: Path) -> tuple[str, int]:
    """Three published articles and a draft, indexed; returns (generation, last seq)."""
    await publish(db, GLACIER, QUOKKA, KESTREL)
    await draft(db, *MARMOT)
    async with running(db, root) as indexer:
        assert indexer.index.doc_count() == 4
        seq = indexer.index.last_seq()
    return generation(root), seq


async def assert_rebuilt_from_database(db: Database, root: Path, old_generation: str) -> None:
    async with running(db, root) as indexer:
        assert indexer.last_error is None
        assert generation(root) != old_generation
        assert indexer.index.last_seq() == await max_outbox_id(db)
        assert indexer.index.doc_count() == 4
        assert await found(db, indexer.index, "glacier") == [GLACIER[0]]
        assert await found(db, indexer.index, "checkout cache") == [QUOKKA[0]]
        assert await found(db, indexer.index, "webhook") == [KESTREL[0]]
        assert await found(db, indexer.index, "marmot") == [], "drafts stay hidden"
    assert generations(root) == [generation(root)], "the broken generation is removed"


async def test_a_missing_index_folder_is_rebuilt_from_the_database(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    old_generation, _ = await build_index(db, root)
    shutil.rmtree(root)
    await assert_rebuilt_from_database(db, root, old_generation)


def _segments(folder: Path) -> list[Path]:
    segments = sorted(folder.glob("*.seg"))
    assert segments, f"no segment files in {folder}"
    return segments


def _tocs(folder: Path) -> list[Path]:
    tocs = sorted(folder.glob("_*.toc"))
    assert tocs, f"no TOC in {folder}"
    return tocs


def truncate_segments(folder: Path) -> None:
    for path in _segments(folder):
        path.write_bytes(b"")


def cut_segments_in_half(folder: Path) -> None:
    for path in _segments(folder):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def zero_fill_segments(folder: Path) -> None:
    """What an unsynced file can look like after a power cut."""
    for path in _segments(folder):
        path.write_bytes(bytes(path.stat().st_size))


def delete_segments(folder: Path) -> None:
    for path in _segments(folder):
        path.unlink()


def garbage_toc(folder: Path) -> None:
    for path in _tocs(folder):
        path.write_bytes(b"not a table of contents" * 8)


def delete_toc(folder: Path) -> None:
    for path in _tocs(folder):
        path.unlink()


def delete_generation(folder: Path) -> None:
    """``current`` is left pointing at a folder that no longer exists."""
    shutil.rmtree(folder)


# Whoosh leaves the files of the readers it opened before failing for the garbage
# collector, which reports them as unclosed; the test collects them itself.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    "damage",
    [
        truncate_segments,
        cut_segments_in_half,
        zero_fill_segments,
        delete_segments,
        garbage_toc,
        delete_toc,
        delete_generation,
    ],
)
async def test_a_broken_index_is_detected_at_start_and_rebuilt(
    db: Database, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    root = tmp_path / "index"
    old_generation, _ = await build_index(db, root)
    damage(root / old_generation)
    await assert_rebuilt_from_database(db, root, old_generation)
    gc.collect()


async def test_an_index_that_lost_its_meta_document_is_rebuilt(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    old_generation, _ = await build_index(db, root)
    # One damaged term: the meta document's key no longer reads "__meta__".
    for path in _segments(root / old_generation):
        data = path.read_bytes()
        assert data.count(b"__meta__") == 1
        path.write_bytes(data.replace(b"__meta__", b"__mexa__"))
    await assert_rebuilt_from_database(db, root, old_generation)


async def test_a_dangling_current_link_to_a_removed_generation_is_replaced(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    old_generation, _ = await build_index(db, root)
    # A link swapped to a generation that was never finished (or was cleaned away),
    # with the last good generation still on disk beside it.
    link = root / CURRENT
    link.unlink()
    link.symlink_to("gen-1")
    assert not (root / "gen-1").exists()
    await assert_rebuilt_from_database(db, root, old_generation)
    assert generation(root) != "gen-1"


# --- stopping while a write is in flight --------------------------------------------


class Gate:
    """Stands in for the index's write lock (a real lock behind a gate): says when a
    write has reached it, and holds the write there until the test opens the gate."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self.reached.set()
        self.opened.wait(PROCESS_TIMEOUT)
        self._lock.acquire()

    def __exit__(self, *_: object) -> None:
        self._lock.release()


async def still_running(task: asyncio.Task[None]) -> bool:
    done, _ = await asyncio.wait([task], timeout=0.3)
    return not done


async def test_a_stop_during_a_write_waits_for_it_and_then_lets_go_of_the_index(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    indexer = Indexer(db, SearchIndex(root), poll_interval=NEVER)
    await indexer.start()
    gate = Gate()
    indexer.index._write_lock = gate  # type: ignore[assignment]
    await publish(db, GLACIER)
    indexer.notify()
    assert await asyncio.to_thread(gate.reached.wait, PROCESS_TIMEOUT), "the write began"

    stopping = asyncio.create_task(indexer.stop())
    assert await still_running(stopping), "the stop waits for the write in flight"
    assert indexer.writer_lock.held, "no other process may write while this one does"
    gate.opened.set()
    await stopping

    assert not indexer.writer_lock.held
    assert await asyncio.to_thread(on_disk, root) == (await max_outbox_id(db), 1)


async def test_a_rebuild_stopped_while_it_swaps_in_leaves_the_index_whole(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await build_index(db, root)
    indexer = Indexer(db, SearchIndex(root), poll_interval=NEVER)
    await indexer.start()
    gate = Gate()
    indexer.index._write_lock = gate  # type: ignore[assignment]
    rebuilding = asyncio.create_task(indexer.rebuild())
    assert await asyncio.to_thread(gate.reached.wait, PROCESS_TIMEOUT), "the write began"

    rebuilding.cancel()
    assert await still_running(rebuilding), "the generation being swapped in is not removed"
    gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await rebuilding
    await indexer.stop()

    assert (root / CURRENT).resolve().is_dir(), "the index names a generation that exists"
    assert await asyncio.to_thread(on_disk, root) == (await max_outbox_id(db), 4)


# --- rebuilding under live searches -------------------------------------------------

ARTICLE_COUNT = 200


async def test_searches_during_a_rebuild_always_see_a_whole_index(
    db: Database, tmp_path: Path
) -> None:
    await publish(
        db,
        *(
            (
                f"Heartbeat timeouts on shard {n}",
                f"## Symptoms\nShard {n} misses heartbeats under load.\n"
                "## Resolution\nLengthen the heartbeat interval and rebalance.",
            )
            for n in range(ARTICLE_COUNT)
        ),
    )
    root = tmp_path / "index"
    async with running(db, root) as indexer:
        index = indexer.index
        assert index.doc_count() == ARTICLE_COUNT
        before = generation(root)

        def whole_while_building(done: int, total: int) -> None:
            # The new generation has documents in it now, but is not visible yet.
            assert (done, total) == (ARTICLE_COUNT, ARTICLE_COUNT)
            assert generation(root) == before
            assert index.doc_count() == ARTICLE_COUNT
            with index.reading():
                assert len(index.run_query(q.Term("kind", "article"), limit=1)) == ARTICLE_COUNT

        rebuilding = asyncio.create_task(indexer.rebuild(progress=whole_while_building))
        totals: list[int] = []
        during = 0

        async def searching() -> None:
            nonlocal during
            while True:
                finished = rebuilding.done()
                async with db.read() as session:
                    results = await search(
                        session=session,
                        principal=ANONYMOUS_VIEWER,
                        index=index,
                        text="heartbeat",
                        first=5,
                    )
                assert len(results.hits) == 5
                totals.append(results.total)
                if finished:
                    return
                during += 1

        await asyncio.wait_for(asyncio.gather(searching(), searching(), searching()), 30)
        assert await rebuilding == ARTICLE_COUNT
        assert during > 0, "no search ran while the rebuild did"
        assert set(totals) == {ARTICLE_COUNT}
        after = generation(root)
        assert after != before
        assert generations(root) == [after], "the old generation is removed"
        assert index.last_seq() == await max_outbox_id(db)
        assert await found(db, index, "shard 117 heartbeats", first=1) == [
            "Heartbeat timeouts on shard 117"
        ]


# --- knownfix reindex -----------------------------------------------------------------


async def knownfix(*argv: str) -> int:
    """Run the CLI in a thread: it starts its own event loop, as it does in a shell."""
    return await asyncio.to_thread(main, list(argv))


async def test_knownfix_reindex_builds_an_index_a_fresh_process_can_search(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(db, GLACIER, QUOKKA)
    await draft(db, *KESTREL)
    root = tmp_path / "index"
    argv = ("reindex", "--database-url", db.url, "--index-dir", str(root))

    assert await knownfix(*argv) == 0
    assert f"indexed 3 documents into {root}" in capsys.readouterr().out
    first_generation = generation(root)

    index = SearchIndex(root)
    assert await asyncio.to_thread(index.open), "the index opens as it is, without a rebuild"
    try:
        assert index.last_seq() == await max_outbox_id(db)
        assert index.doc_count() == 3
        assert await found(db, index, "multipart chunk") == [GLACIER[0]]
        assert await found(db, index, "quokka") == [QUOKKA[0]]
        assert await found(db, index, "kestrel") == []

        # Reindexing again swaps a new generation in under the open index.
        await publish(db, MARMOT)
        assert await knownfix(*argv) == 0
        assert "indexed 4 documents" in capsys.readouterr().out
        assert generations(root) == [generation(root)] != [first_generation]
        assert index.last_seq() == await max_outbox_id(db)
        assert await found(db, index, "marmot cron") == [MARMOT[0]]
    finally:
        index.close()

    # An indexer started on it afterwards has nothing to rebuild or catch up.
    indexer = Indexer(db, SearchIndex(root), poll_interval=NEVER)
    await indexer.start()
    try:
        assert await indexer.catch_up() == 0
        assert indexer.index.doc_count() == 4
    finally:
        await indexer.stop()
    assert len(generations(root)) == 1
