from __future__ import annotations

import strawberry


@strawberry.input(description="An incident as far as it is written; nothing is saved.")
class DraftInput:
    title: str = ""
    description: str = ""
    error_text: str = ""
    service_id: strawberry.ID | None = None
    category: str | None = None


@strawberry.input(description="Name exactly one of articleId and knownErrorId.")
class JudgeSuggestionInput:
    incident_id: strawberry.ID
    expected_version: int
    article_id: strawberry.ID | None = None
    known_error_id: strawberry.ID | None = None
    reason: str = strawberry.field(default="", description="Why; shown on the timeline.")
