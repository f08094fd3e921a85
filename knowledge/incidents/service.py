"""Incidents: reading (the lifecycle services grow here)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.incidents.models import Incident


async def by_ids(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, Incident]:
    rows = await session.scalars(sa.select(Incident).where(Incident.id.in_(set(ids))))
    return {i.id: i for i in rows}
