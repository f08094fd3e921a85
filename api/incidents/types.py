from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

import strawberry

from api.accounts.types import TeamType, UserType
from api.catalog.types import ServiceType
from api.context import Context
from api.loaders import load_one
from api.relay import Node, node_type, to_global_id
from knowledge.articles.models import Article
from knowledge.incidents.metrics import GroupMetrics
from knowledge.incidents.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentLink,
    IncidentStatus,
    Level,
    LinkRelation,
    PostIncidentReview,
    ResolutionCode,
)
from knowledge.incidents.service import sla_of

if TYPE_CHECKING:
    from api.articles.types import ArticleType
    from api.known_errors.types import KnownErrorType
    from api.suggestions.types import SimilarIncidentType

IncidentStatusEnum = strawberry.enum(IncidentStatus, name="IncidentStatus")
LevelEnum = strawberry.enum(Level, name="Level", description="Impact and urgency.")
ResolutionCodeEnum = strawberry.enum(ResolutionCode, name="ResolutionCode")
EventKindEnum = strawberry.enum(EventKind, name="IncidentEventKind")
LinkRelationEnum = strawberry.enum(LinkRelation, name="LinkRelation")


@strawberry.type(
    name="Sla", description="Response and resolution targets, and whether they were met."
)
class SlaType:
    response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None
    response_breached: bool
    resolution_breached: bool
    breached: bool


@strawberry.type(name="IncidentEvent", description="One line of an incident's timeline.")
class IncidentEventType:
    row: strawberry.Private[IncidentEvent]
    # The incident as this event left it, when the event comes from a subscription.
    incident_then: strawberry.Private[Incident | None] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("IncidentEvent", self.row.id)

    @strawberry.field
    def kind(self) -> EventKindEnum:  # type: ignore[valid-type]
        return self.row.kind

    @strawberry.field
    def message(self) -> str:
        return self.row.message

    @strawberry.field
    def occurred_at(self) -> dt.datetime:
        return self.row.occurred_at

    @strawberry.field(description="Structured details of the event, as JSON.")
    def data(self) -> strawberry.scalars.JSON:
        value: Any = self.row.data
        return value  # type: ignore[no-any-return]

    @strawberry.field
    async def actor(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.actor_id, UserType.from_model
        )

    @strawberry.field(
        description="The incident. From the incidentEvents subscription: as this event left "
        "it (its own fields, even if it changed again before the event was delivered), "
        "while what it names or holds (service, team, assignee, reporter, timeline, links, "
        "suggestions, review) is read when the event is delivered. In a query: as it is now."
    )
    async def incident(self, info: strawberry.Info[Context]) -> IncidentType | None:
        if self.incident_then is not None:
            return IncidentType.from_model(self.incident_then)
        return await load_one(
            info.context.loaders.incident_by_id, self.row.incident_id, IncidentType.from_model
        )


@strawberry.type(name="IncidentLink")
class IncidentLinkType:
    """Plain attributes for what a page of suggestions shows (see IncidentType)."""

    row: strawberry.Private[IncidentLink]
    relation: LinkRelationEnum  # type: ignore[valid-type]
    score: float | None
    rank: int | None
    # The article, read with the link (None also when the viewer may not see it); when
    # not read with it (``article_loaded`` False), the article field asks its loader.
    article_row: strawberry.Private[Article | None] = None
    article_loaded: strawberry.Private[bool] = False

    @classmethod
    def from_model(
        cls, row: IncidentLink, *, article: Article | Literal[False] | None = False
    ) -> IncidentLinkType:
        """``article``: the link's article as read with it, or False when not read."""
        return cls(
            row=row,
            relation=row.relation,
            score=row.score,
            rank=row.rank,
            article_row=article or None,
            article_loaded=article is not False,
        )

    @strawberry.field(description="For suggestions, the signals that fired; for verdicts, why.")
    def reason(self) -> str:
        return self.row.reason

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    def article(
        self, info: strawberry.Info[Context]
    ) -> Annotated[ArticleType, strawberry.lazy("api.articles.types")] | None:
        """Synchronous when the article came with the link (a page of suggestions), a
        loader's awaitable otherwise: graphql-core awaits what is awaitable, and completes
        a list of plain values without a task per item."""
        from api.articles.types import ArticleType

        if self.article_loaded:
            return None if self.article_row is None else ArticleType.from_model(self.article_row)
        pending: Any = load_one(
            info.context.loaders.article_by_id, self.row.article_id, ArticleType.from_model
        )
        return pending  # type: ignore[no-any-return]

    @strawberry.field
    async def known_error(
        self, info: strawberry.Info[Context]
    ) -> Annotated[KnownErrorType, strawberry.lazy("api.known_errors.types")] | None:
        from api.known_errors.types import KnownErrorType

        return await load_one(
            info.context.loaders.known_error_by_id,
            self.row.known_error_id,
            KnownErrorType.from_model,
        )

    @strawberry.field
    async def incident(self, info: strawberry.Info[Context]) -> IncidentType | None:
        return await load_one(
            info.context.loaders.incident_by_id,
            self.row.target_incident_id,
            IncidentType.from_model,
        )


@strawberry.type(name="PostIncidentReview")
class PostIncidentReviewType:
    row: strawberry.Private[PostIncidentReview]

    @strawberry.field
    def summary(self) -> str:
        return self.row.summary

    @strawberry.field
    def root_cause(self) -> str:
        return self.row.root_cause

    @strawberry.field
    def went_well(self) -> str:
        return self.row.went_well

    @strawberry.field
    def went_badly(self) -> str:
        return self.row.went_badly

    @strawberry.field
    def action_items(self) -> list[str]:
        return [str(a) for a in self.row.action_items]

    @strawberry.field
    def version(self) -> int:
        return self.row.version

    @strawberry.field
    async def author(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.author_id, UserType.from_model
        )


@node_type
@strawberry.type(name="Incident")
class IncidentType(Node):
    """The row's own values are plain attributes, copied in ``from_model``: strawberry
    resolves those without building an Info object or calling a resolver, and a page of
    20 incidents resolves hundreds of fields (bench/README.md)."""

    row: strawberry.Private[Incident]
    number: str = strawberry.field(description="The human reference, e.g. INC-000123.")
    title: str
    description: str
    status: IncidentStatusEnum  # type: ignore[valid-type]
    impact: LevelEnum  # type: ignore[valid-type]
    urgency: LevelEnum  # type: ignore[valid-type]
    priority: int = strawberry.field(description="1 (most pressing) to 5, from impact and urgency.")
    category: str | None
    error_text: str
    detected_at: dt.datetime
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    resolution_code: ResolutionCodeEnum | None  # type: ignore[valid-type]
    resolution_notes: str
    alert_fingerprint: str | None
    alert_occurrences: int = strawberry.field(
        description="How many times its alert fired while it was open."
    )
    reopen_count: int
    version: int

    @classmethod
    def from_model(cls, row: Incident) -> IncidentType:
        return cls(
            id=to_global_id("Incident", row.id),
            row=row,
            number=row.reference,
            title=row.title,
            description=row.description,
            status=row.status,
            impact=row.impact,
            urgency=row.urgency,
            priority=row.priority,
            category=row.category,
            error_text=row.error_text,
            detected_at=row.detected_at,
            acknowledged_at=row.acknowledged_at,
            resolved_at=row.resolved_at,
            closed_at=row.closed_at,
            resolution_code=row.resolution_code,
            resolution_notes=row.resolution_notes,
            alert_fingerprint=row.alert_fingerprint,
            alert_occurrences=row.alert_occurrences,
            reopen_count=row.reopen_count,
            version=row.version,
        )

    @strawberry.field
    def sla(self, info: strawberry.Info[Context]) -> SlaType:
        sla = sla_of(self.row, info.context.now())
        return SlaType(
            response_due_at=sla.response_due_at,
            resolution_due_at=sla.resolution_due_at,
            response_breached=sla.response_breached,
            resolution_breached=sla.resolution_breached,
            breached=sla.breached,
        )

    @strawberry.field
    async def service(self, info: strawberry.Info[Context]) -> ServiceType | None:
        return await load_one(
            info.context.loaders.service_by_id, self.row.service_id, ServiceType.from_model
        )

    @strawberry.field
    async def team(self, info: strawberry.Info[Context]) -> TeamType | None:
        return await load_one(
            info.context.loaders.team_by_id, self.row.team_id, TeamType.from_model
        )

    @strawberry.field
    async def assignee(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.assignee_id, UserType.from_model
        )

    @strawberry.field
    async def reporter(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.reporter_id, UserType.from_model
        )

    @strawberry.field(description="Every event, oldest first (work notes for responders only).")
    async def timeline(self, info: strawberry.Info[Context]) -> list[IncidentEventType]:
        rows = await info.context.loaders.timeline_of_incident.load(self.row.id)
        return [IncidentEventType(row=r) for r in rows]

    @strawberry.field(description="Suggested, accepted, resolving and related knowledge.")
    async def links(self, info: strawberry.Info[Context]) -> list[IncidentLinkType]:
        rows = await info.context.loaders.links_of_incident.load(self.row.id)
        return [IncidentLinkType.from_model(r) for r in rows]

    @strawberry.field(
        description="The suggestions stored when it was reported or last classified, best "
        "first (rejected ones are left out when they are refreshed)."
    )
    async def suggestions(self, info: strawberry.Info[Context]) -> list[IncidentLinkType]:
        found = await info.context.loaders.suggestions_of_incident.load(self.row.id)
        return [IncidentLinkType.from_model(link, article=article) for link, article in found]

    @strawberry.field(
        description="Open incidents on the same service from the last week with the same error "
        "signature or very similar text. Computed per incident: ask on one at a time."
    )
    async def possible_duplicates(
        self, info: strawberry.Info[Context], first: int = 5
    ) -> list[Annotated[SimilarIncidentType, strawberry.lazy("api.suggestions.types")]]:
        from api.suggestions.types import SimilarIncidentType
        from knowledge.suggestions import similar

        async with info.context.read() as session:
            found = await similar.possible_duplicates(
                session=session, principal=info.context.principal, index=info.context.open_index(),
                incident=self.row, first=first,
            )  # fmt: skip
        return [SimilarIncidentType.from_similar(s) for s in found]

    @strawberry.field
    async def review(self, info: strawberry.Info[Context]) -> PostIncidentReviewType | None:
        return await load_one(
            info.context.loaders.review_of_incident,
            self.row.id,
            lambda r: PostIncidentReviewType(row=r),
        )


@strawberry.type(name="IncidentMetrics", description="Durations are in seconds.")
class IncidentMetricsType:
    key: str
    count: int
    resolved: int
    mtta_seconds: float | None
    mttr_mean_seconds: float | None
    mttr_median_seconds: float | None
    sla_breach_rate: float | None
    reopen_rate: float | None
    resolved_by_knowledge_rate: float | None

    @classmethod
    def from_metrics(cls, m: GroupMetrics) -> IncidentMetricsType:
        return cls(
            key=m.key,
            count=m.count,
            resolved=m.resolved,
            mtta_seconds=m.mtta_seconds,
            mttr_mean_seconds=m.mttr_mean_seconds,
            mttr_median_seconds=m.mttr_median_seconds,
            sla_breach_rate=m.sla_breach_rate,
            reopen_rate=m.reopen_rate,
            resolved_by_knowledge_rate=m.resolved_by_knowledge_rate,
        )
