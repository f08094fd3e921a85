"""Recording changes for the search index and for event subscribers, and forgetting
them once they are old.

Rows are written in the caller's transaction, so a change and its outbox entry
commit or vanish together; consumers apply entries in ``id`` order.

Rows are kept for a retention period (``KNOWNFIX_OUTBOX_RETENTION_DAYS``), then
deleted oldest first, in batches of their own short transactions (on SQLite each
holds the one write lock). Only a run of the oldest ids goes, never a row with
an older one left behind it, and each batch records how far it went
(``OutboxPrune``) in the same transaction: a consumer that had not got that far
knows it missed rows and starts again from the database.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.db import Database
from knowledge.outbox.models import OutboxEntry, OutboxOp, OutboxPrune

PRUNE_BATCH = 1000


async def record(
    *,
    session: AsyncSession,
    entity_type: str,
    entity_id: int,
    op: OutboxOp = OutboxOp.UPSERT,
    payload: dict[str, Any] | None = None,
) -> OutboxEntry:
    entry = OutboxEntry(entity_type=entity_type, entity_id=entity_id, op=op, payload=payload or {})
    session.add(entry)
    await session.flush()
    return entry


async def pruned_through(*, session: AsyncSession) -> int:
    """The highest id pruned so far (0: none): every row up to it is gone."""
    return await session.scalar(sa.select(sa.func.max(OutboxPrune.through))) or 0


async def prune(*, db: Database, older_than: dt.datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete the rows recorded before ``older_than``; returns how many."""
    deleted = 0
    while True:
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    sa.select(OutboxEntry.id, OutboxEntry.created_at)
                    .order_by(OutboxEntry.id)
                    .limit(batch)
                )
            ).all()
            # Stop at the first young row, even if older ones follow it (ids can commit
            # out of order on PostgreSQL): they go next time.
            old = [row.id for row in itertools.takewhile(lambda r: r.created_at < older_than, rows)]
            if not old:
                return deleted
            await session.execute(sa.delete(OutboxEntry).where(OutboxEntry.id <= old[-1]))
            await session.execute(sa.delete(OutboxPrune).where(OutboxPrune.through < old[-1]))
            session.add(OutboxPrune(through=old[-1], deleted=len(old)))
        deleted += len(old)
        if len(old) < batch:
            return deleted
