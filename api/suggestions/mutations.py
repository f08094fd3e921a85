from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context
from api.incidents.mutations import IncidentResult
from api.incidents.types import IncidentType
from api.mutations import input_id, optional_input_id, run_mutation
from api.suggestions.inputs import JudgeSuggestionInput
from knowledge.suggestions import feedback


async def _judge(
    info: strawberry.Info[Context], input: JudgeSuggestionInput, *, accepted: bool
) -> IncidentResult:
    ctx = info.context

    async def change(session: AsyncSession) -> IncidentType:
        row = await feedback.judge(
            session=session, principal=ctx.principal, now=ctx.now(), accepted=accepted,
            incident_id=input_id(input.incident_id, "Incident", field="incidentId"),
            expected_version=input.expected_version,
            article_id=optional_input_id(input.article_id, "Article", field="articleId"),
            known_error_id=optional_input_id(
                input.known_error_id, "KnownError", field="knownErrorId"
            ),
            reason=input.reason,
        )  # fmt: skip
        return IncidentType.from_model(row)

    return await run_mutation(info, change)


@strawberry.type
class SuggestionsMutation:
    @strawberry.mutation(
        description="This knowledge helps with the incident: ranks it higher for similar "
        "incidents from now on. Responders and up."
    )
    async def accept_suggestion(
        self, info: strawberry.Info[Context], input: JudgeSuggestionInput
    ) -> IncidentResult:
        return await _judge(info, input, accepted=True)

    @strawberry.mutation(
        description="This knowledge does not help: never suggested again for this incident, "
        "and counted against it elsewhere. Responders and up."
    )
    async def reject_suggestion(
        self, info: strawberry.Info[Context], input: JudgeSuggestionInput
    ) -> IncidentResult:
        return await _judge(info, input, accepted=False)
