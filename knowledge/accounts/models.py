from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from knowledge.accounts.roles import Role
from knowledge.db import Base, created_at, intpk, str80, str200, str_enum, updated_at


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[intpk]
    slug: Mapped[str80] = mapped_column(unique=True)
    name: Mapped[str200]
    description: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    members: Mapped[list[User]] = relationship(
        secondary="team_memberships", back_populates="teams", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    username: Mapped[str80] = mapped_column(unique=True)
    display_name: Mapped[str200]
    email: Mapped[str | None] = mapped_column(sa.String(254))
    role: Mapped[Role] = mapped_column(str_enum(Role, "user_role"), default=Role.VIEWER)
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    teams: Mapped[list[Team]] = relationship(
        secondary="team_memberships", back_populates="members", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}


class TeamMembership(Base):
    __tablename__ = "team_memberships"

    team_id: Mapped[int] = mapped_column(
        sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[created_at]


class ApiToken(Base):
    """A bearer credential. Only a SHA-256 digest is kept: the token is shown once.

    ``role`` scopes the token; the effective role is the lower of it and the user's.
    """

    __tablename__ = "api_tokens"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str200]
    prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "token_role"))
    created_at: Mapped[created_at]
    expires_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="raise")
