"""Old outbox rows are deleted; an index replica that had not applied them rebuilds.

The outbox is the log every index replica (one per host) follows. Rows older than
the retention go, oldest first; a replica whose host was down for longer would
otherwise skip what was deleted and stay wrong for good, so it starts again from
the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.cli import main
from knowledge.config import ConfigError, Settings
from knowledge.db import Database, utcnow
from knowledge.outbox.models import OutboxEntry, OutboxPrune
from knowledge.outbox.service import prune, pruned_through
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer
from tests.knowledge.search.support import (
    NEVER,
    found,
    generation,
    max_outbox_id,
    outbox_ids,
    publish,
    running,
)

OTTER = (
    "Otter ingest queue backs up after a schema change",
    "## Symptoms\nThe ingest queue grows.\n## Resolution\nRoll consumers forward first.",
)
HERON = (
    "Heron proxy returns 502 on long uploads",
    "## Symptoms\nUploads over a minute fail.\n## Resolution\nRaise the proxy read timeout.",
)
BADGER = (
    "Badger DNS resolver caches a stale address",
    "## Symptoms\nCalls go to a retired host.\n## Resolution\nFlush the resolver.",
)
WEEK = dt.timedelta(days=7)


async def age(db: Database, ids: list[int], days: int = 8) -> None:
    """Make rows look as if they were recorded ``days`` ago."""
    async with db.transaction() as session:
        await session.execute(
            sa.update(OutboxEntry)
            .where(OutboxEntry.id.in_(ids))
            .values(created_at=utcnow() - dt.timedelta(days=days))
        )


async def horizon(db: Database) -> int:
    async with db.read() as session:
        return await pruned_through(session=session)


async def test_only_the_oldest_run_of_old_rows_goes_and_how_far_is_recorded(db: Database) -> None:
    # given rows for three articles; the first two's are old, and so is the very last
    # row, recorded after young ones (ids can commit out of order on PostgreSQL)
    await publish(db, OTTER)
    await publish(db, HERON)
    old = await outbox_ids(db)
    await publish(db, BADGER)
    young = [i for i in await outbox_ids(db) if i not in old]
    await age(db, [*old, young[-1]])

    # when the outbox is pruned a row at a time
    deleted = await prune(db=db, older_than=utcnow() - WEEK, batch=1)

    # then the old run went, the old row behind young ones waits, and the prune is recorded
    assert deleted == len(old)
    assert await outbox_ids(db) == young
    assert await horizon(db) == old[-1]
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(OutboxPrune)) == 1
    assert await prune(db=db, older_than=utcnow() - WEEK) == 0, "nothing more is old"


async def test_a_replica_behind_what_was_pruned_rebuilds_instead_of_missing_it(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root):
        pass  # the host's index, built and up to date; then the host goes down
    # given changes made while the replica was down, pruned before it came back
    await publish(db, HERON)
    await prune(db=db, older_than=utcnow())
    assert await outbox_ids(db) == []
    before = generation(root)

    # when it comes back, then it rebuilds from the database and misses nothing
    async with running(db, root) as indexer:
        assert generation(root) != before
        assert await found(db, indexer.index, "heron uploads") == [HERON[0]]
        assert indexer.index.last_seq() >= await horizon(db)
        # and afterwards follows the outbox as usual, without rebuilding again
        rebuilt = generation(root)
        await publish(db, BADGER)
        assert await indexer.catch_up() > 0
        assert generation(root) == rebuilt
        assert await found(db, indexer.index, "badger resolver") == [BADGER[0]]


async def test_a_replica_that_applied_the_pruned_rows_just_carries_on(
    db: Database, tmp_path: Path
) -> None:
    await publish(db, OTTER, HERON)
    async with running(db, tmp_path / "index") as indexer:
        before = generation(indexer.index.root)
        await prune(db=db, older_than=utcnow())

        assert await indexer.catch_up() == 0
        assert generation(indexer.index.root) == before
        await publish(db, BADGER)
        assert await indexer.catch_up() > 0
        assert await found(db, indexer.index, "badger resolver") == [BADGER[0]]


async def test_the_index_writer_prunes_what_it_has_applied(db: Database, tmp_path: Path) -> None:
    await publish(db, OTTER)
    writer = Indexer(
        db, SearchIndex(tmp_path / "index"), poll_interval=NEVER, outbox_retention=dt.timedelta(0)
    )
    last = await max_outbox_id(db)
    await writer.start()
    try:
        assert await outbox_ids(db) == []
        assert await horizon(db) == last
        assert await found(db, writer.index, "otter ingest") == [OTTER[0]]
    finally:
        await writer.stop()


async def test_knownfix_outbox_prune_deletes_rows_past_the_retention(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(db, OTTER)
    old = await outbox_ids(db)
    await age(db, old, days=10)
    await publish(db, HERON)
    argv = ["outbox", "prune", "--database-url", db.url, "--older-than-days", "9"]

    assert await asyncio.to_thread(main, argv) == 0

    assert f"pruned {len(old)} outbox rows older than 9 days" in capsys.readouterr().out
    assert await horizon(db) == old[-1]


def test_the_retention_is_configured_in_days_and_zero_keeps_rows_for_ever() -> None:
    assert Settings.from_env({}).outbox_retention == WEEK
    days = Settings.from_env({"KNOWNFIX_OUTBOX_RETENTION_DAYS": "30"})
    assert days.outbox_retention == dt.timedelta(days=30)
    assert Settings.from_env({"KNOWNFIX_OUTBOX_RETENTION_DAYS": "0"}).outbox_retention is None
    with pytest.raises(ConfigError, match="KNOWNFIX_OUTBOX_RETENTION_DAYS"):
        Settings.from_env({"KNOWNFIX_OUTBOX_RETENTION_DAYS": "a week"})
