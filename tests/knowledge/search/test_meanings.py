"""The index writer keeps each article's and known error's title vector with its document
(a known error's without its key)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge.accounts.principal import SYSTEM
from knowledge.articles.models import Article
from knowledge.articles.service import ArticleDraft, update
from knowledge.db import Database
from knowledge.known_errors import service as known_errors
from knowledge.search.index import SearchIndex
from tests.knowledge.search.support import publish, running

OTTER = ("Otter ingest queue backs up after a schema change", "## Symptoms\nThe queue grows.")


def meanings(index: SearchIndex, *keys: str) -> dict[str, np.ndarray]:
    with index.reading():
        return index.meanings(keys)


def assert_meaning(index: SearchIndex, key: str, title: str) -> None:
    # Stored as float16: three decimals of each unit vector's 384 components.
    np.testing.assert_allclose(
        meanings(index, key)[key], index.sentences.encode([title])[0], atol=1e-3
    )


async def test_the_writer_stores_the_title_vector_and_renews_it_with_the_title(
    db: Database, tmp_path: Path
) -> None:
    [otter] = await publish(db, OTTER)
    async with db.transaction() as session:
        error = await known_errors.create(
            session=session, principal=SYSTEM,
            draft=known_errors.KnownErrorDraft(title="Disk full on the ingest hosts"),
        )  # fmt: skip
    async with running(db, tmp_path / "index") as indexer:
        index = indexer.index
        assert_meaning(index, f"article:{otter}", OTTER[0])
        assert_meaning(index, f"known_error:{error.id}", error.title)
        assert meanings(index, "article:999999") == {}, "not indexed: nothing to compare"

        async with db.transaction() as session:
            article = await session.get(Article, otter)
            assert article is not None
            await update(
                session=session, principal=SYSTEM, article_id=otter,
                expected_version=article.version,
                draft=ArticleDraft(title="Otter consumers reject messages of the new schema"),
            )  # fmt: skip
        await indexer.catch_up()
        assert_meaning(
            index, f"article:{otter}", "Otter consumers reject messages of the new schema"
        )

        await indexer.rebuild()
        assert_meaning(
            index, f"article:{otter}", "Otter consumers reject messages of the new schema"
        )
        assert_meaning(index, f"known_error:{error.id}", error.title)
