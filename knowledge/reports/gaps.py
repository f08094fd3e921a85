"""Knowledge gaps: resolved incidents no knowledge covered, clustered into topics.

Which incidents count is ``coverage.uncovered_in``. Clustering is single-link and
explainable, so a manager can see why two incidents share a gap:

- the same error signature (the normalised first error line) joins them, on any
  service: the same fault wherever it shows;
- otherwise, on the same service (or both on none), the cosine of their TF-IDF
  term vectors (title, description and error text) at least ``GAP_SIMILARITY``.

Pairs are compared within a service only, at most ``MAX_INCIDENTS`` incidents (the
most recently resolved) per report: at worst about 125,000 sparse dot products,
well under a second. Without a search index there are no document frequencies
and only signatures join incidents.

Gaps rank by incident count, then total downtime (the sum of their times to
restore, as MTTR measures them). Each names the incident to call
``captureKnowledge`` with: the one with the fullest resolution notes (the draft's
Resolution section is made from them), the latest on a tie.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.incidents.metrics import time_to_restore
from knowledge.incidents.models import Incident
from knowledge.reports.coverage import uncovered_in
from knowledge.reports.scope import ReportScope, check_items, require_reader
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.suggestions.service import query_text

# Reports of one problem in different words share most of their rare words
# (suggestions.similar uses the same bar for duplicate incidents).
GAP_SIMILARITY = 0.5
MAX_INCIDENTS = 500
TERMS_PER_GAP = 5
CAPTURE_MUTATION = "captureKnowledge"


@dataclasses.dataclass(frozen=True, slots=True)
class KnowledgeGap:
    incidents: list[Incident]  # the latest resolved first
    downtime_seconds: float
    service_id: int | None  # the most common among its incidents
    category: str | None
    signature: str | None  # when every incident has the same one
    terms: list[str]  # the heaviest indexed terms (stemmed) the incidents share
    capture_from: Incident
    reason: str

    @property
    def count(self) -> int:
        return len(self.incidents)


@dataclasses.dataclass(frozen=True, slots=True)
class GapReport:
    gaps: list[KnowledgeGap]
    total_gaps: int
    uncovered_incidents: int  # in the window, before the MAX_INCIDENTS bound
    clustered_incidents: int
    text_compared: bool


def _unit(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {t: w / norm for t, w in vector.items()} if norm else {}


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b[t] for t, w in a.items() if t in b)


def clusters(incidents: list[Incident], vectors: list[dict[str, float]] | None) -> list[list[int]]:
    """Positions of ``incidents`` grouped by single-link over signatures and text."""
    parent = list(range(len(incidents)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    by_signature: dict[str, int] = {}
    for i, incident in enumerate(incidents):
        if incident.error_signature:
            join(i, by_signature.setdefault(incident.error_signature, i))
    if vectors is not None:
        units = [_unit(v) for v in vectors]
        by_service: dict[int | None, list[int]] = collections.defaultdict(list)
        for i, incident in enumerate(incidents):
            by_service[incident.service_id].append(i)
        for members in by_service.values():
            for n, i in enumerate(members):
                for j in members[n + 1 :]:
                    if root(i) != root(j) and _dot(units[i], units[j]) >= GAP_SIMILARITY:
                        join(i, j)
    groups: dict[int, list[int]] = collections.defaultdict(list)
    for i in range(len(incidents)):
        groups[root(i)].append(i)
    return list(groups.values())


def _common(values: list[int | None] | list[str | None]) -> int | str | None:
    counted = collections.Counter(v for v in values if v is not None)
    if not counted:
        return None
    best = max(counted.values())
    return min((v for v, c in counted.items() if c == best), key=str)


def _terms(
    members: list[int], vectors: list[dict[str, float]] | None, words: dict[str, str]
) -> list[str]:
    """The heaviest terms most of a gap's incidents share, spelt as the reports spell
    them ("bundle", not the index's stem "bundl")."""
    if not vectors:
        return []
    weight: collections.Counter[str] = collections.Counter()
    present: collections.Counter[str] = collections.Counter()
    for i in members:
        weight.update(vectors[i])
        present.update(vectors[i].keys())
    # A word in fewer than half of a gap's incidents does not describe the gap.
    shared = [t for t in weight if present[t] * 2 >= len(members)]
    return [words.get(t, t) for t in sorted(shared, key=lambda t: (-weight[t], t))][:TERMS_PER_GAP]


def spellings(index: SearchIndex, texts: list[str]) -> dict[str, str]:
    """Each indexed term of ``texts`` and the most frequent word that gives it."""
    analyzer = index.schema["body"].analyzer
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for text in texts:
        for word in text.split():
            for token in analyzer(word):
                counts[(token.text, word)] += 1
    best: dict[str, str] = {}
    for (term, word), _ in sorted(counts.items(), key=lambda c: (-c[1], c[0][1])):
        best.setdefault(term, word)
    return best


def _gap(
    incidents: list[Incident],
    members: list[int],
    vectors: list[dict[str, float]] | None,
    words: dict[str, str],
) -> KnowledgeGap:
    rows = sorted((incidents[i] for i in members),
                  key=lambda r: (r.resolved_at, r.id), reverse=True)  # fmt: skip
    signatures = {r.error_signature for r in rows}
    signature = next(iter(signatures)) if len(signatures) == 1 else None
    repeated = collections.Counter(r.error_signature for r in rows if r.error_signature)
    if len(rows) == 1:
        reason = "a single incident"
    elif signature is not None:
        reason = "same error signature"
    elif any(n > 1 for n in repeated.values()):
        reason = "same error signature, and similar text on the same service"
    else:
        reason = "similar text on the same service"
    capture = max(rows, key=lambda r: (len(r.resolution_notes.strip()), r.resolved_at, r.id))
    service = _common([r.service_id for r in rows])
    category = _common([r.category for r in rows])
    return KnowledgeGap(
        incidents=rows,
        downtime_seconds=sum(max(0.0, time_to_restore(r) or 0.0) for r in rows),
        service_id=service if isinstance(service, int) else None,
        category=category if isinstance(category, str) else None,
        signature=signature,
        terms=_terms(members, vectors, words),
        capture_from=capture,
        reason=reason,
    )


async def knowledge_gaps(
    *,
    session: AsyncSession,
    scope: ReportScope,
    index: SearchIndex | None,
    first: int | None = None,
) -> GapReport:
    require_reader(scope.principal)
    size = check_items(first)
    where = uncovered_in(scope.start, scope.end)
    uncovered = int(await session.scalar(sa.select(sa.func.count()).where(where)) or 0)
    incidents = list(
        await session.scalars(
            sa.select(Incident)
            .where(where)
            .order_by(Incident.resolved_at.desc(), Incident.id.desc())
            .limit(MAX_INCIDENTS)
        )
    )
    text = index is not None and index.is_open
    vectors: list[dict[str, float]] | None = None
    words: dict[str, str] = {}
    if text and incidents and index is not None:
        texts = [query_text(i.title, i.description, i.error_text) for i in incidents]
        vectors = await asyncio.to_thread(search.term_vectors, index, texts)
        words = await asyncio.to_thread(spellings, index, texts)
    groups = await asyncio.to_thread(clusters, incidents, vectors) if incidents else []
    gaps = [_gap(incidents, members, vectors, words) for members in groups]
    gaps.sort(
        key=lambda g: (
            -g.count,
            -g.downtime_seconds,
            -g.incidents[0].resolved_at.timestamp() if g.incidents[0].resolved_at else 0.0,
            g.incidents[0].id,
        )
    )
    return GapReport(
        gaps=gaps[:size],
        total_gaps=len(gaps),
        uncovered_incidents=uncovered,
        clustered_incidents=len(incidents),
        text_compared=text,
    )
