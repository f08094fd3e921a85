"""Searching the knowledge base: permissions, filters, facets, highlights, did-you-mean.

Hits come from the index; what they show comes from the database (the index
may lag a moment behind, and never decides what a caller may see).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from whoosh import highlight, sorting
from whoosh import query as q

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleStatus
from knowledge.errors import ValidationError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Incident
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError, KnownErrorStatus
from knowledge.pagination import check_page_size
from knowledge.search.documents import (
    Document,
    article_document,
    incident_document,
    known_error_document,
    parse_key,
)
from knowledge.search.index import SearchIndex
from knowledge.search.query import MAX_QUERY_LENGTH, parse, plain_words
from knowledge.search.schema import HIGHLIGHT_FIELDS, KINDS, TEXT_FIELDS

FACETS = {"category": "category", "service": "services", "tags": "tags"}
MAX_OFFSET = 1000
FRAGMENTS_PER_FIELD = 2
MAX_TERMS = 8


@dataclasses.dataclass(frozen=True, slots=True)
class SearchFilter:
    kinds: Sequence[str] | None = None
    category: str | None = None
    service: str | None = None
    tags: Sequence[str] = ()
    statuses: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Highlight:
    field: str
    fragments: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class SearchHit:
    kind: str
    entity: Article | KnownError | Incident
    score: float
    highlights: list[Highlight]
    matched_terms: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class SearchResults:
    hits: list[SearchHit]
    total: int
    offset: int
    has_next: bool
    facets: dict[str, list[FacetValue]]
    did_you_mean: str | None
    read_as_plain_text: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _RawHit:
    key: str
    score: float
    terms: dict[str, set[str]]


def _visibility(principal: Principal, f: SearchFilter) -> q.Query:
    """What this caller may find, per kind: published articles unless a knowledge
    manager asks for other statuses; known errors but archived ones by default."""
    kinds = list(f.kinds or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValidationError(f"unknown type {unknown[0]!r}", field="types")
    parts: list[q.Query] = []
    for kind in kinds:
        if kind == "article":
            statuses = list(f.statuses or [ArticleStatus.PUBLISHED.value])
            if statuses != [ArticleStatus.PUBLISHED.value]:
                principal.require(Role.KNOWLEDGE_MANAGER, "Searching unpublished articles")
        elif kind == "known_error":
            statuses = list(
                f.statuses
                or [s.value for s in KnownErrorStatus if s is not KnownErrorStatus.ARCHIVED]
            )
        else:
            statuses = ["resolved", "closed"]
        parts.append(q.And([q.Term("kind", kind), q.Or([q.Term("status", s) for s in statuses])]))
    allowed: q.Query = q.Or(parts)
    extra: list[q.Query] = []
    if f.category:
        extra.append(q.Term("category", f.category.strip().lower()))
    if f.service:
        extra.append(q.Term("services", f.service.strip().lower()))
    extra += [q.Term("tags", t.strip().lower()) for t in f.tags]
    return q.And([allowed, *extra]) if extra else allowed


def _did_you_mean(index: SearchIndex, text: str) -> str | None:
    """The query with unknown words replaced by the closest indexed words, if any."""
    searcher = index.searcher()
    correctors = [searcher.corrector(field) for field in ("title", "body")]
    words, changed = [], False
    for word in plain_words(text):
        lower = word.lower()
        if len(lower) < 3 or any(c.suggest(lower, limit=1, maxdist=0) for c in correctors):
            words.append(word)
            continue
        # Nearest first: Whoosh ranks suggestions within maxdist by frequency alone.
        suggestion = next(
            (
                found[0]
                for distance in (1, 2)
                for c in correctors
                if (found := c.suggest(lower, limit=1, maxdist=distance))
            ),
            None,
        )
        words.append(suggestion or word)
        changed = changed or suggestion is not None
    return " ".join(words) if changed else None


def informative_words(index: SearchIndex, text: str, keep: int = MAX_TERMS) -> str:
    """A long plain query cut to its ``keep`` rarest words (highest IDF).

    An OR over every word of a pasted log matches most of the index and costs time
    in proportion (DESIGN.md: 12 terms took ~290 ms on 20k documents, 6 took ~34 ms);
    the rare words are the ones that tell documents apart. Queries with syntax are
    left as they are.
    """
    words = list(dict.fromkeys(w.lower() for w in plain_words(text)))
    syntax = bool(_SYNTAX.search(text)) or bool(_OPERATORS & set(plain_words(text)))
    if len(words) <= keep or syntax:
        return text
    analyzer = index.schema["body"].analyzer
    with index.reading():
        reader = index.searcher().reader()
        return _rarest(words, keep, analyzer, reader)


def _rarest(words: list[str], keep: int, analyzer: Any, reader: Any) -> str:
    def frequency(word: str) -> int:
        tokens = [t.text for t in analyzer(word)]
        if not tokens:
            return 1 << 40  # a stop word: the least informative of all
        return sum(reader.doc_frequency(f, t) for f in TEXT_FIELDS if f != "tags" for t in tokens)

    # Words no document contains cannot match: rank only the ones that can.
    frequencies = {w: frequency(w) for w in words}
    useful = [w for w in words if 0 < frequencies[w] < 1 << 40]
    ranked = set(sorted(useful, key=frequencies.__getitem__)[:keep])
    return " ".join(w for w in words if w in ranked)


_OPERATORS = {"AND", "OR", "NOT"}
_SYNTAX = re.compile(r'["()~]|(?:^|\s)[+-]\w')


def _run(
    index: SearchIndex,
    text: str,
    visible: q.Query,
    limit: int,
    with_facets: bool,
    max_terms: int = MAX_TERMS,
) -> tuple[list[_RawHit], int, dict[str, list[FacetValue]], str | None, bool]:
    schema = index.schema
    facets = sorting.Facets()
    for field in FACETS.values():
        facets.add_field(field, allow_overlap=field != "category")

    def execute(query: q.Query) -> Any:
        if not with_facets:  # facet counts visit every match: only pay when asked
            return index.run_query(query, limit=limit, filter=visible, terms=True)
        return index.run_query(
            query, limit=limit, filter=visible, groupedby=facets, maptype=sorting.Count, terms=True
        )

    with index.reading():
        parsed, plain = parse(schema, informative_words(index, text, max_terms))
        results = execute(parsed)
        suggestion = None
        if results.is_empty() and not isinstance(parsed, q.Every):
            suggestion = _did_you_mean(index, text)
            if suggestion:
                parsed, _ = parse(schema, suggestion)
                results = execute(parsed)
        hits = []
        for hit in results:
            terms: dict[str, set[str]] = {}
            for field, term in hit.matched_terms() if results.has_matched_terms() else []:
                value = term.decode() if isinstance(term, bytes) else str(term)
                terms.setdefault(field, set()).add(value)
            hits.append(_RawHit(key=hit["key"], score=float(hit.score or 0.0), terms=terms))
        facet_values = (
            {}
            if not with_facets
            else {
                name: sorted(
                    (
                        FacetValue(str(value), int(count))
                        for value, count in results.groups(field).items()
                        if value not in (None, "", b"")
                    ),
                    key=lambda v: (-v.count, v.value),
                )
                for name, field in FACETS.items()
            }
        )
        # Without facets Whoosh skips blocks, and len() then re-counts the query without
        # the visibility filter (drafts included); count the filtered matches instead.
        total = len(results) if with_facets else len(results.docs())
    return hits, total, facet_values, suggestion, plain


SEPARATOR = "\x1f"  # never in stored text: validation refuses control characters
_FORMATTER = highlight.HtmlFormatter(tagname="mark", between=SEPARATOR)
_FRAGMENTER = highlight.ContextFragmenter(maxchars=160, surround=60)


def _highlights(document: Document, terms: dict[str, set[str]], analyzer: Any) -> list[Highlight]:
    result = []
    for field in HIGHLIGHT_FIELDS:
        words = terms.get(field)
        text = str(document.get(field) or "")
        if not words or not text:
            continue
        html = highlight.highlight(
            text, frozenset(words), analyzer, _FRAGMENTER, _FORMATTER, top=FRAGMENTS_PER_FIELD
        )
        if html:
            result.append(Highlight(field=field, fragments=html.split(SEPARATOR)))
    return result


async def _hydrate(
    session: AsyncSession, principal: Principal, raw: list[_RawHit]
) -> dict[str, tuple[Article | KnownError | Incident, Document]]:
    """Rows and their current documents for the hits the caller may still see."""
    wanted: dict[str, list[int]] = {}
    for hit in raw:
        kind, entity_id = parse_key(hit.key)
        wanted.setdefault(kind, []).append(entity_id)
    found: dict[str, tuple[Article | KnownError | Incident, Document]] = {}
    if ids := wanted.get("article"):
        rows = await articles.by_ids(session=session, principal=principal, ids=ids)
        tags = await articles.tags_of(session=session, article_ids=list(rows))
        for article in rows.values():
            found[f"article:{article.id}"] = (
                article,
                article_document(article, tags[article.id], []),
            )
    if ids := wanted.get("known_error"):
        for known_error in (await known_errors.by_ids(session=session, ids=ids)).values():
            found[f"known_error:{known_error.id}"] = (
                known_error,
                known_error_document(known_error, []),
            )
    if ids := wanted.get("incident"):
        for incident in (await incidents.by_ids(session=session, ids=ids)).values():
            found[f"incident:{incident.id}"] = (incident, incident_document(incident, []))
    return found


async def search(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    text: str,
    filter: SearchFilter | None = None,
    first: int | None = None,
    offset: int = 0,
    with_facets: bool = True,
    max_terms: int = MAX_TERMS,
) -> SearchResults:
    principal.require(Role.VIEWER, "Searching")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValidationError(f"query is at most {MAX_QUERY_LENGTH} characters", field="query")
    size = check_page_size(first)
    if not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(f"results go {MAX_OFFSET} deep at most", field="after")
    visible = _visibility(principal, filter or SearchFilter())
    raw, total, facets, suggestion, plain = await asyncio.to_thread(
        _run, index, text, visible, offset + size + 1, with_facets, max_terms
    )
    page = raw[offset : offset + size]
    rows = await _hydrate(session, principal, page)
    analyzer = index.schema["title"].analyzer
    hits = []
    for hit in page:
        if hit.key not in rows:
            continue  # deleted or hidden since it was indexed
        entity, document = rows[hit.key]
        hits.append(
            SearchHit(
                kind=parse_key(hit.key)[0],
                entity=entity,
                score=hit.score,
                highlights=_highlights(document, hit.terms, analyzer),
                matched_terms=sorted({t for terms in hit.terms.values() for t in terms}),
            )
        )
    return SearchResults(
        hits=hits,
        total=total,
        offset=offset,
        has_next=len(raw) > offset + size,
        facets=facets,
        did_you_mean=suggestion,
        read_as_plain_text=plain,
    )
