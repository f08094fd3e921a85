"""Helpers for the search tests: publishing articles, reading the index, finding hits."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa

from knowledge.accounts.principal import ANONYMOUS_VIEWER, SYSTEM, Principal
from knowledge.articles.service import ArticleDraft, Transition, create, transition
from knowledge.db import Database
from knowledge.outbox.models import OutboxEntry
from knowledge.search.index import CURRENT, SearchIndex
from knowledge.search.service import search
from knowledge.search.sync import Indexer

# Long enough that the follower never runs on its own during a test: tests call
# ``catch_up`` when they want the outbox applied.
NEVER = 3600.0


async def publish(db: Database, *articles: tuple[str, str]) -> list[int]:
    """Create and publish articles (title, body) in one committed transaction."""
    ids = []
    async with db.transaction() as session:
        for title, body in articles:
            article = await create(
                session=session, principal=SYSTEM, draft=ArticleDraft(title=title, body=body)
            )
            await transition(
                session=session,
                principal=SYSTEM,
                article_id=article.id,
                action=Transition.PUBLISH,
            )
            ids.append(article.id)
    return ids


async def draft(db: Database, title: str, body: str) -> int:
    async with db.transaction() as session:
        article = await create(
            session=session, principal=SYSTEM, draft=ArticleDraft(title=title, body=body)
        )
    return article.id


async def max_outbox_id(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(sa.select(sa.func.max(OutboxEntry.id))) or 0)


async def outbox_ids(db: Database) -> list[int]:
    async with db.read() as session:
        return list(await session.scalars(sa.select(OutboxEntry.id).order_by(OutboxEntry.id)))


async def found(
    db: Database,
    index: SearchIndex,
    text: str,
    *,
    principal: Principal = ANONYMOUS_VIEWER,
    first: int = 20,
) -> list[str]:
    """Titles of the hits for ``text``, best first, through the real search service."""
    async with db.read() as session:
        results = await search(
            session=session, principal=principal, index=index, text=text, first=first
        )
    return [hit.entity.title for hit in results.hits]


def generation(root: Path) -> str:
    return os.readlink(root / CURRENT)


def generations(root: Path) -> list[str]:
    return sorted(path.name for path in root.glob("gen-*"))


@asynccontextmanager
async def running(db: Database, root: Path, *, gap_timeout: float = 30.0) -> AsyncIterator[Indexer]:
    """An indexer started on ``root`` (opened, rebuilt if needed, caught up), then stopped."""
    indexer = Indexer(db, SearchIndex(root), poll_interval=NEVER, gap_timeout=gap_timeout)
    await indexer.start()
    try:
        yield indexer
    finally:
        await indexer.stop()


def titles(articles: Sequence[tuple[str, str]]) -> list[str]:
    return [title for title, _ in articles]


def on_disk(root: Path) -> tuple[int, int]:
    """(last applied seq, document count) as a newly opened index reads them from disk."""
    index = SearchIndex(root)
    assert index.open(), f"the index under {root} is readable"
    try:
        return index.last_seq(), index.doc_count()
    finally:
        index.close()
