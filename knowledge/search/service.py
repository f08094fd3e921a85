"""Searching the knowledge base: permissions, filters, facets, highlights, did-you-mean.

Hits come from the index; what they show comes from the database (the index
may lag a moment behind, and never decides what a caller may see).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from whoosh import highlight, sorting, spelling
from whoosh import query as q
from whoosh.analysis import Token
from whoosh.analysis.tokenizers import default_pattern

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
from knowledge.search import analysis, arrays
from knowledge.search.documents import (
    Document,
    article_document,
    incident_document,
    key_of,
    known_error_document,
    parse_key,
)
from knowledge.search.index import SearchIndex
from knowledge.search.query import MAX_QUERY_LENGTH, OPERATORS, parse, plain_words
from knowledge.search.schema import HIGHLIGHT_FIELDS, KINDS, TEXT_FIELDS, build_schema

FACETS = {"category": "category", "service": "services", "tags": "tags"}
MAX_OFFSET = 1000
FRAGMENTS_PER_FIELD = 2
MAX_TERMS = 8
MAX_QUERY_TERMS = 500
# Postings a suggestion search may score (see ``_affordable``). Measured with
# bench/suggest.py at 100k articles + 100k incidents: 20,000 kept the query's own
# product and error in the top 5 for 52% of short alerts, 100,000 for 69%, 250,000
# for 72% (plain BM25F over every word: 72%; 500,000 gave no more), and pasted logs'
# for 30% then 38%; p95 stayed under 40 ms, the postings being mapped arrays
# (``segment_arrays``).
POSTINGS_BUDGET = 250_000


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
class Match:
    """A hit as the index sees it: key and BM25F score."""

    key: str
    score: float


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


class _SegmentsCorrector(spelling.Corrector):  # type: ignore[misc]
    """Whoosh's ``ReaderCorrector`` (the same scores: edit distance, then frequency
    in the whole index), with each segment's word automaton: for a reader of several
    segments, as an index is after a few writes, Whoosh measures the edit distance to
    every word of the field instead, about 100 ms a title. ``segments`` limits the
    words to theirs (the frequencies stay the whole index's)."""

    def __init__(self, reader: Any, field: str, segments: Sequence[Any] | None = None) -> None:
        self.reader = reader
        self.field = field
        self.spelled = reader.schema[field].spelling_fieldname(field)
        self.segments = [s for s, _ in reader.leaf_readers()] if segments is None else segments

    def _suggestions(self, text: str, maxdist: int, prefix: int) -> Iterator[tuple[float, str]]:
        seen: set[str] = set()
        for segment in self.segments:
            for word in segment.terms_within(self.spelled, text, maxdist, prefix=prefix):
                if word not in seen:
                    seen.add(word)
                    frequency = self.reader.frequency(self.field, word) or 1
                    yield 0 - (maxdist + (1.0 / frequency * 0.5)), word


SPELLED_FIELDS = ("title", "body")


def _did_you_mean(
    index: SearchIndex, text: str, distances: Sequence[int] = (1, 2), min_length: int = 3
) -> str | None:
    """The query with unknown words replaced by the closest indexed words, if any."""
    reader = index.searcher().reader()
    correctors = [_SegmentsCorrector(reader, field) for field in SPELLED_FIELDS]
    # Most words are known. A word of the segments earlier searchers had stays known
    # (``Carried``): after a write only the new segment is looked in for it.
    segments = index.segments()
    carried = segments.carried
    in_old, in_new = (
        [_SegmentsCorrector(reader, field, [s for s, _ in part]) for field in SPELLED_FIELDS]
        for part in (segments.old, segments.new)
    )
    memo = index.memo()  # the same words come back in title after title

    def known(lower: str) -> bool:
        if lower in carried.words:
            return True
        if any(c.suggest(lower, limit=1, maxdist=0) for c in in_old):
            carried.words.add(lower)
            return True
        return any(c.suggest(lower, limit=1, maxdist=0) for c in in_new)

    def corrected(lower: str) -> str | None:
        if known(lower):
            return None
        # Nearest first: Whoosh ranks suggestions within maxdist by frequency alone.
        return next(
            (
                found[0]
                for distance in distances
                for c in correctors
                if (found := c.suggest(lower, limit=1, maxdist=distance))
            ),
            None,
        )

    words, changed = [], False
    for word in plain_words(text):
        lower = word.lower()
        if len(lower) < min_length:
            words.append(word)
            continue
        key = ("spelling", lower, tuple(distances))
        if key not in memo:
            memo[key] = corrected(lower)
        suggestion = memo[key]
        words.append(suggestion or word)
        changed = changed or suggestion is not None
    return " ".join(words) if changed else None


def respelled(index: SearchIndex, text: str) -> str:
    """Text with words the index has never seen replaced by the nearest word it has
    ("Retriaval" → "retrieval"); a reporter's typo should not cost the match.

    One edit away only, and words of five letters or more: a second edit costs about
    50 ms a word, and short words have too many neighbours to guess from.
    """
    with index.reading():
        return _did_you_mean(index, text, distances=(1,), min_length=5) or text


def informative_words(
    index: SearchIndex, text: str, keep: int = MAX_TERMS, prefer: frozenset[str] = frozenset()
) -> str:
    """A long plain query cut to its ``keep`` rarest words (highest IDF), those in
    ``prefer`` (lower case) first.

    An OR over every word of a pasted log matches most of the index and costs time
    in proportion (DESIGN.md: 12 terms took ~290 ms on 20k documents, 6 took ~34 ms);
    the rare words are the ones that tell documents apart. Queries with syntax are
    left as they are.
    """
    words = _distinct(plain_words(text))
    syntax = bool(_SYNTAX.search(text)) or bool(OPERATORS & set(plain_words(text)))
    if len(words) <= keep or syntax:
        return text
    with index.reading():
        memo = index.memo()

        def frequency(word: str) -> int:
            key = ("word", word)
            if (found := memo.get(key)) is None:
                found = memo[key] = _word_frequency(word, index.text_frequency)
            return int(found)

        return _rarest(words, keep, frequency, prefer)


def _distinct(words: list[str]) -> list[str]:
    """Words without repeats regardless of case, each in the form first written (the
    analyzer lower-cases, but only after splitting ``publicKey`` at its capital)."""
    return list({w.lower(): w for w in reversed(words)}.values())[::-1]


def _word_frequency(word: str, text_frequency: Callable[[str], int]) -> int:
    """Documents with the word in a written text field (counted once per field)."""
    tokens = _word_terms(word)
    if not tokens:
        return 1 << 40  # a stop word: the least informative of all
    # An identifier is as rare as its whole form (its parts are common words).
    counts = [text_frequency(t) for t in tokens]
    return min((c for c in counts if c), default=0)


def _rarest(
    words: list[str],
    keep: int,
    frequency: Callable[[str], int],
    prefer: frozenset[str] = frozenset(),
) -> str:
    # Words no document contains cannot match: rank only the ones that can.
    frequencies = {w: frequency(w) for w in words}
    # Short numbers in pasted logs are times, pids and counters, rare in a small
    # knowledge base only because it is small: they would crowd out the words.
    useful = [
        w for w in words if 0 < frequencies[w] < 1 << 40 and not (w.isdigit() and len(w) <= 2)
    ]
    ranked = set(sorted(useful, key=lambda w: (w.lower() not in prefer, frequencies[w]))[:keep])
    return " ".join(w for w in words if w in ranked)


_SYNTAX = re.compile(r'["()~]|(?:^|\s)[+-]\w')


@dataclasses.dataclass(frozen=True, slots=True)
class _Found:
    matches: list[Match]
    total: int
    facets: dict[str, list[FacetValue]]
    did_you_mean: str | None
    plain: bool
    terms: frozenset[str]  # the indexed terms the query looked for


def _query_terms(query: q.Query, reader: Any) -> frozenset[str]:
    """Every term a query can match (wildcards and fuzzy terms expanded, at most a few
    hundred), to find the matched terms of the few hits shown rather than asking
    Whoosh to track them for every match (which cost about two thirds of a search)."""
    terms: set[str] = set()
    for leaf in query.leaves():
        try:
            found = list(leaf.expanded_terms(reader, phrases=True))
        except TypeError:  # Whoosh's fuzzy terms cannot expand under some analyzers
            found = list(leaf.terms(phrases=True))
        terms.update(t.decode() if isinstance(t, bytes) else str(t) for _, t in found)
        if len(terms) >= MAX_QUERY_TERMS:
            break
    return frozenset(terms)


def _run(
    index: SearchIndex,
    text: str,
    visible: q.Query,
    limit: int,
    with_facets: bool,
    max_terms: int = MAX_TERMS,
) -> _Found:
    schema = index.schema
    facets = sorting.Facets()
    for field in FACETS.values():
        facets.add_field(field, allow_overlap=field != "category")

    def execute(query: q.Query) -> Any:
        if not with_facets:  # facet counts visit every match: only pay when asked
            return index.run_query(query, limit=limit, filter=visible)
        return index.run_query(
            query, limit=limit, filter=visible, groupedby=facets, maptype=sorting.Count
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
        hits = [Match(key=hit["key"], score=float(hit.score or 0.0)) for hit in results]
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
        terms = _query_terms(parsed, index.searcher().reader())
    return _Found(hits, total, facet_values, suggestion, plain, terms)


@dataclasses.dataclass(frozen=True, slots=True)
class _Analysed:
    """A text's terms with where each one stands, as the highlighter reads them."""

    terms: tuple[str, ...]  # stop words too: Whoosh's highlighter marks them as well
    spans: tuple[tuple[int, int], ...]


def _analysed(text: str) -> _Analysed:
    """The analysis of a text, kept for the texts seen last (up to a length: the
    cache holds a few hundred): the same articles are shown for incident after
    incident, and analysing a long body cost more than the two searches that found
    it."""
    return _analyse(text) if len(text) > MAX_KEPT_TEXT else _kept_analysis(text)


def _analyse(text: str) -> _Analysed:
    terms, spans = [], []
    for term, start, end, _ in analysis.spans(text):
        terms.append(term)
        spans.append((start, end))
    return _Analysed(tuple(terms), tuple(spans))


_kept_analysis = functools.lru_cache(maxsize=256)(_analyse)
MAX_KEPT_TEXT = 20_000


def _matched(document: Document, terms: frozenset[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for field in TEXT_FIELDS:
        text = str(document.get(field) or "")
        if field == "tags":
            words = {t.strip().lower() for t in text.split(",")}
        else:
            words = _vocabulary(text)
        if matched := words & terms:
            found[field] = matched
    return found


def _vocabulary(text: str) -> set[str]:
    """The indexed terms of a text (stop words left out) from its distinct words'
    kept terms: the analysis goes word by word, and a body has far fewer distinct
    words than tokens. Most fields of a suggestion shown match no term, and
    analysing them in full was a tenth of its time."""
    found: set[str] = set()
    for word in {m.group(0) for m in default_pattern.finditer(text)}:
        found.update(_word_terms(word))
    return found


SEPARATOR = "\x1f"  # never in stored text: validation refuses control characters
_FORMATTER = highlight.HtmlFormatter(tagname="mark", between=SEPARATOR)
_FRAGMENTER = highlight.ContextFragmenter(maxchars=160, surround=60)


def _fragments(text: str, words: set[str]) -> str:
    """``highlight.highlight`` over the kept analysis of the text."""
    analysed = _analysed(text)
    token = Token(chars=True, mode="query", removestops=False)

    def tokens() -> Iterator[Token]:
        for term, (token.startchar, token.endchar) in zip(
            analysed.terms, analysed.spans, strict=True
        ):
            token.text = term
            token.matched = term in words
            yield token

    fragments = highlight.top_fragments(
        _FRAGMENTER.fragment_tokens(text, tokens()),
        FRAGMENTS_PER_FIELD,
        highlight.BasicFragmentScorer(),
        highlight.FIRST,
    )
    return str(_FORMATTER(text, fragments))


def _highlights(document: Document, terms: dict[str, set[str]]) -> list[Highlight]:
    result = []
    for field in HIGHLIGHT_FIELDS:
        words = terms.get(field)
        text = str(document.get(field) or "")
        if not words or not text:
            continue
        if html := _fragments(text, words):
            result.append(Highlight(field=field, fragments=html.split(SEPARATOR)))
    return result


Entity = Article | KnownError | Incident


async def _rows(
    session: AsyncSession, principal: Principal, raw: Sequence[Match]
) -> dict[str, Entity]:
    """The rows of the hits the caller may still see."""
    wanted: dict[str, list[int]] = {}
    for hit in raw:
        kind, entity_id = parse_key(hit.key)
        wanted.setdefault(kind, []).append(entity_id)
    found: dict[str, Entity] = {}
    if ids := wanted.get("article"):
        for article in (
            await articles.by_ids(session=session, principal=principal, ids=ids)
        ).values():
            found[key_of("article", article.id)] = article
    if ids := wanted.get("known_error"):
        for known_error in (await known_errors.by_ids(session=session, ids=ids)).values():
            found[key_of("known_error", known_error.id)] = known_error
    if ids := wanted.get("incident"):
        for incident in (await incidents.by_ids(session=session, ids=ids)).values():
            found[key_of("incident", incident.id)] = incident
    return found


async def _documents(session: AsyncSession, rows: Mapping[str, Entity]) -> dict[str, Document]:
    """The rows' current documents, for highlights (an article's parses its Markdown)."""
    article_ids = [e.id for e in rows.values() if isinstance(e, Article)]
    tags = await articles.tags_of(session=session, article_ids=article_ids) if article_ids else {}
    found: dict[str, Document] = {}
    for key, entity in rows.items():
        if isinstance(entity, Article):
            found[key] = article_document(entity, tags[entity.id], [])
        elif isinstance(entity, KnownError):
            found[key] = known_error_document(entity, [])
        else:
            found[key] = incident_document(entity, [])
    return found


def plain_terms(text: str) -> list[arrays.Term]:
    """The terms ``parse`` makes of plain words, in the same order: each word's
    tokens in every text field, no term twice (a test holds the two equal). Without
    the query parser, which cost as much as the scoring for a long text."""
    seen: set[tuple[str, str]] = set()
    terms = []
    for word in plain_words(text):
        fields = _word_query_terms(word) if len(word) <= MAX_KEPT_WORD else _query_terms_of(word)
        for field, token in fields:
            if (field, token) not in seen:
                seen.add((field, token))
                terms.append(arrays.Term(field, token))
    return terms


def _query_terms_of(word: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (field, token)
        for field in TEXT_FIELDS
        for token in _SCHEMA[field].process_text(word, mode="query")
    )


_word_query_terms = functools.lru_cache(maxsize=65536)(_query_terms_of)
_SCHEMA = build_schema()  # every index's (its fields never differ)


def _boost_repeated(terms: list[arrays.Term], text: str, analyzer: Any) -> list[arrays.Term]:
    """Weight each word by how often the text repeats it (1 + ln count), as BM25 weighs
    query-term frequency: a log that says "Booting worker" six times is about workers,
    which a set of distinct words cannot tell."""
    written = plain_words(text)
    counts = collections.Counter(w.lower() for w in written)
    boosts: dict[str, float] = {}
    for word in _distinct(written):
        if (count := counts[word.lower()]) > 1:
            for token in analyzer(word):
                boosts[token.text] = max(boosts.get(token.text, 1.0), 1 + math.log(count))
    return [
        dataclasses.replace(t, boost=t.boost * boosts[t.text]) if t.text in boosts else t
        for t in terms
    ]


def _affordable(
    terms: list[arrays.Term], doc_frequency: Callable[[str, str], int], budget: int
) -> list[arrays.Term]:
    """The rarest terms whose postings add up to at most ``budget`` (the rarest always
    stays), in their first order; terms no document has go.

    A word in half the documents costs half the index in every field it is looked
    for in, for the least weight (its IDF is low). The budget bounds the work of a
    search whatever the size of the index; on a small index nothing is cut.
    """
    kept: list[tuple[int, arrays.Term]] = []
    spent = 0
    frequencies = ((doc_frequency(t.field, t.text), n, t) for n, t in enumerate(terms))
    for frequency, n, term in sorted(f for f in frequencies if f[0]):
        if kept and spent + frequency > budget:
            break
        kept.append((n, term))
        spent += frequency
    # In the query's order, which is the order Whoosh would have added the scores in.
    return [term for _, term in sorted(kept)]


def _match_many(
    index: SearchIndex,
    text: str,
    searches: Sequence[tuple[q.Query, int]],
    max_terms: int,
    budget: int = POSTINGS_BUDGET,
) -> tuple[list[list[Match]], frozenset[str]]:
    with index.reading():
        terms = plain_terms(informative_words(index, text, max_terms))
        terms = _boost_repeated(terms, text, index.schema["body"].analyzer)
        searcher = index.searcher()
        # One scoring of the whole index serves every filter.
        kept = _affordable(terms, index.doc_frequency, budget)
        total = arrays.scores(searcher, index.postings, kept, index.doc_frequency)
        found = []
        memo = index.memo()
        for visible, limit in searches:
            key = ("allowed", repr(visible))
            if (allowed := memo.get(key)) is None:
                allowed = memo[key] = arrays.documents(searcher, index.postings, visible)
            found.append(
                [
                    Match(key=index.key(docnum), score=score)
                    for docnum, score in arrays.best(total, allowed, limit)
                ]
            )
        return found, frozenset(t.text for t in terms)


async def match(
    *,
    principal: Principal,
    index: SearchIndex,
    text: str,
    searches: Sequence[tuple[SearchFilter, int]],
    max_terms: int = MAX_TERMS,
) -> tuple[list[list[Match]], frozenset[str]]:
    """Index hits only, best first, for several filters (each with its own limit) and
    one query of plain words (any other character separates words); no facets, rows,
    highlights or did-you-mean: for callers (suggestions) that rank more candidates
    than they will show. Also returns the terms the query looked for, for
    ``hits_for``."""
    principal.require(Role.VIEWER, "Searching")
    restricted = [(_visibility(principal, f), limit) for f, limit in searches]
    return await asyncio.to_thread(_match_many, index, text, restricted, max_terms)


async def hits_for(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    matches: Sequence[Match],
    terms: frozenset[str],
    with_highlights: bool = True,
    rows: Mapping[str, Entity] | None = None,
) -> list[SearchHit]:
    """Matches as hits the caller may still see, with rows, highlights and the query
    ``terms`` each one contains. ``rows``: the matches' rows, when the caller has
    read them for this principal already."""
    if rows is None:
        rows = await _rows(session, principal, matches)
    documents = await _documents(session, rows) if with_highlights else {}
    hits = []
    for found in matches:
        if (entity := rows.get(found.key)) is None:
            continue  # deleted or hidden since it was indexed
        matched = _matched(documents[found.key], terms) if with_highlights else {}
        hits.append(
            SearchHit(
                kind=parse_key(found.key)[0],
                entity=entity,
                score=found.score,
                highlights=_highlights(documents[found.key], matched) if matched else [],
                matched_terms=sorted({t for words in matched.values() for t in words}),
            )
        )
    return hits


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
    found = await asyncio.to_thread(
        _run, index, text, visible, offset + size + 1, with_facets, max_terms
    )
    page = found.matches[offset : offset + size]
    return SearchResults(
        hits=await hits_for(
            session=session, principal=principal, index=index, matches=page, terms=found.terms
        ),
        total=found.total,
        offset=offset,
        has_next=len(found.matches) > offset + size,
        facets=found.facets,
        did_you_mean=found.did_you_mean,
        read_as_plain_text=found.plain,
    )


def term_vectors(index: SearchIndex, texts: Sequence[str]) -> list[dict[str, float]]:
    """TF-IDF vectors of texts, with the index's analyzer and document frequencies.

    BM25 scores say which document matches best, not how alike two texts are;
    the cosine of these vectors does (1.0 for the same words in the same
    proportions), which is what "a similar incident" and "a duplicate" need.
    """
    with index.reading():
        documents = max(1, index.searcher().reader().doc_count())
        memo = index.memo()
        vectors = []
        for text in texts:
            vector = {}
            for term, count in _term_counts(text[:MAX_VECTOR_TEXT]):
                if (idf := memo.get(("idf", term))) is None:
                    df = max(index.doc_frequency(f, term) for f in _VECTOR_FIELDS)
                    idf = memo["idf", term] = math.log(1 + documents / (1 + df))
                vector[term] = (1 + math.log(count)) * idf
            vectors.append(vector)
    return vectors


def _term_counts(text: str) -> tuple[tuple[str, int], ...]:
    """How often each indexed term occurs in a text, kept for the texts seen last
    (short ones: a pasted log is seldom seen twice): the same past incidents and
    article titles come up for query after query."""
    return _count_terms(text) if len(text) > MAX_KEPT_COUNTED else _kept_counts(text)


def _count_terms(text: str) -> tuple[tuple[str, int], ...]:
    if _PLAIN.fullmatch(text):
        # Words and single spaces (``query_text``): the text's analysis is its words',
        # and a pasted log repeats a bounded vocabulary.
        terms: Iterable[str] = itertools.chain.from_iterable(
            _word_terms(w) for w in text.split(" ")
        )
    else:
        terms = analysis.terms(text)
    return tuple(collections.Counter(terms).items())


_kept_counts = functools.lru_cache(maxsize=2048)(_count_terms)
MAX_KEPT_COUNTED = 4_000
_PLAIN = re.compile(r"\w+(?: \w+)*")


def _word_terms(word: str) -> tuple[str, ...]:
    """The indexed terms of one word (several for an identifier, none for a stop word);
    kept, but not for the odd blob a log pastes as one long word."""
    return tuple(analysis.terms(word)) if len(word) > MAX_KEPT_WORD else _kept_terms(word)


@functools.lru_cache(maxsize=65536)
def _kept_terms(word: str) -> tuple[str, ...]:
    return tuple(analysis.terms(word))


MAX_KEPT_WORD = 64


def coverage(query: dict[str, float], document: dict[str, float]) -> float:
    """How much of a query's weight a document contains (1.0: every word of it). Unlike
    the cosine, a long document is not penalised for saying more than the query."""
    total = sum(w * w for w in query.values())
    return sum(w * w for t, w in query.items() if t in document) / total if total else 0.0


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(w * b[t] for t, w in a.items() if t in b)
    norm = math.sqrt(sum(w * w for w in a.values())) * math.sqrt(sum(w * w for w in b.values()))
    return dot / norm if norm else 0.0


MAX_VECTOR_TEXT = 20_000
_VECTOR_FIELDS = ("title", "symptoms", "body", "signatures")
