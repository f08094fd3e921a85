"""The indexer follows the outbox: in order, across gaps, and without losing late commits.

On PostgreSQL, ids from a sequence can commit out of order; the last applied id
must not move past a gap until the gap is old enough (``gap_timeout``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import SYSTEM
from knowledge.articles.models import Article
from knowledge.articles.service import ArticleDraft, Transition, create, transition, update
from knowledge.db import Database
from knowledge.outbox.models import OutboxEntry, OutboxOp
from tests.conftest import TEST_DATABASE_URL
from tests.knowledge.search.support import (
    found,
    max_outbox_id,
    on_disk,
    outbox_ids,
    publish,
    running,
)

postgresql_only = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="only PostgreSQL commits sequence ids out of order"
)

OTTER = (
    "Otter ingest queue backs up after a schema change",
    "## Symptoms\nThe ingest queue grows and consumers log decode failures.\n"
    "## Resolution\nRoll consumers forward to the new schema first.",
)
HERON = (
    "Heron proxy returns 502 on long uploads",
    "## Symptoms\nUploads over a minute fail with bad gateway.\n"
    "## Resolution\nRaise the proxy read timeout for the upload route.",
)
BADGER = (
    "Badger DNS resolver caches a stale address",
    "## Symptoms\nCalls keep going to a retired host after a migration.\n"
    "## Resolution\nLower the negative cache TTL and flush the resolver.",
)


async def durable_seq(root: Path) -> int:
    seq, _ = await asyncio.to_thread(on_disk, root)
    return seq


async def remove_outbox_rows(db: Database, ids: list[int]) -> list[tuple[str, int]]:
    """Take rows out as if their transaction had not committed yet; returns what they named."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                sa.select(OutboxEntry.entity_type, OutboxEntry.entity_id)
                .where(OutboxEntry.id.in_(ids))
                .order_by(OutboxEntry.id)
            )
        ).all()
        await session.execute(sa.delete(OutboxEntry).where(OutboxEntry.id.in_(ids)))
    return [(kind, entity_id) for kind, entity_id in rows]


async def commit_late(db: Database, entry_id: int, kind: str, entity_id: int) -> None:
    """The transaction that held ``entry_id`` commits after the rows behind it."""
    async with db.transaction() as session:
        session.add(
            OutboxEntry(id=entry_id, entity_type=kind, entity_id=entity_id, op=OutboxOp.UPSERT)
        )


# --- the gap rule -------------------------------------------------------------------


async def test_the_last_applied_id_waits_at_a_young_gap_until_the_gap_is_filled(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root, gap_timeout=60) as indexer:
        base = await durable_seq(root)
        assert base == await max_outbox_id(db)
        await publish(db, HERON)
        await publish(db, BADGER)
        ids = await outbox_ids(db)
        heron, badger = ids[-4:-2], ids[-2:]
        assert heron == [base + 1, base + 2]
        # BADGER's first row is not visible yet: a gap after HERON's rows.
        [late] = await remove_outbox_rows(db, [badger[0]])

        await indexer.catch_up()
        assert await durable_seq(root) == heron[-1], "up to the gap, not past it"
        # Rows beyond a young gap are applied already (and will be looked at again).
        assert await found(db, indexer.index, "badger resolver") == [BADGER[0]]
        assert await found(db, indexer.index, "heron") == [HERON[0]]

        await indexer.catch_up()
        assert await durable_seq(root) == heron[-1], "a young gap still holds it"

        await commit_late(db, badger[0], *late)
        await indexer.catch_up()
        assert await durable_seq(root) == badger[-1]


async def test_a_gap_older_than_the_timeout_is_skipped(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root, gap_timeout=60) as indexer:
        await publish(db, HERON)
        heron = (await outbox_ids(db))[-2:]
        await remove_outbox_rows(db, [heron[0]])  # a rolled-back transaction's id

        await indexer.catch_up()
        before = await durable_seq(root)
        assert before == heron[0] - 1
        assert await found(db, indexer.index, "heron") == [HERON[0]]

        # The same indexer, once the gap it saw is older than the timeout, moves on.
        indexer.gap_timeout = 0
        await indexer.catch_up()
        assert await durable_seq(root) == heron[-1]


async def test_with_no_gap_timeout_a_gap_never_holds_the_last_applied_id(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root, gap_timeout=0) as indexer:
        await publish(db, HERON, BADGER)
        ids = await outbox_ids(db)
        await remove_outbox_rows(db, [ids[-3]])
        await indexer.catch_up()
        assert await durable_seq(root) == ids[-1]
        assert await found(db, indexer.index, "badger") == [BADGER[0]]
        assert await found(db, indexer.index, "heron") == [HERON[0]]


# --- real out-of-order commits (PostgreSQL) -----------------------------------------


async def create_published(session: AsyncSession, article: tuple[str, str]) -> int:
    title, body = article
    created = await create(
        session=session, principal=SYSTEM, draft=ArticleDraft(title=title, body=body)
    )
    await transition(
        session=session, principal=SYSTEM, article_id=created.id, action=Transition.PUBLISH
    )
    return created.id


@postgresql_only
async def test_an_outbox_id_that_commits_after_later_ids_is_not_lost(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root, gap_timeout=60) as indexer:
        base = await durable_seq(root)
        async with db.transaction() as slow:
            await create_published(slow, HERON)  # takes the next ids, commits last
            await publish(db, BADGER)
            await indexer.catch_up()
            assert await found(db, indexer.index, "badger") == [BADGER[0]]
            assert await found(db, indexer.index, "heron") == []
            assert await durable_seq(root) == base
        await indexer.catch_up()
        assert await found(db, indexer.index, "heron") == [HERON[0]]
        assert await durable_seq(root) == await max_outbox_id(db)


@postgresql_only
async def test_a_rebuild_does_not_skip_an_outbox_id_still_in_flight(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root, gap_timeout=60) as indexer:
        async with db.transaction() as slow:
            await create_published(slow, HERON)
            await publish(db, BADGER)
            await indexer.rebuild()
            assert await found(db, indexer.index, "badger") == [BADGER[0]]
        await indexer.catch_up()
        assert await found(db, indexer.index, "heron") == [HERON[0]]
        assert await durable_seq(root) == await max_outbox_id(db)


# --- the running indexer's own view -------------------------------------------------

STALE_SEARCHER = (
    "SearchIndex.searcher() uses Searcher.refresh(), which reuses segment readers by "
    "segment id and so keeps their old deletions: replaced and deleted documents stay "
    "visible until a merge or a reopen"
)


async def test_an_edited_or_retired_article_is_found_once_and_then_not_at_all(
    db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    [otter] = await publish(db, OTTER)
    async with running(db, root) as indexer:
        async with db.transaction() as session:
            article = await session.get(Article, otter)
            assert article is not None
            await update(
                session=session,
                principal=SYSTEM,
                article_id=otter,
                expected_version=article.version,
                draft=ArticleDraft(summary="Consumers choke on the new schema."),
            )
        await indexer.catch_up()
        assert await found(db, indexer.index, "otter") == [OTTER[0]]

        async with db.transaction() as session:
            await transition(
                session=session, principal=SYSTEM, article_id=otter, action=Transition.RETIRE
            )
        await indexer.catch_up()
        assert await found(db, indexer.index, "otter") == [], "retired: not in default search"


async def test_the_running_index_reports_what_it_has_applied(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "index"
    await publish(db, OTTER)
    async with running(db, root) as indexer:
        await publish(db, HERON)
        assert await indexer.catch_up() == 2
        # What is on disk is right; the running index must say the same.
        assert await asyncio.to_thread(on_disk, root) == (await max_outbox_id(db), 2)
        assert (indexer.index.last_seq(), indexer.index.doc_count()) == (
            await max_outbox_id(db),
            2,
        )
        await publish(db, BADGER)
        assert await indexer.catch_up() == 2, "only the new rows, not everything again"
