"""Suggestions as GraphQL sees them: the target, its score and why it was suggested."""

from __future__ import annotations

import strawberry

from api.articles.types import ArticleType
from api.catalog.types import ServiceType
from api.context import Context
from api.incidents.types import IncidentType, LevelEnum
from api.known_errors.types import KnownErrorType
from api.loaders import load_one
from api.search.types import HighlightType
from knowledge.articles.models import Article
from knowledge.incidents.models import Level
from knowledge.suggestions.classification import Classification, Guess
from knowledge.suggestions.service import Evidence, Signal, Suggestion
from knowledge.suggestions.similar import Similar


@strawberry.type(
    name="SuggestionSignal", description="One reason a suggestion ranks where it does."
)
class SignalType:
    name: str = strawberry.field(
        description="text, title, signature, service, category, history or success."
    )
    value: float = strawberry.field(description="The evidence, 0 to 1 (success: -0.5 to 0.5).")
    weight: float
    contribution: float = strawberry.field(
        description="value times weight: its share of the total."
    )
    detail: str

    @classmethod
    def from_signal(cls, s: Signal) -> SignalType:
        return cls(
            name=s.name, value=s.value, weight=s.weight, contribution=s.contribution,
            detail=s.detail,
        )  # fmt: skip


@strawberry.type(
    name="SuggestionEvidence",
    description="A resolved incident like this one that the suggested knowledge resolved.",
)
class EvidenceType:
    row: strawberry.Private[Evidence]

    @strawberry.field(description="Share of this incident's words it contains, 0 to 1.")
    def similarity(self) -> float:
        return self.row.similarity

    @strawberry.field
    async def incident(self, info: strawberry.Info[Context]) -> IncidentType | None:
        return await load_one(
            info.context.loaders.incident_by_id, self.row.incident_id, IncidentType.from_model
        )


@strawberry.type(name="Suggestion", description="Knowledge likely to restore service.")
class SuggestionType:
    rank: int
    score: float = strawberry.field(
        description="0 to 1: how often a top suggestion with this score was right in evaluation."
    )
    article: ArticleType | None
    known_error: KnownErrorType | None
    signals: list[SignalType]
    explanation: str = strawberry.field(description="The signals that fired, strongest first.")
    matched_terms: list[str]
    highlights: list[HighlightType]
    evidence: list[EvidenceType]

    @classmethod
    def from_suggestion(cls, s: Suggestion) -> SuggestionType:
        target = s.target
        return cls(
            rank=s.rank,
            score=s.score,
            article=ArticleType.from_model(target) if isinstance(target, Article) else None,
            known_error=None if isinstance(target, Article) else KnownErrorType.from_model(target),
            signals=[SignalType.from_signal(x) for x in s.signals],
            explanation=s.explanation(),
            matched_terms=s.matched_terms,
            highlights=[HighlightType.from_highlight(h) for h in s.highlights],
            evidence=[EvidenceType(row=e) for e in s.evidence],
        )


@strawberry.type(name="SimilarIncident")
class SimilarIncidentType:
    incident: IncidentType
    similarity: float = strawberry.field(description="Cosine of the two texts' TF-IDF vectors.")
    same_signature: bool = strawberry.field(description="The same normalised error line.")
    reason: str

    @classmethod
    def from_similar(cls, s: Similar) -> SimilarIncidentType:
        return cls(
            incident=IncidentType.from_model(s.incident), similarity=s.similarity,
            same_signature=s.same_signature, reason=s.reason,
        )  # fmt: skip


@strawberry.type(name="ClassificationGuess")
class GuessType:
    value: str
    confidence: float = strawberry.field(description="Share of the similar incidents' weight.")
    supporting: int = strawberry.field(description="How many incidents (or articles) voted.")
    basis: str = strawberry.field(description="incidents, or articles while there is no history.")

    @classmethod
    def from_guess(cls, g: Guess) -> GuessType:
        return cls(value=g.value, confidence=g.confidence, supporting=g.supporting, basis=g.basis)


@strawberry.type(name="ServiceGuess")
class ServiceGuessType:
    confidence: float
    supporting: int
    service_id: strawberry.Private[int]

    @strawberry.field
    async def service(self, info: strawberry.Info[Context]) -> ServiceType | None:
        return await load_one(
            info.context.loaders.service_by_id, self.service_id, ServiceType.from_model
        )


@strawberry.type(name="ImpactGuess")
class ImpactGuessType:
    impact: LevelEnum  # type: ignore[valid-type]
    confidence: float
    supporting: int


@strawberry.type(
    name="ClassificationSuggestion",
    description="Likely classification from the most similar past incidents (nearest neighbours).",
)
class ClassificationType:
    categories: list[GuessType]
    services: list[ServiceGuessType]
    impacts: list[ImpactGuessType]
    neighbours: list[IncidentType] = strawberry.field(description="The incidents that voted.")

    @classmethod
    def from_classification(
        cls, c: Classification, neighbours: list[IncidentType]
    ) -> ClassificationType:
        return cls(
            categories=[GuessType.from_guess(g) for g in c.categories],
            services=[
                ServiceGuessType(
                    confidence=g.confidence, supporting=g.supporting, service_id=int(g.value)
                )
                for g in c.service_ids
            ],
            impacts=[
                ImpactGuessType(
                    impact=Level(g.value), confidence=g.confidence, supporting=g.supporting
                )
                for g in c.impacts
            ],
            neighbours=neighbours,
        )
