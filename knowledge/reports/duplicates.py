"""Possible duplicate articles: published pairs whose text or error signatures overlap.

Two routes to a pair, neither comparing every article with every other:

- signatures: each published article's curated error signatures, normalised,
  go into a dictionary; articles under one signature pair up (the first
  ``MAX_PER_SIGNATURE`` by id, so a generic line cannot make thousands of pairs).
  One narrow query and O(n) work over the whole knowledge base.
- text: the articles edited in the window (the newest ``MAX_SOURCES``) each ask the
  search index for their ``CANDIDATES`` closest published articles, the index doing
  the pruning; a candidate pair is kept when the cosine of the two articles' whole
  TF-IDF vectors is at least ``TEXT_SIMILARITY``. Fifty index queries at most, each
  of the rarest words of the title, summary and curated signatures (what an article
  is about): on a loaded machine with 1,000 synthetic articles of a small vocabulary
  a query of the body's rarest words took ~70 ms, one of the title ~20 ms, ~100 ms
  with 5,000 (DESIGN.md: ~34 ms for 6 terms over 20k real documents).

An article edited in the window is compared with the whole knowledge base, so a
new article that repeats an old one shows up; two old articles that have not
changed were reported in the window they were written. Pairs rank by overlap:
1.0 for a shared signature, else the text cosine.

Only the text candidates get TF-IDF vectors (``MAX_SOURCES * CANDIDATES`` pairs at
most): a pair found by a signature alone already scores 1.0, so its texts are not
compared and its similarity is None. Signature pairs are many on a large knowledge
base, so only the first ``MAX_SIGNATURE_PAIRS`` in the report's own order (lowest ids
first, as they tie at 1.0) are loaded: twice the longest page, so the page holds the
same pairs as without the cap unless half of them are hidden from the reader. A pair
the text route finds keeps its shared signatures whether or not it made the cap.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleStatus
from knowledge.reports.scope import MAX_ITEMS, ReportScope, check_items, require_reader
from knowledge.search import service as search
from knowledge.search.documents import parse_key
from knowledge.search.index import SearchIndex
from knowledge.suggestions import signatures
from knowledge.suggestions.service import query_text

# Near-copies score above 0.8; two different articles on one topic (say, two causes
# of "too many connections") share their rare words and reach 0.4 to 0.6.
TEXT_SIMILARITY = 0.7
MAX_SOURCES = 50
CANDIDATES = 5
QUERY_TERMS = 6  # the rarest words of a title tell it apart; more only cost time
MAX_PER_SIGNATURE = 10
MAX_SIGNATURE_PAIRS = 2 * MAX_ITEMS


@dataclasses.dataclass(frozen=True, slots=True)
class DuplicatePair:
    first: Article  # the older of the two (lower id)
    second: Article
    overlap: float
    # None when the texts were not compared: no index, or a pair found by signature only
    text_similarity: float | None
    shared_signatures: list[str]

    @property
    def reasons(self) -> list[str]:
        found = [f"same error signature: {s}" for s in self.shared_signatures]
        if self.text_similarity is not None and self.text_similarity >= TEXT_SIMILARITY:
            found.append(f"{self.text_similarity:.0%} similar text")
        return found


def _signatures(article_signatures: list[object]) -> list[str]:
    return signatures.signatures_of([], error_text="\n".join(str(s) for s in article_signatures))


def _text(article: Article) -> str:
    return f"{article.title}\n{article.summary}\n{article.body}"


async def _text_candidates(
    session: AsyncSession, scope: ReportScope, index: SearchIndex
) -> set[tuple[int, int]]:
    sources = list(
        await session.scalars(
            sa.select(Article)
            .where(
                Article.status == ArticleStatus.PUBLISHED,
                Article.updated_at >= scope.start,
                Article.updated_at < scope.end,
            )
            .order_by(Article.updated_at.desc(), Article.id.desc())
            .limit(MAX_SOURCES)
        )
    )
    pairs: set[tuple[int, int]] = set()
    for article in sources:
        text = query_text(
            article.title, article.summary, " ".join(map(str, article.error_signatures))
        )
        if not text.strip():
            continue
        (found,), _ = await search.match(
            principal=scope.principal,
            index=index,
            text=text,
            max_terms=QUERY_TERMS,
            searches=[(search.SearchFilter(kinds=["article"]), CANDIDATES + 1)],
        )
        for match in found:
            other = parse_key(match.key)[1]
            if other != article.id:
                pairs.add((min(article.id, other), max(article.id, other)))
    return pairs


async def possible_duplicates(
    *,
    session: AsyncSession,
    scope: ReportScope,
    index: SearchIndex | None,
    first: int | None = None,
) -> list[DuplicatePair]:
    require_reader(scope.principal)
    size = check_items(first)
    published = (
        await session.execute(
            sa.select(Article.id, Article.error_signatures).where(
                Article.status == ArticleStatus.PUBLISHED
            )
        )
    ).all()
    by_signature: dict[str, list[int]] = collections.defaultdict(list)
    for article_id, curated in published:
        for signature in _signatures(list(curated or [])):
            by_signature[signature].append(article_id)
    shared: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
    for signature, ids in by_signature.items():
        for pair in itertools.combinations(sorted(set(ids))[:MAX_PER_SIGNATURE], 2):
            shared[pair].append(signature)
    text_pairs: set[tuple[int, int]] = set()
    if index is not None and index.is_open:
        text_pairs = await _text_candidates(session, scope, index)
    candidates = set(sorted(shared)[:MAX_SIGNATURE_PAIRS]) | text_pairs
    if not candidates:
        return []
    rows = await articles.by_ids(
        session=session, principal=scope.principal, ids=sorted({i for p in candidates for i in p})
    )
    rows = {i: a for i, a in rows.items() if a.status is ArticleStatus.PUBLISHED}
    pairs = sorted(p for p in candidates if p[0] in rows and p[1] in rows)
    similarity: dict[tuple[int, int], float] = {}
    compared = [p for p in pairs if p in text_pairs]
    if compared and index is not None:
        ids = sorted({i for p in compared for i in p})
        vectors = await asyncio.to_thread(search.term_vectors, index, [_text(rows[i]) for i in ids])
        by_id = dict(zip(ids, vectors, strict=True))
        similarity = {p: search.cosine(by_id[p[0]], by_id[p[1]]) for p in compared}
    found = []
    for pair in pairs:
        cosine = similarity.get(pair)
        signatures_shared = shared.get(pair, [])
        if not signatures_shared and (cosine is None or cosine < TEXT_SIMILARITY):
            continue
        found.append(
            DuplicatePair(
                first=rows[pair[0]],
                second=rows[pair[1]],
                overlap=1.0 if signatures_shared else (cosine or 0.0),
                text_similarity=cosine,
                shared_signatures=signatures_shared,
            )
        )
    found.sort(key=lambda d: (-d.overlap, -(d.text_similarity or 0.0), d.first.id, d.second.id))
    return found[:size]
