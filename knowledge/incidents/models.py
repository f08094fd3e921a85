from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base, created_at, intpk, str80, str200, str_enum, updated_at


class IncidentStatus(enum.StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Level(enum.StrEnum):
    """Impact and urgency share one scale."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ResolutionCode(enum.StrEnum):
    FIXED = "fixed"
    WORKAROUND = "workaround"
    DUPLICATE = "duplicate"
    NO_FAULT = "no_fault"
    KNOWN_ERROR = "known_error"
    OTHER = "other"


class EventKind(enum.StrEnum):
    REPORTED = "reported"
    CLASSIFIED = "classified"
    ASSIGNED = "assigned"
    STATUS_CHANGED = "status_changed"
    NOTE = "note"
    SUGGESTION_SHOWN = "suggestion_shown"
    SUGGESTION_ACCEPTED = "suggestion_accepted"
    SUGGESTION_REJECTED = "suggestion_rejected"
    LINKED = "linked"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    CLOSED = "closed"
    ALERT_FIRED = "alert_fired"
    ALERT_RESOLVED = "alert_resolved"
    REVIEWED = "reviewed"


class LinkRelation(enum.StrEnum):
    SUGGESTED = "suggested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RESOLVED_BY = "resolved_by"
    RELATED = "related"
    DUPLICATE_OF = "duplicate_of"


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (sa.CheckConstraint("priority BETWEEN 1 AND 5", name="priority_range"),)

    id: Mapped[intpk]
    number: Mapped[int] = mapped_column(unique=True)
    title: Mapped[str200]
    description: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    status: Mapped[IncidentStatus] = mapped_column(
        str_enum(IncidentStatus, "incident_status"), default=IncidentStatus.NEW, index=True
    )
    impact: Mapped[Level] = mapped_column(str_enum(Level, "incident_impact"), default=Level.MEDIUM)
    urgency: Mapped[Level] = mapped_column(
        str_enum(Level, "incident_urgency"), default=Level.MEDIUM
    )
    priority: Mapped[int] = mapped_column(sa.SmallInteger, default=3, index=True)
    category: Mapped[str80 | None] = mapped_column(index=True)
    service_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("services.id", ondelete="SET NULL"), index=True
    )
    assignee_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    reporter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    detected_at: Mapped[dt.datetime]
    acknowledged_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    response_due_at: Mapped[dt.datetime | None]
    resolution_due_at: Mapped[dt.datetime | None]
    resolution_code: Mapped[ResolutionCode | None] = mapped_column(
        str_enum(ResolutionCode, "resolution_code")
    )
    resolution_notes: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    error_text: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    error_signature: Mapped[str | None] = mapped_column(sa.String(500), index=True)
    alert_fingerprint: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    alert_occurrences: Mapped[int] = mapped_column(default=0, server_default="0")
    reopen_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}

    @property
    def reference(self) -> str:
        return format_incident_number(self.number)


def format_incident_number(number: int) -> str:
    return f"INC-{number:06d}"


class IncidentEvent(Base):
    """One line of an incident's timeline; append-only."""

    __tablename__ = "incident_events"

    id: Mapped[intpk]
    incident_id: Mapped[int] = mapped_column(
        sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind, "incident_event_kind"))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    occurred_at: Mapped[created_at]
    message: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class IncidentLink(Base):
    """An incident's tie to exactly one article, known error or other incident."""

    __tablename__ = "incident_links"
    __table_args__ = (
        sa.CheckConstraint(
            "(CASE WHEN article_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN known_error_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN target_incident_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_target",
        ),
        sa.Index("ix_incident_links_incident_relation", "incident_id", "relation"),
    )

    id: Mapped[intpk]
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    relation: Mapped[LinkRelation] = mapped_column(str_enum(LinkRelation, "link_relation"))
    article_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    known_error_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("known_errors.id", ondelete="CASCADE"), index=True
    )
    target_incident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    score: Mapped[float | None]
    rank: Mapped[int | None]
    reason: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[created_at]


class PostIncidentReview(Base):
    __tablename__ = "post_incident_reviews"

    id: Mapped[intpk]
    incident_id: Mapped[int] = mapped_column(
        sa.ForeignKey("incidents.id", ondelete="CASCADE"), unique=True
    )
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    root_cause: Mapped[str] = mapped_column(sa.Text, default="")
    went_well: Mapped[str] = mapped_column(sa.Text, default="")
    went_badly: Mapped[str] = mapped_column(sa.Text, default="")
    action_items: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}
