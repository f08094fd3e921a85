from __future__ import annotations

import enum
from typing import Annotated

import strawberry

from api.articles.types import ArticleType
from api.incidents.types import IncidentType
from api.known_errors.types import KnownErrorType
from api.relay import PageInfo
from knowledge.articles.models import Article
from knowledge.incidents.models import Incident
from knowledge.known_errors.models import KnownError
from knowledge.search.service import FacetValue, Highlight, SearchHit


@strawberry.enum
class SearchType(enum.Enum):
    ARTICLE = "article"
    KNOWN_ERROR = "known_error"
    INCIDENT = "incident"


@strawberry.type(name="Highlight", description="Fragments of one field with matches in <mark>.")
class HighlightType:
    field: str
    fragments: list[str] = strawberry.field(
        description="HTML: the text is escaped, only <mark> tags are added."
    )

    @classmethod
    def from_highlight(cls, h: Highlight) -> HighlightType:
        return cls(field=h.field, fragments=h.fragments)


@strawberry.interface(name="SearchHit")
class SearchHitType:
    score: float
    highlights: list[HighlightType]
    matched_terms: list[str]


@strawberry.type(name="ArticleHit")
class ArticleHitType(SearchHitType):
    article: ArticleType


@strawberry.type(name="KnownErrorHit")
class KnownErrorHitType(SearchHitType):
    known_error: KnownErrorType


@strawberry.type(name="IncidentHit", description="A resolved incident; see its resolution.")
class IncidentHitType(SearchHitType):
    incident: IncidentType


SearchResultItem = Annotated[
    ArticleHitType | KnownErrorHitType | IncidentHitType, strawberry.union("SearchResultItem")
]


def hit_type(hit: SearchHit) -> ArticleHitType | KnownErrorHitType | IncidentHitType:
    score, terms = hit.score, hit.matched_terms
    highlights = [HighlightType.from_highlight(h) for h in hit.highlights]
    entity = hit.entity
    if isinstance(entity, Article):
        return ArticleHitType(
            score=score,
            highlights=highlights,
            matched_terms=terms,
            article=ArticleType.from_model(entity),
        )
    if isinstance(entity, KnownError):
        return KnownErrorHitType(
            score=score,
            highlights=highlights,
            matched_terms=terms,
            known_error=KnownErrorType.from_model(entity),
        )
    assert isinstance(entity, Incident)
    return IncidentHitType(
        score=score,
        highlights=highlights,
        matched_terms=terms,
        incident=IncidentType.from_model(entity),
    )


@strawberry.type(name="FacetValue")
class FacetValueType:
    value: str
    count: int

    @classmethod
    def from_value(cls, v: FacetValue) -> FacetValueType:
        return cls(value=v.value, count=v.count)


@strawberry.type(name="SearchFacets", description="Counts over every match, not just this page.")
class SearchFacetsType:
    category: list[FacetValueType]
    service: list[FacetValueType]
    tags: list[FacetValueType]


@strawberry.type(name="SearchEdge")
class SearchEdgeType:
    node: SearchResultItem
    cursor: str


@strawberry.type(name="SearchConnection")
class SearchConnectionType:
    edges: list[SearchEdgeType]
    page_info: PageInfo
    total_count: int
    facets: SearchFacetsType
    did_you_mean: str | None = strawberry.field(
        description="Set when nothing matched as typed and these words were searched instead."
    )
    read_as_plain_text: bool = strawberry.field(
        description="The query was not valid syntax and its words were searched instead."
    )
