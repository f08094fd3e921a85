"""Long queries keep their most informative words; facets are computed only on request."""

from __future__ import annotations

from pathlib import Path

from knowledge.accounts.principal import ANONYMOUS_VIEWER, SYSTEM
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.db import Database
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer

COMMON = "the service is failing and the service returns an error for the request"


async def seeded(db: Database, root: Path) -> Indexer:
    async with db.transaction() as session:
        for n, title in enumerate(
            ["Zookeeper quorum lost", *[f"Generic outage {i}" for i in range(8)]]
        ):
            body = f"## Symptoms\n{COMMON} {'zookeeper quorum' if n == 0 else ''}"
            article = await articles.create(session=session, principal=SYSTEM,
                                            draft=ArticleDraft(title=title, body=body))  # fmt: skip
            await articles.transition(session=session, principal=SYSTEM, article_id=article.id,
                                      action=Transition.PUBLISH)  # fmt: skip
    indexer = Indexer(db, SearchIndex(root))
    await indexer.start()
    return indexer


async def test_a_long_query_keeps_its_rarest_words(db: Database, tmp_path: Path) -> None:
    indexer = await seeded(db, tmp_path / "index")
    try:
        text = f"{COMMON} zookeeper quorum"
        kept = search.informative_words(indexer.index, text, keep=3)
        assert "zookeeper" in kept.split()
        assert "quorum" in kept.split()
        assert len(kept.split()) == 3
        assert (
            search.informative_words(indexer.index, "zookeeper quorum", keep=3)
            == "zookeeper quorum"
        )
        phrase = f'"{COMMON}" zookeeper'
        assert search.informative_words(indexer.index, phrase, keep=3) == phrase
        async with db.read() as session:
            found = await search.search(session=session, principal=ANONYMOUS_VIEWER,
                                        index=indexer.index, text=text, first=1)  # fmt: skip
        assert [h.entity.title for h in found.hits] == ["Zookeeper quorum lost"]
    finally:
        await indexer.stop()


async def test_preferred_words_are_kept_before_rarer_ones(db: Database, tmp_path: Path) -> None:
    # A pasted log's rarest words are its ids and counters; what its error lines say
    # is kept first, then the rarest of the rest.
    indexer = await seeded(db, tmp_path / "index")
    try:
        text = f"{COMMON} zookeeper quorum"
        prefer = frozenset({"service", "request"})
        kept = search.informative_words(indexer.index, text, keep=3, prefer=prefer).split()
        assert len(kept) == 3
        assert {"service", "request"} <= set(kept)
        assert {"zookeeper", "quorum"} & set(kept)
        assert set(search.informative_words(indexer.index, text, keep=3).split()) >= {
            "zookeeper",
            "quorum",
        }
    finally:
        await indexer.stop()


async def test_a_cut_query_keeps_identifiers_as_written(db: Database, tmp_path: Path) -> None:
    # "ZookeeperQuorum" is only rare, and only splits into its words, with its capitals.
    indexer = await seeded(db, tmp_path / "index")
    try:
        text = f"{COMMON} ZookeeperQuorum Error error ERROR"
        kept = search.informative_words(indexer.index, text, keep=2).split()
        assert "ZookeeperQuorum" in kept
        assert sum(w.lower() == "error" for w in kept) <= 1, "one word, whatever its case"
    finally:
        await indexer.stop()


async def test_facets_are_only_counted_when_asked_for(db: Database, tmp_path: Path) -> None:
    indexer = await seeded(db, tmp_path / "index")
    try:
        async with db.read() as session:
            without = await search.search(session=session, principal=ANONYMOUS_VIEWER,
                                          index=indexer.index, text="outage", with_facets=False)  # fmt: skip
            with_ = await search.search(session=session, principal=ANONYMOUS_VIEWER,
                                        index=indexer.index, text="outage")  # fmt: skip
        assert without.facets == {}
        assert set(with_.facets) == {"category", "service", "tags"}
        assert [h.entity.id for h in without.hits] == [h.entity.id for h in with_.hits]
    finally:
        await indexer.stop()


async def test_totals_count_only_what_the_caller_may_see_with_or_without_facets(
    db: Database, tmp_path: Path
) -> None:
    indexer = await seeded(db, tmp_path / "index")
    try:
        async with db.transaction() as session:
            await articles.create(session=session, principal=SYSTEM,
                                  draft=ArticleDraft(title="Generic outage draft", body="outage"))  # fmt: skip
        await indexer.catch_up()
        async with db.read() as session:
            totals = [
                (
                    await search.search(
                        session=session,
                        principal=ANONYMOUS_VIEWER,
                        index=indexer.index,
                        text="outage",
                        first=1,
                        with_facets=facets,
                    )
                ).total
                for facets in (True, False)
            ]
        assert totals == [8, 8]
    finally:
        await indexer.stop()
