from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.articles.types import ArticleType
from api.context import Context
from api.errors import AnyError
from api.incidents.inputs import (
    AddWorkNoteInput,
    AssignIncidentInput,
    CaptureKnowledgeInput,
    ChangeIncidentStatusInput,
    ClassifyIncidentInput,
    ReopenIncidentInput,
    ReportIncidentInput,
    ResolvedByInput,
    ResolveIncidentInput,
    SaveIncidentReviewInput,
)
from api.incidents.types import IncidentEventType, IncidentType, PostIncidentReviewType
from api.mutations import input_id, optional_input_id, run_mutation
from api.suggestions.types import SuggestionType
from knowledge.incidents import service as incidents
from knowledge.suggestions import feedback


@strawberry.type(name="ClassifiedIncident")
class ClassifiedIncidentType:
    incident: IncidentType
    suggestions: list[SuggestionType] = strawberry.field(
        description="Knowledge likely to restore service, best first."
    )


IncidentResult = Annotated[IncidentType | AnyError, strawberry.union("IncidentResult")]
ClassifyResult = Annotated[
    ClassifiedIncidentType | AnyError, strawberry.union("ClassifyIncidentResult")
]
NoteResult = Annotated[IncidentEventType | AnyError, strawberry.union("WorkNoteResult")]
ReviewResult = Annotated[
    PostIncidentReviewType | AnyError, strawberry.union("IncidentReviewResult")
]
CaptureResult = Annotated[ArticleType | AnyError, strawberry.union("CaptureKnowledgeResult")]


@strawberry.type
class IncidentsMutation:
    @strawberry.mutation(
        description="Detect: reporters and up (and agents with such a token). The incident's "
        "suggestions and possible duplicates are ready to select on the result."
    )
    async def report_incident(
        self, info: strawberry.Info[Context], input: ReportIncidentInput
    ) -> IncidentResult:
        ctx = info.context

        async def change(session: AsyncSession) -> IncidentType:
            row = await incidents.report(
                session=session, principal=ctx.principal, policy=ctx.policy, now=ctx.now(),
                title=input.title, description=input.description, impact=input.impact,
                urgency=input.urgency, category=input.category, error_text=input.error_text,
                service_id=optional_input_id(input.service_id, "Service", field="serviceId"),
                detected_at=input.detected_at,
            )  # fmt: skip
            return IncidentType.from_model(row)

        result = await run_mutation(info, change)
        if isinstance(result, IncidentType):
            await feedback.store_after_commit(
                db=ctx.db, index=ctx.index, incident_id=result.row.id, now=ctx.now()
            )
        return result

    @strawberry.mutation(
        description="Classify: impact and urgency set the priority; the payload carries "
        "resolution suggestions. Responders and up."
    )
    async def classify_incident(
        self, info: strawberry.Info[Context], input: ClassifyIncidentInput
    ) -> ClassifyResult:
        ctx = info.context

        async def change(session: AsyncSession) -> IncidentType:
            row = await incidents.classify(
                session=session, principal=ctx.principal, policy=ctx.policy,
                incident_id=input_id(input.id, "Incident", field="id"),
                expected_version=input.expected_version, impact=input.impact,
                urgency=input.urgency, category=input.category, now=ctx.now(),
                service_id=optional_input_id(input.service_id, "Service", field="serviceId"),
            )  # fmt: skip
            return IncidentType.from_model(row)

        result = await run_mutation(info, change)
        if not isinstance(result, IncidentType):
            return result
        found = await feedback.store_after_commit(
            db=ctx.db, index=ctx.index, incident_id=result.row.id, now=ctx.now()
        )
        return ClassifiedIncidentType(
            incident=result, suggestions=[SuggestionType.from_suggestion(s) for s in found]
        )

    @strawberry.mutation(description="Assess: assign a team and a responder.")
    async def assign_incident(
        self, info: strawberry.Info[Context], input: AssignIncidentInput
    ) -> IncidentResult:
        async def change(session: AsyncSession) -> IncidentType:
            row = await incidents.assign(
                session=session, principal=info.context.principal,
                incident_id=input_id(input.id, "Incident", field="id"),
                expected_version=input.expected_version,
                team_id=optional_input_id(input.team_id, "Team", field="teamId"),
                assignee_id=optional_input_id(input.assignee_id, "User", field="assigneeId"),
                keep_team=input.team_id is strawberry.UNSET,
                keep_assignee=input.assignee_id is strawberry.UNSET, now=info.context.now(),
            )  # fmt: skip
            return IncidentType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Plan and execute: in_progress, on_hold, cancelled, closed.")
    async def change_incident_status(
        self, info: strawberry.Info[Context], input: ChangeIncidentStatusInput
    ) -> IncidentResult:
        async def change(session: AsyncSession) -> IncidentType:
            row = await incidents.change_status(
                session=session, principal=info.context.principal, now=info.context.now(),
                incident_id=input_id(input.id, "Incident", field="id"),
                expected_version=input.expected_version, status=input.status,
                reason=input.reason,
            )  # fmt: skip
            return IncidentType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Resolve with a code, notes and what restored service.")
    async def resolve_incident(
        self, info: strawberry.Info[Context], input: ResolveIncidentInput
    ) -> IncidentResult:
        by = input.resolved_by or ResolvedByInput()

        async def change(session: AsyncSession) -> IncidentType:
            row = await incidents.resolve(
                session=session, principal=info.context.principal, now=info.context.now(),
                incident_id=input_id(input.id, "Incident", field="id"),
                expected_version=input.expected_version, code=input.code, notes=input.notes,
                article_id=optional_input_id(
                    by.article_id, "Article", field="resolvedBy.articleId"),
                known_error_id=optional_input_id(
                    by.known_error_id, "KnownError", field="resolvedBy.knownErrorId"),
                duplicate_of_id=optional_input_id(
                    by.incident_id, "Incident", field="resolvedBy.incidentId"),
            )  # fmt: skip
            return IncidentType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="resolved -> in_progress, with the reason.")
    async def reopen_incident(
        self, info: strawberry.Info[Context], input: ReopenIncidentInput
    ) -> IncidentResult:
        async def change(session: AsyncSession) -> IncidentType:
            row = await incidents.reopen(
                session=session, principal=info.context.principal, now=info.context.now(),
                incident_id=input_id(input.id, "Incident", field="id"),
                expected_version=input.expected_version, reason=input.reason,
            )  # fmt: skip
            return IncidentType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Responders on any incident; reporters on their own.")
    async def add_work_note(
        self, info: strawberry.Info[Context], input: AddWorkNoteInput
    ) -> NoteResult:
        async def change(session: AsyncSession) -> IncidentEventType:
            row = await incidents.add_note(
                session=session, principal=info.context.principal, now=info.context.now(),
                incident_id=input_id(input.incident_id, "Incident", field="incidentId"),
                text=input.text,
            )  # fmt: skip
            return IncidentEventType(row=row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Review: a post-incident review of a resolved P1/P2.")
    async def save_incident_review(
        self, info: strawberry.Info[Context], input: SaveIncidentReviewInput
    ) -> ReviewResult:
        async def change(session: AsyncSession) -> PostIncidentReviewType:
            row = await incidents.save_review(
                session=session, principal=info.context.principal,
                incident_id=input_id(input.incident_id, "Incident", field="incidentId"),
                summary=input.summary, root_cause=input.root_cause, went_well=input.went_well,
                went_badly=input.went_badly, action_items=input.action_items,
                expected_version=input.expected_version, now=info.context.now(),
            )  # fmt: skip
            return PostIncidentReviewType(row=row)

        return await run_mutation(info, change)

    @strawberry.mutation(
        description="Draft an article from a resolved incident no article covers, "
        "and submit it for a knowledge manager's review."
    )
    async def capture_knowledge(
        self, info: strawberry.Info[Context], input: CaptureKnowledgeInput
    ) -> CaptureResult:
        async def change(session: AsyncSession) -> ArticleType:
            row = await incidents.capture_knowledge(
                session=session, principal=info.context.principal,
                incident_id=input_id(input.incident_id, "Incident", field="incidentId"),
                now=info.context.now(),
            )  # fmt: skip
            return ArticleType.from_model(row)

        return await run_mutation(info, change)
