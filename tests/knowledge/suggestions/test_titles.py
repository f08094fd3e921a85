"""The title signal reads the vectors the index writer stored, and encodes only what
it must: the draft's title, and a target's whose document has no usable vector."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from knowledge.accounts.principal import SYSTEM
from knowledge.articles.models import Article
from knowledge.db import Database
from knowledge.search.documents import article_document
from knowledge.semantic.encoder import Encoder, Vectors
from knowledge.suggestions.service import Draft, Suggestion, suggest
from tests.knowledge.search.support import publish, running

DRAFT = "Services cannot log in after the secret was changed"
PASSWORD = (
    "Database password authentication fails after a credential rotation",
    "## Symptoms\nServices cannot log in to the database.\n## Resolution\nRestart the pods.",
)
POOL = (
    "Orders API cannot reach its database: connection pool exhausted",
    "## Symptoms\nRequests queue for a connection.\n## Resolution\nRaise the pool size.",
)


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the encoder is asked for, in order (it still encodes them)."""
    texts: list[str] = []
    real = Encoder.encode

    def encode(self: Encoder, batch: Sequence[str]) -> Vectors:
        texts.extend(batch)
        return real(self, batch)

    monkeypatch.setattr(Encoder, "encode", encode)
    return texts


def title_signal(found: list[Suggestion], article_id: int) -> float:
    best = next(s for s in found if s.key == f"article:{article_id}")
    return next(s.value for s in best.signals if s.name == "title")


async def test_a_suggestion_encodes_only_the_drafts_title(
    db: Database, tmp_path: Path, encoded: list[str]
) -> None:
    password, pool = await publish(db, PASSWORD, POOL)
    async with running(db, tmp_path / "index") as indexer:
        encoded.clear()
        async with db.read() as session:
            found = await suggest(
                session=session, principal=SYSTEM, index=indexer.index, draft=Draft(DRAFT)
            )
    assert encoded == [DRAFT], "the targets' vectors come from the index"
    assert title_signal(found, password) == 1.0
    assert 0 < title_signal(found, pool) < 1.0


@pytest.mark.parametrize("stored", [b"", np.ones(8, np.float16).tobytes()])
async def test_a_target_without_a_usable_vector_is_encoded_then(
    db: Database, tmp_path: Path, encoded: list[str], stored: bytes
) -> None:
    """An index written before vectors were stored, or by a model of another size."""
    password, pool = await publish(db, PASSWORD, POOL)
    async with running(db, tmp_path / "index") as indexer:
        index = indexer.index
        async with db.read() as session:
            before = await suggest(session=session, principal=SYSTEM, index=index,
                                   draft=Draft(DRAFT))  # fmt: skip
            article = await session.get(Article, pool)
            assert article is not None
            document = article_document(article, [], [], meaning=stored)
        await asyncio.to_thread(index.apply, [document], [], index.last_seq())
        encoded.clear()
        async with db.read() as session:
            after = await suggest(session=session, principal=SYSTEM, index=index,
                                  draft=Draft(DRAFT))  # fmt: skip
    assert encoded == [DRAFT, POOL[0]]
    assert title_signal(after, pool) == pytest.approx(title_signal(before, pool), abs=1e-3)
    assert title_signal(after, password) == 1.0
