"""The suggestion searches (``match``): what a filtered search with the whole query finds,
with the same scores, while the postings budget cuts nothing; and the rarest terms
when it does."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from whoosh import query as q

from knowledge.accounts.principal import SYSTEM
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.query import parse

WORDS = [
    "redis", "timeout", "replica", "quorum", "kafka", "broker", "offset", "nginx", "upstream",
    "socket", "postgres", "vacuum", "deadlock", "tls", "handshake", "certificate", "expired",
    "disk", "full", "inode", "cron", "backup", "dns", "lookup",
]  # fmt: skip
STATUSES = {"article": "published", "known_error": "open", "incident": "resolved"}


def document(n: int, rng: random.Random) -> dict[str, object]:
    kind = ("article", "known_error", "incident")[n % 3]
    return {
        "key": f"{kind}:{n}", "kind": kind, "status": STATUSES[kind], "category": "",
        "services": "", "tags": "", "title": " ".join(rng.sample(WORDS, 3)),
        "symptoms": " ".join(rng.choices(WORDS, k=12)), "body": " ".join(rng.choices(WORDS, k=30)),
    }  # fmt: skip


@contextlib.contextmanager
def built(root: Path, documents: Iterable[dict[str, object]]) -> Iterator[SearchIndex]:
    """An index holding ``documents``, built the way a rebuild builds it."""
    index = SearchIndex(root)
    index.open()
    rebuild = index.begin_rebuild()
    rebuild.add(documents)
    rebuild.finish(1)
    try:
        yield index
    finally:
        index.close()


def test_matches_equal_a_filtered_search_within_the_budget(tmp_path: Path) -> None:
    rng = random.Random(7)  # noqa: S311 (test text, not security)
    filters = [
        (search.SearchFilter(kinds=["article", "known_error"]), 20),
        (search.SearchFilter(kinds=["incident"]), 11),
    ]
    visible = [(search._visibility(SYSTEM, f), limit) for f, limit in filters]
    with built(tmp_path / "index", (document(n, rng) for n in range(600))) as index:
        for text in ("redis replica timeout", "tls certificate expired dns", "vacuum deadlock"):
            found, _ = search._match_many(index, text, visible, max_terms=32, budget=10**9)
            with index.reading():
                parsed, _ = parse(index.schema, text)
                expected = [
                    [(h["key"], round(h.score, 6)) for h in index.run_query(
                        parsed, limit=limit, filter=allowed)]
                    for allowed, limit in visible
                ]  # fmt: skip
            assert [[(m.key, round(m.score, 6)) for m in hits] for hits in found] == expected
            assert all(len(hits) == limit for hits, (_, limit) in zip(found, filters, strict=True))


def test_the_budget_keeps_the_rarest_terms(tmp_path: Path) -> None:
    rng = random.Random(3)  # noqa: S311 (test text, not security)
    documents = [document(n, rng) for n in range(300)]
    documents.append(document(300, rng) | {"key": "article:300", "title": "zookeeper quorum lost"})
    visible = [(search._visibility(SYSTEM, search.SearchFilter(kinds=["article"])), 5)]
    with built(tmp_path / "index", documents) as index:
        with index.reading():
            wanted = search.plain_terms("redis zookeeper")
            cut = search._affordable(wanted, index.doc_frequency, budget=20)
            absent = search.plain_terms("xylophone")
            unknown = search._affordable(absent, index.doc_frequency, budget=20)
        assert [(t.field, t.text) for t in cut] == [("title", "zookeep")]
        assert unknown == []
        found, _ = search._match_many(index, "redis zookeeper", visible, max_terms=32, budget=20)
        assert [m.key for m in found[0]] == ["article:300"]
        everything, _ = search._match_many(index, "redis zookeeper", visible, 32, budget=10**9)
        assert len(everything[0]) == 5


def test_no_visible_document_means_no_match(tmp_path: Path) -> None:
    # An empty allowed set is no filter at all to Whoosh: the incident search of an
    # index without incidents would return articles.
    rng = random.Random(5)  # noqa: S311 (test text, not security)
    articles_only = (document(n, rng) for n in range(0, 60, 3))
    filters = [search.SearchFilter(kinds=["incident"]), search.SearchFilter(kinds=["article"])]
    visible = [(search._visibility(SYSTEM, f), 5) for f in filters]
    with built(tmp_path / "index", articles_only) as index:
        (incidents, articles), _ = search._match_many(index, "redis timeout", visible, 32)
        assert incidents == []
        assert articles
        assert all(m.key.startswith("article:") for m in articles)


def test_plain_terms_are_the_terms_the_parser_makes_of_plain_words() -> None:
    # The suggestion searches build their query without the parser: they must look for
    # exactly what a search of the same words looks for, in the same order.
    vocabulary = [
        "PublicKeyRetrieval", "is", "not", "allowed", "error_code", "0x1F", "the", "a", "of",
        "ER_NOT_SUPPORTED_AUTH_MODE", "redis", "Redis", "timeout", "设置redis", "72로", "über",
        "Straße", "retrieval", "retrieve", "x", "42", "HTTPServer", "utf8mb4",
    ]  # fmt: skip
    schema = SearchIndex(Path("unused")).schema
    rng = random.Random(1)  # noqa: S311 (test text, not security)
    for _ in range(500):
        text = " ".join(rng.choices(vocabulary, k=rng.randint(1, 12)))
        parsed, plain = parse(schema, text)
        assert plain is False  # no syntax characters: the same parser as a search box's
        leaves = parsed.subqueries if isinstance(parsed, q.Or) else [parsed]
        expected = [(t.fieldname, t.text, t.boost) for t in leaves]
        assert [(t.field, t.text, t.boost) for t in search.plain_terms(text)] == expected
