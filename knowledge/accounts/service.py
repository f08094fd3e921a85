"""Users and teams. Reads need the viewer role; changes need admin."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.models import Team, TeamMembership, User
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.db import flush_or_conflict, grouped
from knowledge.errors import NotFoundError
from knowledge.pagination import Page, fetch_page
from knowledge.validation import (
    check_version,
    clean_email,
    clean_line,
    clean_slug,
    clean_text,
    clean_username,
)


async def get_user(*, session: AsyncSession, principal: Principal, user_id: int) -> User:
    principal.require(Role.VIEWER, "Reading users")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}", field="id")
    return user


async def get_user_by_username(
    *, session: AsyncSession, principal: Principal, username: str
) -> User | None:
    principal.require(Role.VIEWER, "Reading users")
    return await session.scalar(sa.select(User).where(User.username == username))


async def users_by_ids(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, User]:
    """Batch load for DataLoaders; the caller has already checked the principal."""
    rows = await session.scalars(sa.select(User).where(User.id.in_(set(ids))))
    return {u.id: u for u in rows}


async def list_users(
    *,
    session: AsyncSession,
    principal: Principal,
    first: int | None = None,
    after: int | None = None,
    team_id: int | None = None,
    role: Role | None = None,
) -> Page[User]:
    principal.require(Role.VIEWER, "Listing users")
    stmt = sa.select(User)
    if team_id is not None:
        stmt = stmt.join(TeamMembership, TeamMembership.user_id == User.id).where(
            TeamMembership.team_id == team_id
        )
    if role is not None:
        stmt = stmt.where(User.role == role)
    return await fetch_page(session, stmt, key=User.id, first=first, after=after)


async def create_user(
    *,
    session: AsyncSession,
    principal: Principal,
    username: str,
    display_name: str | None = None,
    email: str | None = None,
    role: Role = Role.VIEWER,
    team_ids: Sequence[int] = (),
) -> User:
    principal.require(Role.ADMIN, "Creating users")
    username = clean_username(username)
    user = User(
        username=username,
        display_name=clean_line(display_name or username, field="displayName"),
        email=clean_email(email),
        role=role,
    )
    session.add(user)
    await flush_or_conflict(session, what=f"user {username!r}", field="username")
    for team_id in dict.fromkeys(team_ids):
        if await session.get(Team, team_id) is None:
            raise NotFoundError(f"no team with id {team_id}", field="teamIds")
        session.add(TeamMembership(team_id=team_id, user_id=user.id))
    await session.flush()
    return user


async def update_user(
    *,
    session: AsyncSession,
    principal: Principal,
    user_id: int,
    expected_version: int,
    display_name: str | None = None,
    email: str | None = None,
    role: Role | None = None,
    is_active: bool | None = None,
) -> User:
    principal.require(Role.ADMIN, "Changing users")
    user = await get_user(session=session, principal=principal, user_id=user_id)
    check_version(expected=expected_version, current=user.version, what=f"user {user.username}")
    if display_name is not None:
        user.display_name = clean_line(display_name, field="displayName")
    if email is not None:
        user.email = clean_email(email)
    if role is not None:
        user.role = role
    if is_active is not None:
        user.is_active = is_active
    await flush_or_conflict(session, what=f"user {user.username}")
    return user


async def get_team(*, session: AsyncSession, principal: Principal, team_id: int) -> Team:
    principal.require(Role.VIEWER, "Reading teams")
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFoundError(f"no team with id {team_id}", field="id")
    return team


async def get_team_by_slug(
    *, session: AsyncSession, principal: Principal, slug: str
) -> Team | None:
    principal.require(Role.VIEWER, "Reading teams")
    return await session.scalar(sa.select(Team).where(Team.slug == slug))


async def teams_by_ids(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, Team]:
    rows = await session.scalars(sa.select(Team).where(Team.id.in_(set(ids))))
    return {t.id: t for t in rows}


async def list_teams(
    *,
    session: AsyncSession,
    principal: Principal,
    first: int | None = None,
    after: int | None = None,
) -> Page[Team]:
    principal.require(Role.VIEWER, "Listing teams")
    return await fetch_page(session, sa.select(Team), key=Team.id, first=first, after=after)


async def create_team(
    *,
    session: AsyncSession,
    principal: Principal,
    slug: str,
    name: str,
    description: str = "",
) -> Team:
    principal.require(Role.ADMIN, "Creating teams")
    slug = clean_slug(slug)
    team = Team(
        slug=slug,
        name=clean_line(name, field="name"),
        description=clean_text(description, field="description", max_length=10_000, required=False),
    )
    session.add(team)
    await flush_or_conflict(session, what=f"team {slug!r}", field="slug")
    return team


async def add_member(
    *, session: AsyncSession, principal: Principal, team_id: int, user_id: int
) -> None:
    principal.require(Role.ADMIN, "Changing team membership")
    if await session.get(Team, team_id) is None:
        raise NotFoundError(f"no team with id {team_id}", field="teamId")
    if await session.get(User, user_id) is None:
        raise NotFoundError(f"no user with id {user_id}", field="userId")
    exists = await session.get(TeamMembership, (team_id, user_id))
    if exists is None:
        session.add(TeamMembership(team_id=team_id, user_id=user_id))
        await flush_or_conflict(session, what="membership")


async def teams_of_users(
    *, session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[Team]]:
    rows = await session.execute(
        sa.select(TeamMembership.user_id, Team)
        .join(Team, Team.id == TeamMembership.team_id)
        .where(TeamMembership.user_id.in_(set(user_ids)))
        .order_by(Team.id)
    )
    return grouped(rows)


async def members_of_teams(
    *, session: AsyncSession, team_ids: Sequence[int]
) -> dict[int, list[User]]:
    rows = await session.execute(
        sa.select(TeamMembership.team_id, User)
        .join(User, User.id == TeamMembership.user_id)
        .where(TeamMembership.team_id.in_(set(team_ids)))
        .order_by(User.id)
    )
    return grouped(rows)
