"""The knowledge report for knowledge managers: one entry point per section, and the
whole report at once for the command line.

Every section checks the reader (knowledge managers and admins) itself, so the
GraphQL fields, the CLI and any other caller share one rule. GraphQL computes
only the sections a query selects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.reports.duplicates import DuplicatePair, possible_duplicates
from knowledge.reports.gaps import CAPTURE_MUTATION, GapReport, KnowledgeGap, knowledge_gaps
from knowledge.reports.performance import (
    PoorPerformer,
    TopArticle,
    TopOrder,
    poor_performers,
    top_articles,
)
from knowledge.reports.scope import (
    DEFAULT_ITEMS,
    DEFAULT_STALE_DAYS,
    MAX_ITEMS,
    MAX_STALE_DAYS,
    ReportScope,
    check_items,
    open_scope,
    require_reader,
)
from knowledge.reports.stale import StaleArticle, StaleReport, stale_articles
from knowledge.search.index import SearchIndex

__all__ = [
    "CAPTURE_MUTATION",
    "DEFAULT_ITEMS",
    "DEFAULT_STALE_DAYS",
    "MAX_ITEMS",
    "MAX_STALE_DAYS",
    "DuplicatePair",
    "GapReport",
    "KnowledgeGap",
    "KnowledgeReport",
    "PoorPerformer",
    "ReportScope",
    "StaleArticle",
    "StaleReport",
    "TopArticle",
    "TopOrder",
    "check_items",
    "knowledge_gaps",
    "knowledge_report",
    "open_scope",
    "poor_performers",
    "possible_duplicates",
    "require_reader",
    "stale_articles",
    "top_articles",
]


@dataclasses.dataclass(frozen=True, slots=True)
class KnowledgeReport:
    scope: ReportScope
    gaps: GapReport
    stale: StaleReport
    poor_performers: list[PoorPerformer]
    duplicates: list[DuplicatePair]
    top_articles: list[TopArticle]


async def knowledge_report(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex | None,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    stale_after_days: int = DEFAULT_STALE_DAYS,
    first: int | None = None,
) -> KnowledgeReport:
    scope = open_scope(
        principal=principal, start=start, end=end, now=now, stale_after_days=stale_after_days
    )
    return KnowledgeReport(
        scope=scope,
        gaps=await knowledge_gaps(session=session, scope=scope, index=index, first=first),
        stale=await stale_articles(session=session, scope=scope, first=first),
        poor_performers=await poor_performers(session=session, scope=scope, first=first),
        duplicates=await possible_duplicates(
            session=session, scope=scope, index=index, first=first
        ),
        top_articles=await top_articles(session=session, scope=scope, first=first),
    )
