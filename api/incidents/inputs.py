from __future__ import annotations

import datetime as dt
import enum

import strawberry

from api.incidents.types import EventKindEnum, IncidentStatusEnum, LevelEnum, ResolutionCodeEnum


@strawberry.input
class ReportIncidentInput:
    title: str
    description: str = ""
    impact: LevelEnum = LevelEnum.MEDIUM  # type: ignore[valid-type]
    urgency: LevelEnum = LevelEnum.MEDIUM  # type: ignore[valid-type]
    category: str | None = None
    service_id: strawberry.ID | None = None
    error_text: str = ""
    detected_at: dt.datetime | None = strawberry.field(
        default=None, description="When it started, if before now."
    )


@strawberry.input
class ClassifyIncidentInput:
    id: strawberry.ID
    expected_version: int
    impact: LevelEnum | None = None  # type: ignore[valid-type]
    urgency: LevelEnum | None = None  # type: ignore[valid-type]
    category: str | None = None
    service_id: strawberry.ID | None = None


@strawberry.input
class AssignIncidentInput:
    id: strawberry.ID
    expected_version: int
    team_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null clears it; omit to keep it."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null clears it; omit to keep it."
    )


@strawberry.input
class ChangeIncidentStatusInput:
    id: strawberry.ID
    expected_version: int
    status: IncidentStatusEnum  # type: ignore[valid-type]
    reason: str = ""


@strawberry.input(description="At most one: what restored service.")
class ResolvedByInput:
    article_id: strawberry.ID | None = None
    known_error_id: strawberry.ID | None = None
    incident_id: strawberry.ID | None = strawberry.field(
        default=None, description="The incident this one duplicates."
    )


@strawberry.input
class ResolveIncidentInput:
    id: strawberry.ID
    expected_version: int
    code: ResolutionCodeEnum  # type: ignore[valid-type]
    notes: str
    resolved_by: ResolvedByInput | None = None


@strawberry.input
class ReopenIncidentInput:
    id: strawberry.ID
    expected_version: int
    reason: str


@strawberry.input
class AddWorkNoteInput:
    incident_id: strawberry.ID
    text: str


@strawberry.input
class SaveIncidentReviewInput:
    incident_id: strawberry.ID
    summary: str
    root_cause: str
    went_well: str = ""
    went_badly: str = ""
    action_items: list[str] = strawberry.field(default_factory=list)
    expected_version: int | None = strawberry.field(
        default=None, description="Needed when updating an existing review."
    )


@strawberry.input
class CaptureKnowledgeInput:
    incident_id: strawberry.ID


@strawberry.input
class IncidentFilter:
    statuses: list[IncidentStatusEnum] | None = None  # type: ignore[valid-type]
    priorities: list[int] | None = None
    service_id: strawberry.ID | None = None
    team_id: strawberry.ID | None = None
    assignee_id: strawberry.ID | None = None
    breached: bool | None = strawberry.field(
        default=None, description="true: missed a response or resolution target."
    )
    alert_fingerprint: str | None = None


@strawberry.input
class TimeWindow:
    start: dt.datetime
    end: dt.datetime


@strawberry.enum
class MetricsGroupBy(enum.Enum):
    NONE = "none"
    PRIORITY = "priority"
    SERVICE = "service"
    CATEGORY = "category"
    TEAM = "team"


@strawberry.input
class IncidentEventFilter:
    incident_id: strawberry.ID | None = None
    service_id: strawberry.ID | None = None
    max_priority: int | None = strawberry.field(
        default=None, description="Only incidents at this priority or more pressing (1 = P1)."
    )
    kinds: list[EventKindEnum] | None = None  # type: ignore[valid-type]
