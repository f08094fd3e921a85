"""Recording changes for the search index and for event subscribers.

Rows are written in the caller's transaction, so a change and its outbox entry
commit or vanish together; consumers apply entries in ``id`` order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.outbox.models import OutboxEntry, OutboxOp


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
