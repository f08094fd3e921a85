from __future__ import annotations

from typing import Any

import strawberry

from api.context import Context
from api.relay import PageInfo, parse_cursor, to_cursor
from api.search.types import (
    FacetValueType,
    SearchConnectionType,
    SearchEdgeType,
    SearchFacetsType,
    SearchType,
    hit_type,
)
from knowledge.search import service as search_service


@strawberry.input
class SearchFilter:
    category: str | None = None
    service: str | None = strawberry.field(default=None, description="A service slug.")
    tags: list[str] = strawberry.field(default_factory=list, description="All must match.")
    status: list[str] | None = strawberry.field(
        default=None,
        description="Article statuses other than published need the knowledge manager role.",
    )


def _asks_for(info: strawberry.Info[Context], name: str) -> bool:
    """Whether the query selects ``name`` on this field (directly or in a fragment)."""

    def walk(selections: list[Any]) -> bool:
        return any(
            getattr(s, "name", None) == name or walk(getattr(s, "selections", []) or [])
            for s in selections
        )

    return any(walk(field.selections) for field in info.selected_fields)


@strawberry.type
class SearchQuery:
    @strawberry.field(
        description='Full-text search: words, "phrases", AND/OR/NOT, -exclude, word~ for typos. '
        "Input that is not valid syntax is searched as plain words."
    )
    async def search(
        self,
        info: strawberry.Info[Context],
        query: str,
        types: list[SearchType] | None = None,
        filter: SearchFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> SearchConnectionType:
        f = filter or SearchFilter()
        offset = parse_cursor(after) or 0
        async with info.context.read() as session:
            results = await search_service.search(
                session=session,
                principal=info.context.principal,
                index=info.context.search_index(),
                text=query,
                filter=search_service.SearchFilter(
                    kinds=None if types is None else [t.value for t in types],
                    category=f.category,
                    service=f.service,
                    tags=f.tags,
                    statuses=f.status,
                ),
                first=first,
                offset=offset,
                with_facets=_asks_for(info, "facets"),
            )
        edges = [
            SearchEdgeType(node=hit_type(hit), cursor=to_cursor(offset + n + 1))
            for n, hit in enumerate(results.hits)
        ]
        return SearchConnectionType(
            edges=edges,
            page_info=PageInfo(
                has_next_page=results.has_next,
                has_previous_page=offset > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=results.total,
            facets=SearchFacetsType(
                **{
                    name: [FacetValueType.from_value(v) for v in results.facets.get(name, [])]
                    for name in ("category", "service", "tags")
                }
            ),
            did_you_mean=results.did_you_mean,
            read_as_plain_text=results.read_as_plain_text,
        )
