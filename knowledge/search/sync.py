"""Keeping the index in step with the database through the outbox.

The indexer reads outbox rows after the last id the index has applied, reloads
the entities they name (the database is the source of truth, so a row only says
"look again"), and commits the new documents together with the new last id.
Applying an entity twice is harmless, which is what makes crash recovery and
rebuilds simple: after any stop, it just catches up.

Ids can commit out of order on PostgreSQL (see ``knowledge.outbox.cursor``):
rows beyond a young gap are applied but looked at again until the gap fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.articles import service as articles
from knowledge.articles.models import Article
from knowledge.catalog.models import Service
from knowledge.db import Database, is_unreachable, utcnow
from knowledge.incidents.models import Incident, IncidentLink, IncidentStatus, LinkRelation
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError
from knowledge.outbox.cursor import GapTracker, default_gap_timeout
from knowledge.outbox.models import OutboxEntry
from knowledge.outbox.service import prune, pruned_through
from knowledge.retry_log import RetryLog
from knowledge.search.documents import (
    Document,
    article_document,
    document_meaning_title,
    incident_document,
    key_of,
    known_error_document,
)
from knowledge.search.index import SearchIndex
from knowledge.search.writer_lock import (
    WriterLock,
    prefer,
    preferred_writer,
    rebuild_requests,
    unprefer,
)

logger = logging.getLogger("knownfix.search")
T = TypeVar("T")

INDEXED_KINDS = ("article", "known_error", "incident")
# Kinds whose title is compared in meaning with an incident's (suggestion candidates).
MEANINGFUL_KINDS = ("article", "known_error")
SEARCHABLE_INCIDENTS = (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
BATCH = 500
# Incidents resolved by (or accepted for) an article lend it their words; the latest
# few, each cut short, so a popular article's document stays small.
REPORTED_RELATIONS = (LinkRelation.RESOLVED_BY, LinkRelation.ACCEPTED)
REPORTED_KEPT = 50
REPORTED_CHARS = 2000
PRUNE_INTERVAL = 3600.0  # seconds between the writer's prunings of old outbox rows
# How often a process that does not write the index looks for the writer's commits (a
# link and a directory listing when nothing changed). A search that meets a commit
# first opens the new searcher and reads its segment itself, with its caller waiting;
# looking once per outbox poll left that to nearly every search after a write.
FOLLOW_INTERVAL = 0.05


async def load_documents(
    session: AsyncSession, kind: str, ids: Sequence[int]
) -> tuple[list[Document], list[str]]:
    """Current documents for these entities, and the keys to delete (gone or unsearchable)."""
    found: list[Document] = []
    if kind == "article":
        rows = list(await session.scalars(sa.select(Article).where(Article.id.in_(ids))))
        tags = await articles.tags_of(session=session, article_ids=ids)
        services = await articles.services_of(session=session, article_ids=ids)
        reported = await _reported(session, ids)
        found = [
            article_document(a, tags[a.id], [s.slug for s in services[a.id]], reported[a.id])
            for a in rows
        ]
    elif kind == "known_error":
        errors = list(await session.scalars(sa.select(KnownError).where(KnownError.id.in_(ids))))
        linked = await known_errors.services_of(session=session, known_error_ids=ids)
        found = [known_error_document(k, [s.slug for s in linked[k.id]]) for k in errors]
    elif kind == "incident":
        incidents = list(
            await session.scalars(
                sa.select(Incident).where(
                    Incident.id.in_(ids), Incident.status.in_(SEARCHABLE_INCIDENTS)
                )
            )
        )
        slugs = dict(
            (
                await session.execute(
                    sa.select(Service.id, Service.slug).where(
                        Service.id.in_({i.service_id for i in incidents if i.service_id})
                    )
                )
            ).all()
        )
        found = [
            incident_document(i, [slugs[i.service_id]] if i.service_id in slugs else [])
            for i in incidents
        ]
    present = {d["key"] for d in found}
    return found, [key_of(kind, i) for i in ids if key_of(kind, i) not in present]


async def _reported(session: AsyncSession, article_ids: Sequence[int]) -> dict[int, list[str]]:
    """How people described the incidents each article resolved (the latest
    ``REPORTED_KEPT``): the words reporters use, which the article's author may not
    have. An incident typed as "problem with install" is found by the article that
    fixed the last one described like that."""
    latest = (
        sa.select(
            IncidentLink.article_id,
            Incident.title,
            sa.func.substr(Incident.description, 1, REPORTED_CHARS).label("description"),
            sa.func.row_number()
            .over(partition_by=IncidentLink.article_id, order_by=IncidentLink.id.desc())
            .label("n"),
        )
        .join(Incident, Incident.id == IncidentLink.incident_id)
        .where(
            IncidentLink.article_id.in_(article_ids),
            IncidentLink.relation.in_(REPORTED_RELATIONS),
        )
        .subquery()
    )
    found: dict[int, list[str]] = defaultdict(list)
    rows = await session.execute(
        sa.select(latest.c.article_id, latest.c.title, latest.c.description)
        .where(latest.c.n <= REPORTED_KEPT)
        .order_by(latest.c.article_id, latest.c.n)
    )
    for article_id, title, description in rows:
        found[article_id].append(f"{title}\n{description}")
    return found


class Indexer:
    """The one writer of a host's index: catches up at start, then follows the outbox.

    Processes sharing an index directory (``--workers N``) each have an ``Indexer``,
    but only the holder of the directory's ``WriterLock`` writes; the others search
    what it wrote, opening each of its commits within ``follow_interval`` seconds, and
    try the lock again on every round, so one of them takes over when the writer exits.

    With ``outbox_retention``, the writer also deletes outbox rows older than that,
    every ``prune_interval`` seconds, after it has applied them itself. An index
    that is behind what was pruned (its host was down for longer) is rebuilt from the
    database at its next catch-up instead of missing the pruned changes.
    """

    def __init__(
        self,
        db: Database,
        index: SearchIndex,
        *,
        poll_interval: float = 1.0,
        gap_timeout: float | None = None,
        outbox_retention: dt.timedelta | None = None,
        prune_interval: float = PRUNE_INTERVAL,
        follow_interval: float = FOLLOW_INTERVAL,
        stand_in: bool = False,
        preferred: bool = False,
    ) -> None:
        self.db = db
        # A worker of ``serve``: it writes the index only while the process meant to
        # (``writer.preferred``) is not running, and hands the lock back once it runs
        # again. Otherwise a worker busy serving requests would win the lock as often
        # as that process, whenever it came free.
        self.stand_in = stand_in
        # That process (``knownfix indexer``): it names itself whenever nobody running
        # is named (at start, after another one stopped, after the directory was
        # replaced) or it waits for the named one, and lets the name go when it stops.
        self.preferred = preferred
        self.index = index
        self.poll_interval = poll_interval
        self.follow_interval = follow_interval
        self.outbox_retention = outbox_retention
        self.prune_interval = prune_interval
        self._next_prune = 0.0  # monotonic time; the first writer round prunes
        # SQLite writers are serialised (BEGIN IMMEDIATE) and AUTOINCREMENT ids are
        # assigned inside the transaction, so ids there commit in order and a gap
        # can only be rows pruned or rolled back: nothing to wait for.
        self._gaps = GapTracker(
            default_gap_timeout(db.is_sqlite) if gap_timeout is None else gap_timeout
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._needs_rebuild = False
        self._stopping = False
        self.last_error: str | None = None
        self.retries = RetryLog(logger, "indexing")
        self.writer_lock = WriterLock(index.root)

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the index (otherwise another process does)."""
        return self.writer_lock.held

    async def start(self) -> None:
        """Open the index (rebuilding it if missing or broken), catch up, then follow.

        A database that is down does not stop the start: the follower keeps
        trying, and readiness reports the error until it succeeds.
        """
        await self._round()
        self._task = asyncio.create_task(self._follow(), name="knownfix-indexer")

    async def _round(self) -> None:
        """As the writer, apply the outbox; otherwise take over if the writer is gone,
        or else have the index open for searching and up to date with what the writer
        committed (a search would refresh it itself, and wait for it)."""
        lock = self.writer_lock
        if lock.held and not await _in_thread(lock.is_current):
            logger.warning(
                "the index directory %s was replaced; electing its writer again", lock.path.parent
            )
            lock.release()
        if self.preferred:
            await _in_thread(self._claim_preference)
        deferring = self.stand_in and await _in_thread(self._someone_else_preferred)
        if lock.held and deferring:
            logger.info("process %d hands the index writing back to its writer", os.getpid())
            lock.release()
        if not lock.held:
            if deferring or not await _in_thread(lock.acquire):
                if not self.index.is_open:
                    await _in_thread(self.index.open_existing)
                if self.index.is_open:
                    await _in_thread(self.index.warm)
                return
            logger.info("process %d writes the search index in %s", os.getpid(), self.index.root)
            self._needs_rebuild = not await _in_thread(self.index.open)
        await self._step()
        # Only after a round that applied the outbox: an outage is reported once, by
        # the retry log of the indexing itself.
        if (
            self.outbox_retention is not None
            and self.last_error is None
            and time.monotonic() >= self._next_prune
        ):
            self._next_prune = time.monotonic() + self.prune_interval
            await self._prune(self.outbox_retention)

    def _someone_else_preferred(self) -> bool:
        return preferred_writer(self.index.root) not in (None, os.getpid())

    def _claim_preference(self) -> None:
        """Name this process if no running writer is named, or if the one named holds
        the lock already and this one waits for it (another server's writer, in a
        restart that overlaps): the name says who takes the lock when it comes free,
        so the workers leave it to this process then."""
        named = preferred_writer(self.index.root)
        lock = self.writer_lock
        if named is None or (named != os.getpid() and not lock.held and named == lock.holder()):
            prefer(self.index.root)

    async def _prune(self, retention: dt.timedelta) -> None:
        try:
            count = await prune(db=self.db, older_than=utcnow() - retention)
        except Exception as error:  # the next interval tries again
            if not is_unreachable(error):  # an outage: the next indexing round says so
                logger.warning("pruning the outbox failed: %s: %s", type(error).__name__, error)
            return
        if count:
            logger.info("pruned %d outbox rows older than %s", count, retention)

    async def _step(self) -> None:
        try:
            # Asked for by ``knownfix reindex`` while this process holds the lock.
            requests = await _in_thread(rebuild_requests, self.index.root)
            if self._needs_rebuild or requests:
                if requests:
                    logger.info("rebuilding the search index in %s on request", self.index.root)
                await self.rebuild()
                self._needs_rebuild = False
                for request in requests:
                    request.unlink(missing_ok=True)
            await self.catch_up()
            self.last_error = None
            self.retries.succeeded()
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            self.retries.failed(error)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.index.close)
        self.writer_lock.release()
        if self.preferred:
            await asyncio.to_thread(unprefer, self.index.root)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold indexing off (it resumes where it was): for measurements and maintenance."""
        async with self._lock:
            yield

    def notify(self) -> None:
        """Something was committed: look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def _follow(self) -> None:
        while not self._stopping:
            interval = (
                self.poll_interval
                if self.is_writer
                else min(self.poll_interval, self.follow_interval)
            )
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races with the event, and stop() then waits for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            except Exception as error:
                self.retries.failed(error)

    @property
    def gap_timeout(self) -> float:
        return self._gaps.gap_timeout

    @gap_timeout.setter
    def gap_timeout(self, seconds: float) -> None:
        self._gaps.gap_timeout = seconds

    def _advance(self, last: int, ids: Sequence[int]) -> int:
        return self._gaps.advance(last, ids)

    async def catch_up(self) -> int:
        """Apply every committed outbox row not yet in the index; returns how many.

        If rows the index has not applied were pruned, rebuild it instead (and return 0).
        """
        applied = 0
        async with self._lock:
            while True:
                last = await _in_thread(self.index.last_seq)
                async with self.db.read() as session:
                    entries = (
                        await session.execute(
                            sa.select(
                                OutboxEntry.id, OutboxEntry.entity_type, OutboxEntry.entity_id
                            )
                            .where(OutboxEntry.id > last)
                            .order_by(OutboxEntry.id)
                            .limit(BATCH)
                        )
                    ).all()
                    # Read after the entries: rows pruned before they were read show here.
                    horizon = await pruned_through(session=session)
                    if last < horizon:
                        break  # what is left of the outbox would not make the index whole
                    if not entries:
                        return applied
                    wanted: dict[str, set[int]] = defaultdict(set)
                    for _, kind, entity_id in entries:
                        if kind in INDEXED_KINDS:  # other rows are events for subscribers
                            wanted[kind].add(entity_id)
                    upserts: list[Document] = []
                    deletes: list[str] = []
                    for kind, ids in wanted.items():
                        found, gone = await load_documents(session, kind, sorted(ids))
                        upserts += found
                        deletes += gone
                await _in_thread(with_meanings, self.index, upserts)
                seq = self._advance(last, [e[0] for e in entries])
                await _in_thread(self.index.apply, upserts, deletes, seq)
                applied += len(entries)
                if seq == last or len(entries) < BATCH:
                    return applied
            logger.warning(
                "the search index in %s applied the outbox up to row %d, but rows up to %d "
                "were pruned since: rebuilding it from the database",
                self.index.root, last, horizon,
            )  # fmt: skip
            await self._rebuild()
            return 0

    async def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Index everything in the database into a new generation and swap it in."""
        async with self._lock:
            return await self._rebuild(progress)

    async def _rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        last = await _in_thread(self.index.last_seq)
        async with self.db.read() as session:
            # Take the outbox position first: rows after it are applied again later,
            # and applying a newer state twice is harmless. Stop before a young gap:
            # on PostgreSQL an earlier id may still be committing.
            ids = list(
                await session.scalars(
                    sa.select(OutboxEntry.id).where(OutboxEntry.id > last).order_by(OutboxEntry.id)
                )
            )
            # A new index starts below the oldest row still in the outbox, and never
            # below what was pruned (it would look as if it had missed those rows).
            start = max(last, await pruned_through(session=session))
            seq = self._advance(start or max(0, (ids[0] if ids else 1) - 1), ids)
            total = await _count_indexable(session)
        rebuild = await _in_thread(self.index.begin_rebuild)
        try:
            async for batch in _all_documents(self.db):
                await _in_thread(with_meanings, self.index, batch)
                await _in_thread(rebuild.add, batch)
                if progress is not None:
                    progress(rebuild.count, total)
            await _in_thread(rebuild.finish, seq)
        except BaseException:
            await _in_thread(rebuild.abort)
            raise
        return rebuild.count


async def _in_thread(function: Callable[..., T], /, *args: Any) -> T:
    """``asyncio.to_thread``, except that a cancellation waits for the thread to return.

    Cancelling the caller does not stop the thread: a stop that went on at once would
    close the index and release the writer lock under a commit still being written,
    or let a rebuild's clean-up delete the generation its ``finish`` is swapping in
    (the index then points at nothing). So the stop waits for the one call in flight,
    and the indexer stops between writes.
    """
    running = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        if not running.cancelled() and (error := running.exception()) is not None:
            logger.warning("index work interrupted by a stop failed: %s", error)
        raise


async def _count_indexable(session: AsyncSession) -> int:
    counts = [
        await session.scalar(sa.select(sa.func.count()).select_from(Article)),
        await session.scalar(sa.select(sa.func.count()).select_from(KnownError)),
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(Incident)
            .where(Incident.status.in_(SEARCHABLE_INCIDENTS))
        ),
    ]
    return sum(c or 0 for c in counts)


def with_meanings(index: SearchIndex, documents: Sequence[Document]) -> None:
    """Give articles' and known errors' documents their title's sentence vector (the
    ``meaning`` field). Done by the writer, outside any database session: a title
    costs about 7 ms of CPU, a batch of new articles seconds."""
    titled = [d for d in documents if d["kind"] in MEANINGFUL_KINDS]
    if titled:
        vectors = index.sentences.encode([document_meaning_title(d) for d in titled])
        for document, vector in zip(titled, vectors, strict=True):
            document["meaning"] = vector.astype(np.float16).tobytes()


async def _all_documents(db: Database) -> AsyncIterator[list[Document]]:
    for kind, model in (("article", Article), ("known_error", KnownError), ("incident", Incident)):
        after = 0
        while True:
            async with db.read() as session:
                ids = list(
                    await session.scalars(
                        sa.select(model.id).where(model.id > after).order_by(model.id).limit(BATCH)
                    )
                )
                if not ids:
                    break
                documents, _ = await load_documents(session, kind, ids)
            yield documents
            after = ids[-1]
