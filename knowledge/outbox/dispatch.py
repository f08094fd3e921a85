"""Delivering incident events to subscribers in this process.

The dispatcher follows the outbox like the indexer does (so events committed by
any process reach subscribers here) and hands each new incident event, with its
incident as the event left it (``knowledge.incidents.snapshot``), to every
subscriber's queue. It starts at the end of the outbox: a subscription sees what
happens after it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa

from knowledge.db import Database
from knowledge.incidents.models import Incident, IncidentEvent
from knowledge.incidents.snapshot import incident_as_of
from knowledge.outbox.cursor import GapTracker, default_gap_timeout
from knowledge.outbox.models import OutboxEntry
from knowledge.retry_log import RetryLog

logger = logging.getLogger("knownfix.events")

QUEUE_SIZE = 1000
BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
class EventMessage:
    event: IncidentEvent
    # As the event left it, detached (events recorded before they carried a snapshot:
    # as it is now). Later changes must not reach back to earlier events, neither in
    # what subscribers are shown nor in what their filters let through.
    incident: Incident
    priority: int
    service_id: int | None


class EventDispatcher:
    def __init__(self, db: Database, *, poll_interval: float = 1.0) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self._gaps = GapTracker(default_gap_timeout(db.is_sqlite))
        self._subscribers: set[asyncio.Queue[EventMessage | None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last = 0
        self._delivered: set[int] = set()
        self._lock = asyncio.Lock()
        self.retries = RetryLog(logger, "dispatching events")

    async def start(self) -> None:
        try:
            async with self.db.read() as session:
                self._last = await session.scalar(sa.select(sa.func.max(OutboxEntry.id))) or 0
        except Exception as error:
            self.retries.failed(error)  # the position is read again on the next round
            self._last = -1
        self._task = asyncio.create_task(self._follow(), name="knownfix-events")

    async def stop(self) -> None:
        self._stopping = True
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)  # tell subscribers to finish
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def notify(self) -> None:
        self._wake.set()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold delivery off (it resumes where it was): for measurements and tests."""
        async with self._lock:
            yield

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[EventMessage | None]]:
        """A queue of new events; ``None`` means the server is shutting down."""
        queue: asyncio.Queue[EventMessage | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def _follow(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch()
            except Exception as error:
                self.retries.failed(error)
            else:
                self.retries.succeeded()

    async def dispatch(self) -> int:
        """Deliver committed events not delivered yet; returns how many."""
        async with self._lock:
            return await self._dispatch()

    async def _dispatch(self) -> int:
        async with self.db.read() as session:
            if self._last < 0:
                self._last = await session.scalar(sa.select(sa.func.max(OutboxEntry.id))) or 0
            rows = (
                await session.execute(
                    sa.select(
                        OutboxEntry.id,
                        OutboxEntry.entity_type,
                        OutboxEntry.entity_id,
                        OutboxEntry.payload,
                    )
                    .where(OutboxEntry.id > self._last)
                    .order_by(OutboxEntry.id)
                    .limit(BATCH)
                )
            ).all()
            fresh = [r for r in rows if r[0] not in self._delivered]
            snapshots = {r[2]: r[3] for r in fresh if r[1] == "incident_event"}
            event_ids = list(snapshots)
            events = list(
                await session.scalars(
                    sa.select(IncidentEvent)
                    .where(IncidentEvent.id.in_(event_ids))
                    .order_by(IncidentEvent.id)
                )
            )
            incidents = {
                i.id: i
                for i in await session.scalars(
                    sa.select(Incident).where(Incident.id.in_({e.incident_id for e in events}))
                )
            }
        for event in events:
            incident = incidents[event.incident_id]
            then = snapshots[event.id] or {}
            if "incident" in then:
                incident = incident_as_of(incident, then["incident"])
            message = EventMessage(
                event=event,
                incident=incident,
                # Rows written before events carried it: the incident as it is now.
                priority=then.get("priority", incident.priority),
                service_id=then.get("service_id", incident.service_id),
            )
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(message)
                except asyncio.QueueFull:
                    # End its stream (the client resubscribes) rather than leave it silent.
                    logger.warning("a subscriber is %d events behind; ending it", QUEUE_SIZE)
                    self._subscribers.discard(queue)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)
        self._delivered.update(r[0] for r in fresh)
        self._last = self._gaps.advance(self._last, [r[0] for r in rows])
        self._delivered = {i for i in self._delivered if i > self._last}
        return len(events)
