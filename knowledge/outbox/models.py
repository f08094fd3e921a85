from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base, bigintpk, created_at, intpk, str40, str_enum


class OutboxOp(enum.StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"
    EVENT = "event"


class OutboxEntry(Base):
    """Written in the same transaction as the change; consumers remember the last ``id``."""

    __tablename__ = "outbox"
    # Never reuse an id, even after pruning the newest rows: consumers track the last id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[bigintpk]
    entity_type: Mapped[str40]
    entity_id: Mapped[int]
    op: Mapped[OutboxOp] = mapped_column(str_enum(OutboxOp, "outbox_op"))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[created_at]


class OutboxPrune(Base):
    """The outbox was pruned: every row up to ``through`` is gone. A consumer whose
    position is below the highest ``through`` has missed rows for good and must start
    again from the database (the index rebuilds). Only the latest prune is kept."""

    __tablename__ = "outbox_prunes"

    id: Mapped[intpk]
    through: Mapped[int] = mapped_column(sa.BigInteger)
    deleted: Mapped[int]
    created_at: Mapped[created_at]
