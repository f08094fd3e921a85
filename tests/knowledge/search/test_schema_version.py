"""An index built for another schema version (other fields or analyzers) is not trusted:
it is rebuilt from the database when it is opened, and an index of this version is not."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from whoosh import index as whoosh_index

from knowledge.db import Database
from knowledge.search.index import SearchIndex
from knowledge.search.schema import META_KEY, SCHEMA_VERSION, meta_document
from tests.knowledge.search.support import (
    found,
    generation,
    generations,
    max_outbox_id,
    publish,
    running,
)

PARSER = (
    "Parser rejects ER_NOT_SUPPORTED_AUTH_MODE from the replica",
    "## Symptoms\nThe client fails with ER_NOT_SUPPORTED_AUTH_MODE.\n"
    "## Resolution\nSwitch the account to mysql_native_password.",
)
HERON = (
    "Heron uploads stall behind the proxy",
    "## Symptoms\nLarge uploads hang at the proxy.\n## Resolution\nRaise the body size limit.",
)


def stamp(folder: Path, version: str) -> None:
    """Rewrite the meta document as an older build of Knownfix would have left it."""
    ix = whoosh_index.open_dir(str(folder))
    with ix.searcher() as searcher:
        meta = searcher.document(key=META_KEY)
    assert meta is not None
    with ix.writer() as writer:
        writer.update_document(**{**meta_document(int(meta["seq"])), "status": version})


def stamped(root: Path) -> str:
    ix = whoosh_index.open_dir(str(root / generation(root)))
    with ix.searcher() as searcher:
        meta = searcher.document(key=META_KEY)
    assert meta is not None
    return str(meta["status"])


async def test_an_index_of_another_schema_version_is_rebuilt_on_open(
    db: Database, tmp_path: Path
) -> None:
    # given an index built and caught up, then stamped with an older schema version
    root = tmp_path / "index"
    await publish(db, PARSER, HERON)
    async with running(db, root) as indexer:
        assert indexer.index.doc_count() == 2
    old_generation = generation(root)
    await asyncio.to_thread(stamp, root / old_generation, "1-plain-words")

    # when a copy of it is opened, it says it could not be used as it is
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    index = SearchIndex(copy)
    try:
        assert await asyncio.to_thread(index.open) is False
    finally:
        await asyncio.to_thread(index.close)

    # then the indexer's start builds a new generation from the database
    async with running(db, root) as indexer:
        assert indexer.last_error is None
        assert generation(root) != old_generation
        assert indexer.index.doc_count() == 2
        assert indexer.index.last_seq() == await max_outbox_id(db)
        # ... analysed as this version does: the identifier's words find it
        assert await found(db, indexer.index, "auth mode not supported") == [PARSER[0]]
        assert await found(db, indexer.index, "heron proxy") == [HERON[0]]
    assert generations(root) == [generation(root)], "the old generation is removed"
    assert await asyncio.to_thread(stamped, root) == SCHEMA_VERSION


async def test_an_index_of_this_schema_version_is_opened_as_it_is(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, PARSER, HERON)
    async with running(db, root):
        pass
    before = generation(root)
    await asyncio.to_thread(stamp, root / before, SCHEMA_VERSION)

    index = SearchIndex(root)
    try:
        assert await asyncio.to_thread(index.open) is True
        assert index.doc_count() == 2
    finally:
        await asyncio.to_thread(index.close)
    async with running(db, root) as indexer:
        assert await found(db, indexer.index, "heron") == [HERON[0]]
    assert generation(root) == before, "not rebuilt"
