from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base, created_at, intpk, str80, str200


class AlertSource(Base):
    """A monitoring system allowed to post alerts, with its own hashed token."""

    __tablename__ = "alert_sources"

    id: Mapped[intpk]
    slug: Mapped[str80] = mapped_column(unique=True)
    name: Mapped[str200]
    kind: Mapped[str] = mapped_column(sa.String(40), default="alertmanager")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    default_service_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("services.id", ondelete="SET NULL")
    )
    created_at: Mapped[created_at]
    revoked_at: Mapped[dt.datetime | None]
