from __future__ import annotations

import strawberry

from api.context import Context
from api.errors import field_path
from api.incidents.types import IncidentType
from api.mutations import input_id, optional_input_id
from api.relay import BadInputError
from api.suggestions.inputs import DraftInput
from api.suggestions.types import ClassificationType, SimilarIncidentType, SuggestionType
from knowledge.errors import ValidationError
from knowledge.incidents import service as incidents
from knowledge.suggestions import classification, similar
from knowledge.suggestions import service as suggestions

MAX_SUGGESTIONS = suggestions.MAX_SUGGESTIONS


def draft(value: DraftInput) -> suggestions.Draft:
    """The draft, checked here so that errors name their path from the argument."""
    try:
        return suggestions.clean_draft(
            suggestions.Draft(
                title=value.title,
                description=value.description,
                error_text=value.error_text,
                service_id=optional_input_id(value.service_id, "Service", field="serviceId"),
                category=value.category,
            )
        )
    except ValidationError as error:
        raise ValidationError(error.message, field=field_path(error.field)) from None


def _first(first: int) -> int:
    if not 1 <= first <= MAX_SUGGESTIONS:
        raise BadInputError(f"first is 1 to {MAX_SUGGESTIONS}")
    return first


@strawberry.type
class SuggestionsQuery:
    @strawberry.field(
        description="Suggestions for an incident being written (call it as the reporter "
        "types): nothing is saved. Best first; each explains itself."
    )
    async def suggest_resolutions(
        self, info: strawberry.Info[Context], input: DraftInput, first: int = 5
    ) -> list[SuggestionType]:
        ctx = info.context
        written = draft(input)
        async with ctx.read() as session:
            found = await suggestions.suggest(
                session=session, principal=ctx.principal, index=ctx.search_index(),
                draft=written, first=_first(first),
            )  # fmt: skip
        return [SuggestionType.from_suggestion(s) for s in found]

    @strawberry.field(
        description="Likely category, service and impact for a draft, from similar past "
        "incidents (and matching articles while there is no history)."
    )
    async def suggest_classification(
        self, info: strawberry.Info[Context], input: DraftInput
    ) -> ClassificationType:
        ctx = info.context
        written = draft(input)
        async with ctx.read() as session:
            found = await classification.suggest_classification(
                session=session, principal=ctx.principal, index=ctx.search_index(), draft=written
            )
            rows = await incidents.by_ids(session=session, ids=found.neighbours)
        neighbours = [IncidentType.from_model(rows[i]) for i in found.neighbours if i in rows]
        return ClassificationType.from_classification(found, neighbours)

    @strawberry.field(description="Resolved and closed incidents most like this one.")
    async def similar_incidents(
        self, info: strawberry.Info[Context], id: strawberry.ID, first: int = 5
    ) -> list[SimilarIncidentType]:
        ctx = info.context
        incident_id = input_id(id, "Incident", field="id")
        async with ctx.read() as session:
            found = await similar.similar_incidents(
                session=session, principal=ctx.principal, index=ctx.search_index(),
                incident_id=incident_id, first=_first(first),
            )  # fmt: skip
        return [SimilarIncidentType.from_similar(s) for s in found]
