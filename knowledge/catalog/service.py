"""The service catalogue. Anyone may read it; admins and knowledge managers curate it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.models import Team
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.catalog.models import Service
from knowledge.db import flush_or_conflict
from knowledge.errors import NotFoundError
from knowledge.pagination import Page, fetch_page
from knowledge.validation import check_version, clean_line, clean_slug, clean_text

CURATOR = Role.KNOWLEDGE_MANAGER


async def get(*, session: AsyncSession, principal: Principal, service_id: int) -> Service:
    principal.require(Role.VIEWER, "Reading services")
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFoundError(f"no service with id {service_id}", field="id")
    return service


async def get_by_slug(*, session: AsyncSession, principal: Principal, slug: str) -> Service | None:
    principal.require(Role.VIEWER, "Reading services")
    return await session.scalar(sa.select(Service).where(Service.slug == slug))


async def by_ids(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, Service]:
    rows = await session.scalars(sa.select(Service).where(Service.id.in_(set(ids))))
    return {s.id: s for s in rows}


async def get_all(
    *,
    session: AsyncSession,
    principal: Principal,
    first: int | None = None,
    after: int | None = None,
    owner_team_id: int | None = None,
    include_inactive: bool = False,
) -> Page[Service]:
    principal.require(Role.VIEWER, "Listing services")
    stmt = sa.select(Service)
    if owner_team_id is not None:
        stmt = stmt.where(Service.owner_team_id == owner_team_id)
    if not include_inactive:
        stmt = stmt.where(Service.is_active.is_(True))
    return await fetch_page(session, stmt, key=Service.id, first=first, after=after)


async def _team(session: AsyncSession, team_id: int | None) -> int | None:
    if team_id is not None and await session.get(Team, team_id) is None:
        raise NotFoundError(f"no team with id {team_id}", field="ownerTeamId")
    return team_id


async def create(
    *,
    session: AsyncSession,
    principal: Principal,
    slug: str,
    name: str,
    description: str = "",
    owner_team_id: int | None = None,
) -> Service:
    principal.require(CURATOR, "Creating services")
    slug = clean_slug(slug)
    service = Service(
        slug=slug,
        name=clean_line(name, field="name"),
        description=clean_text(description, field="description", max_length=10_000, required=False),
        owner_team_id=await _team(session, owner_team_id),
    )
    session.add(service)
    await flush_or_conflict(session, what=f"service {slug!r}", field="slug")
    return service


async def update(
    *,
    session: AsyncSession,
    principal: Principal,
    service_id: int,
    expected_version: int,
    name: str | None = None,
    description: str | None = None,
    owner_team_id: int | None = None,
    clear_owner_team: bool = False,
    is_active: bool | None = None,
) -> Service:
    principal.require(CURATOR, "Changing services")
    service = await get(session=session, principal=principal, service_id=service_id)
    check_version(
        expected=expected_version, current=service.version, what=f"service {service.slug}"
    )
    if name is not None:
        service.name = clean_line(name, field="name")
    if description is not None:
        service.description = clean_text(
            description, field="description", max_length=10_000, required=False
        )
    if clear_owner_team:
        service.owner_team_id = None
    elif owner_team_id is not None:
        service.owner_team_id = await _team(session, owner_team_id)
    if is_active is not None:
        service.is_active = is_active
    await flush_or_conflict(session, what=f"service {service.slug}")
    return service


async def of_teams(*, session: AsyncSession, team_ids: Sequence[int]) -> dict[int, list[Service]]:
    rows = await session.scalars(
        sa.select(Service).where(Service.owner_team_id.in_(set(team_ids))).order_by(Service.id)
    )
    result: dict[int, list[Service]] = {}
    for service in rows:
        assert service.owner_team_id is not None
        result.setdefault(service.owner_team_id, []).append(service)
    return result
