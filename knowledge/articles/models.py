from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base, created_at, intpk, str80, str200, str_enum, updated_at


class ArticleKind(enum.StrEnum):
    TROUBLESHOOTING = "troubleshooting"
    HOW_TO = "how_to"
    KNOWN_ERROR = "known_error"
    FAQ = "faq"


class ArticleStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    RETIRED = "retired"


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[intpk]
    slug: Mapped[str] = mapped_column(sa.String(120), unique=True)
    title: Mapped[str200]
    summary: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    body: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    kind: Mapped[ArticleKind] = mapped_column(
        str_enum(ArticleKind, "article_kind"), default=ArticleKind.TROUBLESHOOTING
    )
    status: Mapped[ArticleStatus] = mapped_column(
        str_enum(ArticleStatus, "article_status"), default=ArticleStatus.DRAFT, index=True
    )
    category: Mapped[str80 | None] = mapped_column(index=True)
    error_signatures: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    # Where the knowledge came from (URLs of threads, tickets, post-mortems).
    sources: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    # Why a reviewer sent it back to draft; cleared on the next submission.
    review_note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    known_error_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("known_errors.id", ondelete="SET NULL"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    current_revision: Mapped[int] = mapped_column(default=1, server_default="1")
    view_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # When it was last shown to a reader (None: never, or before this was recorded).
    last_viewed_at: Mapped[dt.datetime | None]
    # Who last submitted it for review, and when: the review queue's "waiting since".
    submitted_at: Mapped[dt.datetime | None]
    submitted_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    published_at: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class ArticleRevision(Base):
    """An immutable snapshot taken at every edit, so any two can be diffed."""

    __tablename__ = "article_revisions"
    __table_args__ = (sa.UniqueConstraint("article_id", "number"),)

    id: Mapped[intpk]
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("articles.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str200]
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    body: Mapped[str] = mapped_column(sa.Text, default="")
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    change_note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    # Everything else an edit can change (kind, category, tags, services, ...), as text,
    # so that two revisions can be diffed field by field.
    attributes: Mapped[dict[str, Any]] = mapped_column(
        sa.JSON, default=dict, server_default=sa.text("'{}'")
    )
    created_at: Mapped[created_at]


class ArticleTag(Base):
    __tablename__ = "article_tags"

    article_id: Mapped[int] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(sa.String(60), primary_key=True, index=True)


class ArticleService(Base):
    __tablename__ = "article_services"

    article_id: Mapped[int] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("services.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ArticleFeedback(Base):
    __tablename__ = "article_feedback"

    id: Mapped[intpk]
    article_id: Mapped[int] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    helpful: Mapped[bool]
    comment: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    created_at: Mapped[created_at]
