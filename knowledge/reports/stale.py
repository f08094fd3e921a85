"""Stale articles: published, and neither read nor put to use for N days.

Use is a view (``recordArticleView``) or an incident linked to the article by a
person: ``resolved_by``, ``accepted`` or ``related``. An automatic suggestion
that nobody opened or accepted, or a rejection, is not use. An article published
less than N days ago is not stale yet; one whose last view predates the recording
of view times counts from its publication.

Staleness is measured as of now, not at the end of the report's window: only the
latest view is kept, so "idle at some past date" cannot be known.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleStatus
from knowledge.incidents.models import IncidentLink, LinkRelation
from knowledge.reports.scope import ReportScope, check_items, require_reader

USE = (LinkRelation.RESOLVED_BY, LinkRelation.ACCEPTED, LinkRelation.RELATED)


@dataclasses.dataclass(frozen=True, slots=True)
class StaleArticle:
    article: Article
    last_viewed_at: dt.datetime | None
    last_linked_at: dt.datetime | None
    last_activity_at: dt.datetime  # the latest of the two, or the publication
    idle_days: int


@dataclasses.dataclass(frozen=True, slots=True)
class StaleReport:
    articles: list[StaleArticle]  # the longest idle first
    total: int


async def stale_articles(
    *, session: AsyncSession, scope: ReportScope, first: int | None = None
) -> StaleReport:
    require_reader(scope.principal)
    size = check_items(first)
    cutoff = scope.stale_before
    last_link = (
        sa.select(
            IncidentLink.article_id.label("article_id"),
            sa.func.max(IncidentLink.created_at).label("at"),
        )
        .where(IncidentLink.article_id.is_not(None), IncidentLink.relation.in_(USE))
        .group_by(IncidentLink.article_id)
        .subquery()
    )
    published = sa.func.coalesce(Article.published_at, Article.created_at)
    rows = (
        await session.execute(
            sa.select(Article.id, Article.last_viewed_at, last_link.c.at, published)
            .outerjoin(last_link, last_link.c.article_id == Article.id)
            .where(
                Article.status == ArticleStatus.PUBLISHED,
                published < cutoff,
                sa.or_(Article.last_viewed_at.is_(None), Article.last_viewed_at < cutoff),
                sa.or_(last_link.c.at.is_(None), last_link.c.at < cutoff),
            )
        )
    ).all()
    found = []
    for article_id, viewed, linked, since in rows:
        activity = max(t for t in (viewed, linked, since) if t is not None)
        found.append((activity, article_id, viewed, linked))
    found.sort()
    shown = found[:size]
    loaded = await articles.by_ids(
        session=session, principal=scope.principal, ids=[f[1] for f in shown]
    )
    return StaleReport(
        articles=[
            StaleArticle(
                article=loaded[article_id],
                last_viewed_at=viewed,
                last_linked_at=linked,
                last_activity_at=activity,
                idle_days=(scope.now - activity).days,
            )
            for activity, article_id, viewed, linked in shown
            if article_id in loaded
        ],
        total=len(found),
    )
