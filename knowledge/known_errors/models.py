from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base, created_at, intpk, str80, str200, str_enum, updated_at


class KnownErrorStatus(enum.StrEnum):
    OPEN = "open"
    FIX_IN_PROGRESS = "fix_in_progress"
    FIXED = "fixed"
    ARCHIVED = "archived"


class KnownError(Base):
    __tablename__ = "known_errors"

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(sa.String(16), unique=True)
    title: Mapped[str200]
    symptoms: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    root_cause: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    workaround: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    permanent_fix: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    status: Mapped[KnownErrorStatus] = mapped_column(
        str_enum(KnownErrorStatus, "known_error_status"), default=KnownErrorStatus.OPEN, index=True
    )
    category: Mapped[str80 | None] = mapped_column(index=True)
    error_signatures: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class KnownErrorService(Base):
    __tablename__ = "known_error_services"

    known_error_id: Mapped[int] = mapped_column(
        sa.ForeignKey("known_errors.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("services.id", ondelete="CASCADE"), primary_key=True, index=True
    )
