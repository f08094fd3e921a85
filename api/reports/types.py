"""The knowledge report as GraphQL: thin views over ``knowledge.reports``.

A report is a handle on a checked scope; each section is a field computed only when a
query selects it, each in its own short read.
"""

from __future__ import annotations

import datetime as dt

import strawberry

from api.articles.types import ArticleType
from api.catalog.types import ServiceType
from api.context import Context
from api.incidents.types import IncidentType
from api.limits import COST, REPORT_SECTION_COST
from api.loaders import load_one
from api.relay import to_global_id
from api.reports.inputs import TopArticleOrder
from knowledge.reports import service as reports
from knowledge.search.index import SearchIndex


@strawberry.type(
    name="CaptureKnowledgeAction",
    description="What closes a knowledge gap: call the named mutation with this incident "
    "(`captureKnowledge(input: {incidentId})`) to draft an article from it for review.",
)
class CaptureKnowledgeActionType:
    mutation: str
    incident_id: strawberry.ID
    incident: IncidentType


@strawberry.type(
    name="KnowledgeGap",
    description="Resolved incidents of one problem that no knowledge covers: the same error "
    "signature, or similar text (TF-IDF cosine >= 0.5) on the same service.",
)
class KnowledgeGapType:
    gap: strawberry.Private[reports.KnowledgeGap]

    @strawberry.field(description="How many incidents the gap holds.")
    def count(self) -> int:
        return self.gap.count

    @strawberry.field(description="Their total time to restore (detection to resolution).")
    def downtime_seconds(self) -> float:
        return self.gap.downtime_seconds

    @strawberry.field(description="The latest resolved first; at most 100.")
    def incidents(self, first: int | None = 20) -> list[IncidentType]:
        size = reports.check_items(first, field="incidents.first")
        return [IncidentType.from_model(i) for i in self.gap.incidents[:size]]

    @strawberry.field(description="The service most of its incidents are on.")
    async def service(self, info: strawberry.Info[Context]) -> ServiceType | None:
        return await load_one(
            info.context.loaders.service_by_id, self.gap.service_id, ServiceType.from_model
        )

    @strawberry.field(description="The category most of its incidents have.")
    def category(self) -> str | None:
        return self.gap.category

    @strawberry.field(description="The normalised error line, when every incident has it.")
    def error_signature(self) -> str | None:
        return self.gap.signature

    @strawberry.field(description="The words that describe it best (shared by most incidents).")
    def terms(self) -> list[str]:
        return self.gap.terms

    @strawberry.field(description="A title for it: that of the incident to capture from.")
    def title(self) -> str:
        return self.gap.capture_from.title

    @strawberry.field(description="Why its incidents were grouped.")
    def reason(self) -> str:
        return self.gap.reason

    @strawberry.field(
        description="The incident to capture an article from: the one with the fullest "
        "resolution notes (the draft's Resolution section is made from them)."
    )
    def capture_knowledge(self) -> CaptureKnowledgeActionType:
        incident = self.gap.capture_from
        return CaptureKnowledgeActionType(
            mutation=reports.CAPTURE_MUTATION,
            incident_id=to_global_id("Incident", incident.id),
            incident=IncidentType.from_model(incident),
        )


@strawberry.type(name="KnowledgeGaps")
class KnowledgeGapsType:
    gaps: list[KnowledgeGapType] = strawberry.field(
        description="Most incidents first, then most downtime."
    )
    total_gaps: int
    uncovered_incidents: int = strawberry.field(
        description="Incidents resolved in the window that no article or known error covers "
        "(duplicates and no-fault resolutions left out)."
    )
    clustered_incidents: int = strawberry.field(
        description="How many of them were grouped: the latest 500 at most."
    )
    text_compared: bool = strawberry.field(
        description="false when the search index was unavailable: only signatures grouped."
    )


@strawberry.type(
    name="StaleArticle",
    description="A published article neither viewed nor linked to an incident by a person "
    "(resolved by, accepted, related) for staleAfterDays days, as of now.",
)
class StaleArticleType:
    article: ArticleType
    last_viewed_at: dt.datetime | None
    last_linked_at: dt.datetime | None
    last_activity_at: dt.datetime = strawberry.field(
        description="The latest view or link, or the publication when there was neither."
    )
    idle_days: int


@strawberry.type(name="StaleArticles")
class StaleArticlesType:
    articles: list[StaleArticleType] = strawberry.field(description="The longest idle first.")
    total: int


@strawberry.type(
    name="PoorPerformer",
    description="An article shown for at least 5 incidents in the window and rejected for "
    "half of them or more, or with at least 3 votes of which under half were helpful. "
    "Ranked by score: the 95% Wilson lower bound of (rejections + unhelpful votes) / "
    "(showings + votes), so stronger evidence ranks higher.",
)
class PoorPerformerType:
    article: ArticleType
    shown: int = strawberry.field(
        description="Incidents it was suggested for, accepted for or rejected for."
    )
    accepted: int
    rejected: int
    resolved: int = strawberry.field(description="Incidents it was linked to as resolved by.")
    helpful_votes: int
    unhelpful_votes: int
    rejection_rate: float | None
    helpful_ratio: float | None
    score: float
    reasons: list[str]


@strawberry.type(
    name="DuplicateArticles",
    description="Two published articles that may say the same: they share an error "
    "signature, or their texts' TF-IDF cosine is at least 0.7.",
)
class DuplicateArticlesType:
    first: ArticleType = strawberry.field(description="The older of the two.")
    second: ArticleType
    overlap: float = strawberry.field(
        description="1.0 for a shared signature, else the text similarity."
    )
    text_similarity: float | None = strawberry.field(
        description="Cosine of the two texts' TF-IDF vectors; null when they were not "
        "compared: without a search index, or for a pair found by a shared signature alone "
        "(overlap 1.0 already)."
    )
    shared_signatures: list[str]
    reasons: list[str]


@strawberry.type(name="TopArticle")
class TopArticleType:
    article: ArticleType
    incidents_resolved: int = strawberry.field(
        description="Incidents resolved in the window with this article as resolved by."
    )
    downtime_saved_seconds: float = strawberry.field(
        description="For each of those incidents: the median time to restore of incidents "
        "resolved in the window that no knowledge covered (same category if it has at "
        "least 3, else all of them), minus this incident's time to restore, never below "
        "zero. Summed. No baseline, no saving."
    )
    median_time_to_restore_seconds: float | None = strawberry.field(
        description="Of the incidents it resolved."
    )


def _index(info: strawberry.Info[Context]) -> SearchIndex | None:
    return info.context.open_index()


@strawberry.type(
    name="KnowledgeReport",
    description="What a knowledge manager acts on, over [start, end): each section is "
    "computed only when selected.",
)
class KnowledgeReportType:
    scope: strawberry.Private[reports.ReportScope]

    @strawberry.field
    def start(self) -> dt.datetime:
        return self.scope.start

    @strawberry.field
    def end(self) -> dt.datetime:
        return self.scope.end

    @strawberry.field
    def stale_after_days(self) -> int:
        return self.scope.stale_after_days

    @strawberry.field(
        description="Uncovered resolved incidents, grouped into problems. Costs 40,000 "
        "toward maxQueryCost.",
        metadata={COST: REPORT_SECTION_COST},
    )
    async def knowledge_gaps(
        self, info: strawberry.Info[Context], first: int | None = 20
    ) -> KnowledgeGapsType:
        reports.check_items(first, field="knowledgeGaps.first")
        async with info.context.read() as session:
            found = await reports.knowledge_gaps(
                session=session, scope=self.scope, index=_index(info), first=first
            )
        return KnowledgeGapsType(
            gaps=[KnowledgeGapType(gap=g) for g in found.gaps],
            total_gaps=found.total_gaps,
            uncovered_incidents=found.uncovered_incidents,
            clustered_incidents=found.clustered_incidents,
            text_compared=found.text_compared,
        )

    @strawberry.field(description="Published articles nobody used for staleAfterDays days.")
    async def stale_articles(
        self, info: strawberry.Info[Context], first: int | None = 20
    ) -> StaleArticlesType:
        reports.check_items(first, field="staleArticles.first")
        async with info.context.read() as session:
            found = await reports.stale_articles(session=session, scope=self.scope, first=first)
        return StaleArticlesType(
            articles=[
                StaleArticleType(
                    article=ArticleType.from_model(s.article),
                    last_viewed_at=s.last_viewed_at,
                    last_linked_at=s.last_linked_at,
                    last_activity_at=s.last_activity_at,
                    idle_days=s.idle_days,
                )
                for s in found.articles
            ],
            total=found.total,
        )

    @strawberry.field(description="Articles often shown and often rejected or unhelpful.")
    async def poor_performers(
        self, info: strawberry.Info[Context], first: int | None = 20
    ) -> list[PoorPerformerType]:
        reports.check_items(first, field="poorPerformers.first")
        async with info.context.read() as session:
            found = await reports.poor_performers(session=session, scope=self.scope, first=first)
        return [
            PoorPerformerType(
                article=ArticleType.from_model(p.article),
                shown=p.shown,
                accepted=p.accepted,
                rejected=p.rejected,
                resolved=p.resolved,
                helpful_votes=p.helpful_votes,
                unhelpful_votes=p.unhelpful_votes,
                rejection_rate=p.rejection_rate,
                helpful_ratio=p.helpful_ratio,
                score=p.score,
                reasons=p.reasons,
            )
            for p in found
        ]

    @strawberry.field(
        description="Pairs of published articles that may be duplicates, the strongest "
        "overlap first: shared signatures over the whole knowledge base (the first 200 "
        "pairs by article id), similar text for articles edited in the window (each compared "
        "with its closest matches in the index). Costs 40,000 toward maxQueryCost.",
        metadata={COST: REPORT_SECTION_COST},
    )
    async def possible_duplicates(
        self, info: strawberry.Info[Context], first: int | None = 20
    ) -> list[DuplicateArticlesType]:
        reports.check_items(first, field="possibleDuplicates.first")
        async with info.context.read() as session:
            found = await reports.possible_duplicates(
                session=session, scope=self.scope, index=_index(info), first=first
            )
        return [
            DuplicateArticlesType(
                first=ArticleType.from_model(d.first),
                second=ArticleType.from_model(d.second),
                overlap=d.overlap,
                text_similarity=d.text_similarity,
                shared_signatures=d.shared_signatures,
                reasons=d.reasons,
            )
            for d in found
        ]

    @strawberry.field(description="Articles that restored service most in the window.")
    async def top_articles(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        order_by: TopArticleOrder = TopArticleOrder.INCIDENTS_RESOLVED,
    ) -> list[TopArticleType]:
        reports.check_items(first, field="topArticles.first")
        async with info.context.read() as session:
            found = await reports.top_articles(
                session=session,
                scope=self.scope,
                first=first,
                order=reports.TopOrder(order_by.value),
            )
        return [
            TopArticleType(
                article=ArticleType.from_model(t.article),
                incidents_resolved=t.incidents_resolved,
                downtime_saved_seconds=t.downtime_saved_seconds,
                median_time_to_restore_seconds=t.median_time_to_restore_seconds,
            )
            for t in found
        ]
