"""Incidents like this one: resolved ones to learn from, open ones it may duplicate.

Similarity is the cosine of TF-IDF vectors (1.0 for the same words in the same
proportions) and the normalised error signature (the same error line, whatever
host, port or user it names). Past incidents come from the index; open ones
from the database, because they are few, change quickly and are not indexed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Incident
from knowledge.pagination import check_page_size
from knowledge.search import service as search
from knowledge.search.documents import key_of, parse_key
from knowledge.search.index import SearchIndex
from knowledge.suggestions import signatures
from knowledge.suggestions.service import MAX_TERMS, incident_text, telling_words

# "Very similar text" for a duplicate: two reports of one outage in different words
# share most of their rare words; unrelated reports on one service stay below 0.3.
DUPLICATE_SIMILARITY = 0.5
DUPLICATE_WINDOW = dt.timedelta(days=7)
MAX_OPEN_COMPARED = 200
SIMILAR_DEPTH = 3  # fetch this many times ``first`` from the index, then re-rank


@dataclasses.dataclass(frozen=True, slots=True)
class Similar:
    incident: Incident
    similarity: float
    same_signature: bool

    @property
    def reason(self) -> str:
        if self.same_signature:
            return "same error signature"
        return f"{self.similarity:.0%} similar text"


def _ranked(
    incident: Incident, others: list[Incident], vectors: list[dict[str, float]]
) -> list[Similar]:
    found = [
        Similar(
            incident=other,
            similarity=search.cosine(vectors[0], vector),
            same_signature=bool(incident.error_signature)
            and other.error_signature == incident.error_signature,
        )
        for other, vector in zip(others, vectors[1:], strict=True)
    ]
    return sorted(found, key=lambda s: (-s.same_signature, -s.similarity, -s.incident.id))


async def similar_incidents(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    incident_id: int,
    first: int = 5,
) -> list[Similar]:
    """Resolved or closed incidents most like this one, most similar first."""
    size = check_page_size(first)
    incident = await incidents.get(session=session, principal=principal, incident_id=incident_id)
    telling = telling_words(incident.title, signatures.signatures_of(
        [incident.title, incident.description], error_text=incident.error_text))  # fmt: skip
    text = await asyncio.to_thread(
        search.informative_words, index, incident_text(incident), MAX_TERMS, telling
    )
    if not text.strip():
        return []
    (found,), _ = await search.match(
        principal=principal, index=index, text=text, max_terms=MAX_TERMS,
        searches=[(search.SearchFilter(kinds=["incident"]), size * SIMILAR_DEPTH + 1)],
    )  # fmt: skip
    ids = [parse_key(m.key)[1] for m in found if m.key != key_of("incident", incident.id)]
    rows = await incidents.by_ids(session=session, ids=ids)
    others = [rows[i] for i in ids if i in rows]
    vectors = await asyncio.to_thread(
        search.term_vectors, index, [incident_text(i) for i in (incident, *others)]
    )
    return _ranked(incident, others, vectors)[:size]


async def possible_duplicates(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex | None,
    incident: Incident,
    first: int = 5,
) -> list[Similar]:
    """Open incidents on the same service (or, without one, any open incident) reported
    in the last week with the same error signature or very similar text.

    Without an index there are no document frequencies: only signatures count.
    """
    principal.require(Role.VIEWER, "Reading incidents")
    size = check_page_size(first)
    query = (
        sa.select(Incident)
        .where(
            Incident.status.in_(incidents.OPEN),
            Incident.id != incident.id,
            Incident.detected_at >= incident.detected_at - DUPLICATE_WINDOW,
        )
        .order_by(Incident.id.desc())
        .limit(MAX_OPEN_COMPARED)
    )
    if incident.service_id is not None:
        query = query.where(Incident.service_id == incident.service_id)
    others = list(await session.scalars(query))
    if not others:
        return []
    if index is None or not index.is_open:
        vectors: list[dict[str, float]] = [{} for _ in range(len(others) + 1)]
    else:
        vectors = await asyncio.to_thread(
            search.term_vectors, index, [incident_text(i) for i in (incident, *others)]
        )
    return [
        s
        for s in _ranked(incident, others, vectors)
        if s.same_signature or s.similarity >= DUPLICATE_SIMILARITY
    ][:size]
