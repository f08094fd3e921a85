"""Human-facing numbers (INC-000123, KE-0001) drawn from counters in the database.

A counter row is incremented with ``UPDATE ... RETURNING`` inside the caller's
transaction, so numbers are unique on every backend and a rollback does not burn
one on SQLite (on PostgreSQL the row lock serialises concurrent creators).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base


class Counter(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)


async def next_number(session: AsyncSession, name: str) -> int:
    result = await session.execute(
        sa.update(Counter)
        .where(Counter.name == name)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    value = result.scalar_one_or_none()
    if value is not None:
        return int(value)
    session.add(Counter(name=name, value=1))
    await session.flush()
    return 1


async def raise_counter(session: AsyncSession, name: str, at_least: int) -> None:
    """Make sure the next number drawn from ``name`` is above ``at_least``
    (after importing records that bring their own numbers)."""
    current = await session.scalar(sa.select(Counter.value).where(Counter.name == name))
    if current is None:
        session.add(Counter(name=name, value=at_least))
        await session.flush()
    elif current < at_least:
        await session.execute(sa.update(Counter).where(Counter.name == name).values(value=at_least))
