"""How articles perform: the ones that keep failing, and the ones that restore service.

Poor performers. In the window, an article was *shown* for an incident when it
was suggested for it, or a responder accepted or rejected it there (rejecting
removes the stored suggestion, so verdicts count as showings too); feedback
votes count when they were cast in the window. An article is flagged when

- it was shown for at least ``MIN_SHOWN`` incidents and rejected for at least
  ``REJECTION_FLAG`` of them, or
- it got at least ``MIN_VOTES`` votes and fewer than ``HELPFUL_FLAG`` were helpful,

so one unlucky rejection flags nothing. Flagged articles rank by the lower bound
of the 95% Wilson interval of their failure share, (rejections + unhelpful votes)
/ (showings + votes): 8 failures in 10 rank above 1 in 1, and 80 in 100 above
8 in 10, because the evidence is stronger.

Top articles. Incidents resolved in the window with the article linked as
``resolved_by``, and the downtime it saved: for each such incident, the median
time to restore of incidents resolved in the window that no knowledge covered
(``coverage``), in the same category when it has at least ``MIN_BASELINE`` of
them, else over all of them, minus this incident's time to restore, never below
zero; no baseline, no saving claimed.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import statistics
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleFeedback, ArticleStatus
from knowledge.incidents.metrics import seconds_to_restore
from knowledge.incidents.models import Incident, IncidentLink, LinkRelation
from knowledge.reports.coverage import resolved_in, uncovered_in
from knowledge.reports.scope import ReportScope, check_items, require_reader

MIN_SHOWN = 5
REJECTION_FLAG = 0.5
MIN_VOTES = 3
HELPFUL_FLAG = 0.5
MIN_BASELINE = 3
SHOWN = (LinkRelation.SUGGESTED, LinkRelation.ACCEPTED, LinkRelation.REJECTED)
_Z = 1.96


@dataclasses.dataclass(frozen=True, slots=True)
class PoorPerformer:
    article: Article
    shown: int
    accepted: int
    rejected: int
    resolved: int
    helpful_votes: int
    unhelpful_votes: int
    score: float  # the Wilson lower bound of the failure share; higher is worse

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.shown if self.shown else None

    @property
    def helpful_ratio(self) -> float | None:
        votes = self.helpful_votes + self.unhelpful_votes
        return self.helpful_votes / votes if votes else None

    @property
    def reasons(self) -> list[str]:
        found = []
        if self.shown >= MIN_SHOWN and (self.rejection_rate or 0.0) >= REJECTION_FLAG:
            found.append(f"rejected for {self.rejected} of {self.shown} incidents")
        votes = self.helpful_votes + self.unhelpful_votes
        if votes >= MIN_VOTES and (self.helpful_ratio or 0.0) < HELPFUL_FLAG:
            found.append(f"helpful in {self.helpful_votes} of {votes} votes")
        return found


def wilson_lower_bound(failures: int, trials: int) -> float:
    if trials <= 0:
        return 0.0
    p = failures / trials
    centre = p + _Z * _Z / (2 * trials)
    margin = _Z * math.sqrt((p * (1 - p) + _Z * _Z / (4 * trials)) / trials)
    return max(0.0, (centre - margin) / (1 + _Z * _Z / trials))


async def poor_performers(
    *, session: AsyncSession, scope: ReportScope, first: int | None = None
) -> list[PoorPerformer]:
    require_reader(scope.principal)
    size = check_items(first)
    published = sa.select(Article.id).where(Article.status == ArticleStatus.PUBLISHED)
    in_window = sa.and_(
        IncidentLink.created_at >= scope.start,
        IncidentLink.created_at < scope.end,
        IncidentLink.article_id.in_(published),
    )
    per_relation = (
        await session.execute(
            sa.select(
                IncidentLink.article_id,
                IncidentLink.relation,
                sa.func.count(sa.distinct(IncidentLink.incident_id)),
            )
            .where(in_window, IncidentLink.relation.in_([*SHOWN, LinkRelation.RESOLVED_BY]))
            .group_by(IncidentLink.article_id, IncidentLink.relation)
        )
    ).all()
    shown = {
        article_id: int(n)
        for article_id, n in await session.execute(
            sa.select(IncidentLink.article_id, sa.func.count(sa.distinct(IncidentLink.incident_id)))
            .where(in_window, IncidentLink.relation.in_(SHOWN))
            .group_by(IncidentLink.article_id)
        )
        if article_id is not None  # in_window keeps article links only
    }
    helpful = await articles.votes_of(
        session=session,
        where=[
            ArticleFeedback.created_at >= scope.start,
            ArticleFeedback.created_at < scope.end,
            ArticleFeedback.article_id.in_(published),
        ],
    )
    counts: dict[int | None, collections.Counter[LinkRelation]] = collections.defaultdict(
        collections.Counter
    )
    for article_id, relation, n in per_relation:
        counts[article_id][relation] = int(n)
    tallies: list[dict[str, Any]] = []
    for article_id in set(shown) | set(helpful):
        c = counts[article_id]
        good, bad = helpful.get(article_id, (0, 0))
        times, rejected = shown.get(article_id, 0), c[LinkRelation.REJECTED]
        if (times >= MIN_SHOWN and rejected >= REJECTION_FLAG * times) or (
            good + bad >= MIN_VOTES and good < HELPFUL_FLAG * (good + bad)
        ):
            tallies.append(
                {
                    "article_id": article_id,
                    "shown": times,
                    "accepted": c[LinkRelation.ACCEPTED],
                    "rejected": rejected,
                    "resolved": c[LinkRelation.RESOLVED_BY],
                    "helpful_votes": good,
                    "unhelpful_votes": bad,
                    "score": wilson_lower_bound(rejected + bad, times + good + bad),
                }
            )
    evidence = ("shown", "helpful_votes", "unhelpful_votes")
    tallies.sort(key=lambda t: (-t["score"], -sum(t[k] for k in evidence), t["article_id"]))
    chosen = tallies[:size]
    rows = await articles.by_ids(
        session=session, principal=scope.principal, ids=[t["article_id"] for t in chosen]
    )
    return [
        PoorPerformer(article=rows[key], **{k: v for k, v in t.items() if k != "article_id"})
        for t in chosen
        if (key := t["article_id"]) in rows
    ]


class TopOrder(enum.StrEnum):
    INCIDENTS_RESOLVED = "incidents_resolved"
    DOWNTIME_SAVED = "downtime_saved"


@dataclasses.dataclass(frozen=True, slots=True)
class TopArticle:
    article: Article
    incidents_resolved: int
    downtime_saved_seconds: float
    median_time_to_restore_seconds: float | None  # of the incidents it resolved


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


async def baselines(
    *, session: AsyncSession, scope: ReportScope
) -> tuple[dict[str, float], float | None]:
    """Median times to restore of uncovered incidents: per category (with enough of
    them) and overall."""
    rows = (
        await session.execute(
            sa.select(Incident.category, Incident.detected_at, Incident.resolved_at).where(
                uncovered_in(scope.start, scope.end)
            )
        )
    ).all()
    per: dict[str | None, list[float]] = collections.defaultdict(list)
    everything = []
    for category, detected, resolved in rows:
        if (restored := seconds_to_restore(detected, resolved)) is None:
            continue
        seconds = max(0.0, restored)
        per[category].append(seconds)
        everything.append(seconds)
    by_category = {
        c: statistics.median(v) for c, v in per.items() if c is not None and len(v) >= MIN_BASELINE
    }
    overall = statistics.median(everything) if len(everything) >= MIN_BASELINE else None
    return by_category, overall


async def top_articles(
    *,
    session: AsyncSession,
    scope: ReportScope,
    first: int | None = None,
    order: TopOrder = TopOrder.INCIDENTS_RESOLVED,
) -> list[TopArticle]:
    require_reader(scope.principal)
    size = check_items(first)
    rows = (
        await session.execute(
            sa.select(
                IncidentLink.article_id,
                Incident.id,
                Incident.category,
                Incident.detected_at,
                Incident.resolved_at,
            )
            .join(Incident, Incident.id == IncidentLink.incident_id)
            .where(
                IncidentLink.relation == LinkRelation.RESOLVED_BY,
                IncidentLink.article_id.is_not(None),
                resolved_in(scope.start, scope.end),
            )
        )
    ).all()
    if not rows:
        return []
    by_category, overall = await baselines(session=session, scope=scope)
    # incident id -> (category, seconds to restore), per article; only the columns the
    # ranking needs, since a window may hold a year of resolutions
    resolved: dict[int, dict[int, tuple[str | None, float]]] = collections.defaultdict(dict)
    for article_id, incident_id, category, detected_at, resolved_at in rows:
        if article_id is not None:
            restored = seconds_to_restore(detected_at, resolved_at) or 0.0
            resolved[article_id][incident_id] = (category, max(0.0, restored))
    ranked = []
    for article_id, incidents in resolved.items():
        saved, times = 0.0, []
        for category, seconds in incidents.values():
            times.append(seconds)
            baseline = by_category.get(category or "", overall)
            if baseline is not None:
                saved += max(0.0, baseline - seconds)
        ranked.append((article_id, len(incidents), saved, _median(times)))
    if order is TopOrder.DOWNTIME_SAVED:
        ranked.sort(key=lambda r: (-r[2], -r[1], r[0]))
    else:
        ranked.sort(key=lambda r: (-r[1], -r[2], r[0]))
    chosen = ranked[:size]
    loaded = await articles.by_ids(
        session=session, principal=scope.principal, ids=[r[0] for r in chosen]
    )
    return [
        TopArticle(loaded[a], n, saved, median) for a, n, saved, median in chosen if a in loaded
    ]
