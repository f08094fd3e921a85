"""Human-facing numbers (INC-000123, KE-0001) drawn from counters in the database.

A counter row is incremented with an upsert (``INSERT ... ON CONFLICT DO UPDATE
... RETURNING``) inside the caller's transaction, so numbers are unique on every
backend, the row lock serialises concurrent creators, and a rollback gives the
number back.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.db import Base


class Counter(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)


async def next_number(session: AsyncSession, name: str) -> int:
    """The next number of counter ``name``, created at 1 on first use.

    One upsert, so two transactions drawing the first number of a new counter
    cannot both insert it (the second waits on the row and takes 2).
    """
    dialect = session.get_bind().dialect.name
    insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(Counter)
    stmt = (
        insert.values(name=name, value=1)
        .on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    return int((await session.execute(stmt)).scalar_one())


async def raise_counter(session: AsyncSession, name: str, at_least: int) -> None:
    """Make sure the next number drawn from ``name`` is above ``at_least``
    (after importing records that bring their own numbers)."""
    current = await session.scalar(sa.select(Counter.value).where(Counter.name == name))
    if current is None:
        session.add(Counter(name=name, value=at_least))
        await session.flush()
    elif current < at_least:
        await session.execute(sa.update(Counter).where(Counter.name == name).values(value=at_least))
