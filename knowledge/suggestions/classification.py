"""Likely category, service and impact for a draft, learned from past incidents.

A nearest-neighbour vote, chosen because a responder can check it: the most
similar resolved incidents (cosine of TF-IDF vectors) each vote for their own
category, service and impact with their similarity as the weight, and every
guess says how many incidents backed it. Categories fall back to the matching
articles' categories while there is no incident history yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Hashable

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.incidents import service as incidents
from knowledge.search import service as search
from knowledge.search.documents import parse_key
from knowledge.search.index import SearchIndex
from knowledge.suggestions.service import (
    MAX_TERMS,
    Draft,
    clean_draft,
    draft_signatures,
    incident_text,
    query_text,
    telling_words,
)

NEIGHBOURS = 15
ARTICLES = 5
GUESSES = 3
# Neighbours this dissimilar say nothing about the draft.
MIN_SIMILARITY = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class Guess:
    value: str
    confidence: float  # share of the neighbours' total similarity
    supporting: int  # how many neighbours voted for it
    basis: str  # "incidents" or "articles"


@dataclasses.dataclass(frozen=True, slots=True)
class Classification:
    categories: list[Guess]
    service_ids: list[Guess]
    impacts: list[Guess]
    neighbours: list[int]  # ids of the incidents that voted


def _tally(votes: list[tuple[Hashable, float]], basis: str) -> list[Guess]:
    weight: dict[Hashable, float] = defaultdict(float)
    count: dict[Hashable, int] = defaultdict(int)
    for value, similarity in votes:
        if value is not None and value != "":
            weight[value] += similarity
            count[value] += 1
    total = sum(weight.values())
    ranked = sorted(weight, key=lambda v: (-weight[v], str(v)))[:GUESSES]
    return [Guess(str(v), weight[v] / total, count[v], basis) for v in ranked] if total else []


async def suggest_classification(
    *, session: AsyncSession, principal: Principal, index: SearchIndex, draft: Draft
) -> Classification:
    principal.require(Role.VIEWER, "Asking for a classification")
    draft = clean_draft(draft)
    words = query_text(draft.title, draft.description, draft.error_text)
    telling = telling_words(draft.title, draft_signatures(draft))
    text = await asyncio.to_thread(search.informative_words, index, words, MAX_TERMS, telling)
    if not text.strip():
        return Classification([], [], [], [])
    (past, kb), _ = await search.match(
        principal=principal, index=index, text=text, max_terms=MAX_TERMS,
        searches=[
            (search.SearchFilter(kinds=["incident"]), NEIGHBOURS),
            (search.SearchFilter(kinds=["article"]), ARTICLES),
        ],
    )  # fmt: skip
    ids = [parse_key(m.key)[1] for m in past]
    rows = await incidents.by_ids(session=session, ids=ids)
    neighbours = [rows[i] for i in ids if i in rows]
    vectors = await asyncio.to_thread(
        search.term_vectors,
        index,
        [words, *(incident_text(i) for i in neighbours)],
    )
    weighted = [
        (incident, similarity)
        for incident, vector in zip(neighbours, vectors[1:], strict=True)
        if (similarity := search.cosine(vectors[0], vector)) >= MIN_SIMILARITY
    ]
    categories = _tally([(i.category, s) for i, s in weighted], "incidents")
    if not categories:
        found = await articles.by_ids(
            session=session, principal=principal, ids=[parse_key(m.key)[1] for m in kb]
        )
        top = max((m.score for m in kb), default=0.0) or 1.0
        categories = _tally(
            [(found[i].category, m.score / top) for m in kb if (i := parse_key(m.key)[1]) in found],
            "articles",
        )
    return Classification(
        categories=categories,
        service_ids=_tally([(i.service_id, s) for i, s in weighted], "incidents"),
        impacts=_tally([(i.impact.value, s) for i, s in weighted], "incidents"),
        neighbours=[i.id for i, _ in weighted],
    )
