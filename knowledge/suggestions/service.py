"""Suggesting what will restore service, for an incident or a draft of one.

Candidates come from two searches with the incident's most informative words:
published articles and known errors (text relevance), and resolved incidents
(whatever resolved them becomes a candidate, with the incident as evidence).
Each candidate then gets the signals of DESIGN.md "Suggestions" (text, title,
signatures, context, history, success rate), combined with the weights in
``weights.py`` into one calibrated score, and keeps the evidence for each
signal so a responder can see why it was suggested.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleStatus
from knowledge.errors import ValidationError
from knowledge.incidents.models import Incident
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError, KnownErrorStatus
from knowledge.search import service as search
from knowledge.search.documents import article_sections, key_of, meaning_title, parse_key
from knowledge.search.index import SearchIndex
from knowledge.search.query import MAX_QUERY_LENGTH, OPERATORS, plain_words
from knowledge.suggestions import history, signatures
from knowledge.suggestions.weights import DEFAULT, Weights
from knowledge.validation import clean_text

__all__ = ["Draft", "Evidence", "Signal", "Suggestion", "plain_words", "query_text", "suggest"]

# Chosen with ``knownfix eval`` on incident-eval-dev (full mode): 8 words gave
# Recall@1 0.82, 16 gave 0.93, 32 gave 0.98 at about 60 ms p50; a reporter's
# description needs more words than a search box query.
MAX_TERMS = 32
# How deep each search looks for candidates: the signals reorder the head of the
# text ranking, and every extra candidate costs a row to load and score.
CANDIDATES = 20
SIMILAR_INCIDENTS = 10
MAX_SUGGESTIONS = 20

Target = Article | KnownError


@dataclasses.dataclass(frozen=True, slots=True)
class Draft:
    """What a reporter has written so far (nothing needs to be saved)."""

    title: str
    description: str = ""
    error_text: str = ""
    service_id: int | None = None
    category: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Signal:
    name: str
    value: float
    weight: float
    detail: str

    @property
    def contribution(self) -> float:
        return self.value * self.weight


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    """A resolved incident similar to this one, resolved by the suggested target."""

    incident_id: int
    similarity: float


@dataclasses.dataclass(frozen=True, slots=True)
class Suggestion:
    key: str
    target: Target
    rank: int
    score: float
    total: float
    signals: list[Signal]
    evidence: list[Evidence]
    matched_terms: list[str]
    highlights: list[search.Highlight]

    @property
    def kind(self) -> str:
        return parse_key(self.key)[0]

    def explanation(self) -> str:
        """One line for a timeline or a link's reason: the signals that fired."""
        fired = sorted((s for s in self.signals if s.contribution), key=lambda s: -s.contribution)
        return "; ".join(f"{s.name} {s.contribution:+.2f} ({s.detail})" for s in fired)


MAX_TITLE = 200
MAX_TEXT = 20_000


def clean_draft(draft: Draft) -> Draft:
    """A draft checked like the incident it may become; it can be unfinished (no
    title yet) but not empty, and not longer than an incident may be."""
    title = clean_text(draft.title, field="title", max_length=MAX_TITLE, required=False)
    if "\n" in title or "\r" in title:
        raise ValidationError("title must be a single line", field="title")
    cleaned = dataclasses.replace(
        draft,
        title=title,
        description=clean_text(
            draft.description, field="description", max_length=MAX_TEXT, required=False
        ),
        error_text=clean_text(
            draft.error_text, field="errorText", max_length=MAX_TEXT, required=False
        ),
        category=draft.category.strip() or None if draft.category else None,
    )
    if not (cleaned.title or cleaned.description or cleaned.error_text):
        raise ValidationError("write a title, a description or an error first", field="title")
    return cleaned


def query_text(title: str, description: str = "", error_text: str = "") -> str:
    """Everything the reporter wrote, as plain words with no query syntax (a log's
    "NOT NULL" is not an operator); the search keeps the rarest of them. Case stays:
    it is where ``PublicKeyRetrieval`` splits into the words an article uses."""
    return " ".join(
        w.lower() if w in OPERATORS else w
        for w in plain_words(f"{title} {description} {error_text}")
    )


def incident_text(incident: Incident) -> str:
    """All an incident's report says, as ``query_text`` (similarity is measured on it)."""
    return query_text(incident.title, incident.description, incident.error_text)


def telling_words(title: str, signatures_of_draft: Sequence[str]) -> frozenset[str]:
    """The words a long text's query keeps first (lower case): the title's, and those
    its error lines keep once normalised. A pasted log's rarest words are mostly its
    variable parts (ids, counters, times, host names), which say nothing about the
    fault; what the failing line says does."""
    constant = _PLACEHOLDER.sub(" ", " ".join(signatures_of_draft))
    return frozenset(w.lower() for w in plain_words(f"{title} {constant}"))


_PLACEHOLDER = re.compile(r"<\w+>")


def draft_signatures(draft: Draft) -> list[str]:
    return signatures.signatures_of([draft.title, draft.description], error_text=draft.error_text)


@functools.lru_cache(maxsize=4096)
def _signatures_cached(key: str, version: int, texts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(signatures.signatures_of(texts))


def target_signatures(key: str, target: Target) -> tuple[str, ...]:
    """Curated signatures first, then the error lines its symptoms quote (cached per
    version: the same articles come up for incident after incident)."""
    if isinstance(target, Article):
        texts = (
            *target.error_signatures,
            target.title,
            target.summary,
            article_sections(target.body)["symptoms"],
        )
    else:
        texts = (*target.error_signatures, target.title, target.symptoms)
    return _signatures_cached(key, target.version, tuple(str(t) for t in texts))


def _suggestible(target: object) -> bool:
    if isinstance(target, Article):
        return target.status is ArticleStatus.PUBLISHED
    return isinstance(target, KnownError) and target.status is not KnownErrorStatus.ARCHIVED


async def _services(session: AsyncSession, targets: dict[str, Target]) -> dict[str, set[int]]:
    article_ids = [t.id for t in targets.values() if isinstance(t, Article)]
    error_ids = [t.id for t in targets.values() if isinstance(t, KnownError)]
    found: dict[str, set[int]] = {}
    if article_ids:
        for article_id, services in (
            await articles.services_of(session=session, article_ids=article_ids)
        ).items():
            found[key_of("article", article_id)] = {s.id for s in services}
    if error_ids:
        for error_id, services in (
            await known_errors.services_of(session=session, known_error_ids=error_ids)
        ).items():
            found[key_of("known_error", error_id)] = {s.id for s in services}
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A target with its evidence, before the weights turn it into a rank."""

    key: str
    target: Target
    match: search.Match
    signals: list[Signal]
    evidence: list[Evidence]

    @property
    def total(self) -> float:
        return sum(s.contribution for s in self.signals)


async def candidates(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    draft: Draft,
    weights: Weights = DEFAULT,
    exclude: frozenset[str] = frozenset(),
    incident_id: int | None = None,
) -> tuple[list[Candidate], frozenset[str]]:
    """Every candidate for a draft with its signals (unordered), and the query terms."""
    principal.require(Role.VIEWER, "Asking for suggestions")
    draft = clean_draft(draft)
    # Typos in the title cost the most: it is short, and often all there is so far.
    title = await asyncio.to_thread(search.respelled, index, draft.title)
    words = query_text(title, draft.description, draft.error_text)
    ours = draft_signatures(draft)
    # A description can be a page of logs: keep its most informative words.
    text = await asyncio.to_thread(
        search.informative_words, index, words, MAX_TERMS, telling_words(title, ours)
    )
    text = text[:MAX_QUERY_LENGTH].rsplit(" ", 1)[0] if len(text) > MAX_QUERY_LENGTH else text
    if not text.strip():
        return [], frozenset()
    own = key_of("incident", incident_id) if incident_id is not None else None
    (found, past), terms = await search.match(
        principal=principal, index=index, text=text, max_terms=MAX_TERMS,
        searches=[
            (search.SearchFilter(kinds=["article", "known_error"]), CANDIDATES),
            (search.SearchFilter(kinds=["incident"]), SIMILAR_INCIDENTS + 1),
        ],
    )  # fmt: skip
    past = [m for m in past if m.key != own][:SIMILAR_INCIDENTS]
    top_text = max((m.score for m in found), default=0.0) or 1.0
    evidence = await _evidence(session, index, words, [parse_key(m.key)[1] for m in past])
    matches = {m.key: m for m in found}
    for key in evidence:
        matches.setdefault(key, search.Match(key=key, score=0.0))
    for key in exclude:
        matches.pop(key, None)
    hits = await search.hits_for(
        session=session, principal=principal, index=index, matches=list(matches.values()),
        terms=terms, with_highlights=False,
    )  # fmt: skip
    targets: dict[str, Target] = {
        key_of(h.kind, h.entity.id): h.entity  # type: ignore[misc]
        for h in hits
        if _suggestible(h.entity)
    }
    outcomes = await history.outcomes(session=session, keys=list(targets))
    services = await _services(session, targets) if draft.service_id is not None else {}
    meanings = await asyncio.to_thread(_titles_alike, index, draft.title, targets)
    top_meaning = max(max(meanings.values(), default=0.0), weights.title_floor)
    found_candidates = []
    for key, target in targets.items():
        signals = _signals(
            weights, draft, target, matches[key], top_text, ours,
            target_signatures(key, target) if ours else (),
            services.get(key, set()), evidence.get(key, []), outcomes[key],
            (meanings.get(key, 0.0), top_meaning),
        )  # fmt: skip
        ordered = sorted(evidence.get(key, []), key=lambda e: -e.similarity)
        found_candidates.append(Candidate(key, target, matches[key], signals, ordered))
    return found_candidates, terms


def ranked(found: list[Candidate]) -> list[Candidate]:
    """Best first: by weighted total, then text relevance, then key (stable output)."""
    return sorted(found, key=lambda c: (-c.total, -c.match.score, c.key))


async def suggest(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    draft: Draft,
    first: int = 5,
    weights: Weights = DEFAULT,
    exclude: frozenset[str] = frozenset(),
    incident_id: int | None = None,
) -> list[Suggestion]:
    """The best ``first`` articles and known errors for a draft, best first.

    ``exclude`` drops targets (those already rejected for this incident);
    ``incident_id`` keeps an incident from being its own evidence.
    """
    found, terms = await candidates(
        session=session, principal=principal, index=index, draft=draft, weights=weights,
        exclude=exclude, incident_id=incident_id,
    )  # fmt: skip
    best = ranked(found)[: max(1, min(first, MAX_SUGGESTIONS))]
    shown = {
        key_of(h.kind, h.entity.id): h
        for h in await search.hits_for(
            session=session,
            principal=principal,
            index=index,
            terms=terms,
            matches=[c.match for c in best],
            rows={c.key: c.target for c in best},
        )
    }
    return [
        Suggestion(
            key=c.key,
            target=c.target,
            rank=rank,
            score=weights.calibrated(c.total),
            total=c.total,
            signals=c.signals,
            evidence=c.evidence,
            matched_terms=shown[c.key].matched_terms if c.key in shown else [],
            highlights=shown[c.key].highlights if c.key in shown else [],
        )
        for rank, c in enumerate(best, start=1)
    ]


def _titles_alike(index: SearchIndex, title: str, targets: dict[str, Target]) -> dict[str, float]:
    """How alike the draft's title is in meaning to each target's: the cosine of their
    sentence vectors (``knowledge/semantic``), stored by the index writer or, for a
    target indexed without one (or with one of another size), encoded now. Nothing
    for a draft with no title. The title as typed, not respelled: the model reads
    word pieces, so a typo costs it little, and a respelling can change the meaning.

    Not computed while the searches run: the matrix products let go of the
    interpreter lock, but the steps between them wait for it, and overlapping them
    with the searches' Python made each suggestion slower, not faster."""
    if not title:
        return {}
    with index.reading():
        vectors = index.meanings(targets)
    sentences = index.sentences
    vectors = {k: v for k, v in vectors.items() if v.shape == (sentences.dimensions,)}
    missing = [key for key in targets if key not in vectors]
    encoded = sentences.encode([title, *(meaning_title(targets[k]) for k in missing)])
    vectors.update(zip(missing, encoded[1:], strict=True))
    return {key: max(0.0, float(encoded[0] @ vector)) for key, vector in vectors.items()}


async def _evidence(
    session: AsyncSession, index: SearchIndex, words: str, incident_ids: list[int]
) -> dict[str, list[Evidence]]:
    """Targets that resolved the given past incidents, each with how alike the past
    incident is to this one: the cosine of TF-IDF vectors against its whole text or
    its title alone, whichever is higher (a one-line alert is like a past title,
    a pasted log like a past description; a long text would dilute the former)."""
    resolved = await history.resolved_incidents(session=session, incident_ids=incident_ids)
    past = [resolved[i] for i in incident_ids if i in resolved]
    texts = [words]
    for incident, _ in past:
        texts += [query_text(incident.title), incident_text(incident)]
    vectors = await asyncio.to_thread(search.term_vectors, index, texts)
    evidence: dict[str, list[Evidence]] = {}
    for n, (incident, resolved_by) in enumerate(past):
        title, whole = vectors[1 + 2 * n], vectors[2 + 2 * n]
        similarity = max(search.cosine(vectors[0], title), search.cosine(vectors[0], whole))
        for key in resolved_by:
            evidence.setdefault(key, []).append(Evidence(incident.id, similarity))
    return evidence


def _signals(
    weights: Weights,
    draft: Draft,
    target: Target,
    found: search.Match,
    top_text: float,
    ours: Sequence[str],
    theirs: Sequence[str],
    services: set[int],
    evidence: Sequence[Evidence],
    outcome: history.Outcomes,
    meaning: tuple[float, float],
) -> list[Signal]:
    shared = signatures.similarity(ours, theirs)
    alike, best = meaning
    same_category = bool(
        draft.category
        and target.category
        and draft.category.strip().casefold() == target.category.strip().casefold()
    )
    # The most similar incident it resolved: several loosely similar ones would add up
    # to a lot for popular articles, which are popular, not relevant.
    history_value = max((e.similarity for e in evidence), default=0.0)
    return [
        Signal("text", found.score / top_text, weights.text,
               f"BM25F {found.score:.1f}, {found.score / top_text:.0%} of the best match"
               if found.score else "found through similar incidents only"),
        Signal("title", alike / best, weights.title,
               f"titles {alike:.0%} alike in meaning"
               + (f", {alike / best:.0%} of the likest" if best > weights.title_floor
                  else f", none {weights.title_floor:.0%} alike") if alike
               else "titles unlike in meaning"),
        Signal("signature", shared.value, weights.signature,
               f"{'same' if shared.exact else 'similar'} error line: {shared.line}" if shared.line
               else "no error line in common"),
        Signal("service", float(draft.service_id in services), weights.service,
               "linked to the incident's service" if draft.service_id in services
               else "not linked to the incident's service"),
        Signal("category", float(same_category), weights.category,
               f"category {target.category}" if same_category else "different or no category"),
        Signal("history", history_value, weights.history,
               f"resolved {len(evidence)} similar incident(s)" if evidence
               else "no similar incident resolved by it"),
        Signal("success", weights.success_rate(outcome.good, outcome.bad), weights.success,
               f"{outcome.good} good and {outcome.bad} bad outcome(s)"),
    ]  # fmt: skip
