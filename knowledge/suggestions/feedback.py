"""Suggestions kept with an incident, and the responder's verdict on them.

Reporting or classifying an incident stores its top suggestions as
``suggested`` links (score, rank and the explanation as the reason) and says
so on the timeline, so the suggestions a responder saw can be audited after
the fact. Accepting or rejecting one adds a verdict link that the ranking reads
at once (``history.outcomes``): a rejected target is never suggested again for
the same incident, and counts against the target everywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from knowledge.accounts.principal import SYSTEM, Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleStatus
from knowledge.db import (
    Database,
    DatabaseBusyError,
    flush_or_conflict,
    is_busy,
    is_unreachable,
)
from knowledge.errors import InvalidTransitionError, NotFoundError, ValidationError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import EventKind, Incident, IncidentLink, LinkRelation
from knowledge.known_errors.models import KnownError
from knowledge.outbox.service import record
from knowledge.search.index import IndexUnavailableError, SearchIndex
from knowledge.suggestions import history
from knowledge.suggestions.service import Draft, Suggestion, suggest
from knowledge.validation import check_version, clean_text

logger = logging.getLogger("knownfix.suggestions")

STORED = 5
MAX_REASON = 2000
VERDICTS = (LinkRelation.ACCEPTED, LinkRelation.REJECTED)


def draft_of(incident: Incident) -> Draft:
    return Draft(
        title=incident.title,
        description=incident.description,
        error_text=incident.error_text,
        service_id=incident.service_id,
        category=incident.category,
    )


async def rejected_for(*, session: AsyncSession, incident_id: int) -> frozenset[str]:
    rows = await session.execute(
        sa.select(IncidentLink.article_id, IncidentLink.known_error_id).where(
            IncidentLink.incident_id == incident_id,
            IncidentLink.relation == LinkRelation.REJECTED,
        )
    )
    return frozenset(k for a, e in rows if (k := history.link_key(a, e)) is not None)


async def store(
    *,
    session: AsyncSession,
    principal: Principal,
    incident: Incident,
    found: list[Suggestion],
    now: dt.datetime,
) -> list[Suggestion]:
    """Replace the incident's ``suggested`` links with ``found`` (its current top
    suggestions, best first), and say so on its timeline.

    Verdict links stay: what a responder accepted or rejected is history. A target
    rejected since ``found`` was worked out is left out, and the rest keep their order.
    """  # fmt: skip
    rejected = await rejected_for(session=session, incident_id=incident.id)
    found = [
        dataclasses.replace(s, rank=rank)
        for rank, s in enumerate((s for s in found if s.key not in rejected), start=1)
    ]
    await session.execute(
        sa.delete(IncidentLink).where(
            IncidentLink.incident_id == incident.id,
            IncidentLink.relation == LinkRelation.SUGGESTED,
        )
    )
    for suggestion in found:
        session.add(
            IncidentLink(
                incident_id=incident.id,
                relation=LinkRelation.SUGGESTED,
                article_id=suggestion.target.id if suggestion.kind == "article" else None,
                known_error_id=suggestion.target.id if suggestion.kind == "known_error" else None,
                score=suggestion.score,
                rank=suggestion.rank,
                reason=suggestion.explanation()[:MAX_REASON],
                created_by_id=principal.user_id,
            )
        )
    if found:
        await incidents.add_event(
            session, incident, EventKind.SUGGESTION_SHOWN, principal,
            f"{len(found)} suggestion(s); best: {_title(found[0])}",
            {"suggestions": [
                {"kind": s.kind, "id": s.target.id, "rank": s.rank, "score": round(s.score, 4)}
                for s in found
            ]},
            at=now,
        )  # fmt: skip
    return found


def _title(suggestion: Suggestion) -> str:
    target = suggestion.target
    return target.title if isinstance(target, Article) else f"{target.key} {target.title}"


async def _target(
    session: AsyncSession, principal: Principal, article_id: int | None, known_error_id: int | None
) -> Article | KnownError:
    if (article_id is None) == (known_error_id is None):
        raise ValidationError("name exactly one of an article or a known error", field="target")
    if article_id is not None:
        try:
            article = await articles.get(
                session=session, principal=principal, article_id=article_id
            )
        except NotFoundError as error:
            raise NotFoundError(error.message, field="articleId") from None
        if article.status is not ArticleStatus.PUBLISHED:
            raise ValidationError(
                "only a published article can be accepted or rejected", field="articleId"
            )
        return article
    known_error = await session.get(KnownError, known_error_id)
    if known_error is None:
        raise NotFoundError(f"no known error with id {known_error_id}", field="knownErrorId")
    return known_error


async def judge(
    *,
    session: AsyncSession,
    principal: Principal,
    now: dt.datetime,
    incident_id: int,
    expected_version: int,
    accepted: bool,
    article_id: int | None = None,
    known_error_id: int | None = None,
    reason: str = "",
) -> Incident:
    """Accept or reject a suggestion (or any published knowledge) for an incident.

    A new verdict replaces an earlier one for the same target, so a responder
    can change their mind; the incident's version moves, so two responders
    judging at once get a conflict instead of silently overwriting each other.
    """
    principal.require(Role.RESPONDER, "Judging suggestions")
    try:
        incident = await incidents.get(
            session=session, principal=principal, incident_id=incident_id
        )
    except NotFoundError as error:
        raise NotFoundError(error.message, field="incidentId") from None
    check_version(expected=expected_version, current=incident.version,
                  what=f"incident {incident.reference}")  # fmt: skip
    if incident.status not in incidents.OPEN:
        raise InvalidTransitionError(
            f"suggestions of a {incident.status.value} incident are settled", field="incidentId"
        )
    reason = clean_text(reason, field="reason", max_length=MAX_REASON, required=False)
    target = await _target(session, principal, article_id, known_error_id)
    await session.execute(
        sa.delete(IncidentLink).where(
            IncidentLink.incident_id == incident.id,
            IncidentLink.relation.in_(VERDICTS),
            IncidentLink.article_id == article_id
            if article_id is not None
            else IncidentLink.known_error_id == known_error_id,
        )
    )
    relation = LinkRelation.ACCEPTED if accepted else LinkRelation.REJECTED
    session.add(
        IncidentLink(
            incident_id=incident.id, relation=relation, article_id=article_id,
            known_error_id=known_error_id, reason=reason, created_by_id=principal.user_id,
        )
    )  # fmt: skip
    # Move the version even when nothing else changes: verdicts are serialised per incident.
    flag_modified(incident, "updated_at")
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    kind = EventKind.SUGGESTION_ACCEPTED if accepted else EventKind.SUGGESTION_REJECTED
    what = target.title if isinstance(target, Article) else f"{target.key} {target.title}"
    await incidents.add_event(
        session, incident, kind, principal,
        f"{'Accepted' if accepted else 'Rejected'}: {what}" + (f" ({reason})" if reason else ""),
        {"article_id": article_id, "known_error_id": known_error_id, "reason": reason},
        at=now,
    )  # fmt: skip
    await record(session=session, entity_type="incident", entity_id=incident.id)
    if article_id is not None:  # an accepted article is indexed with the incident's words
        await record(session=session, entity_type="article", entity_id=article_id)
    return incident


async def store_after_commit(
    *, db: Database, index: SearchIndex | None, incident_id: int, now: dt.datetime
) -> list[Suggestion]:
    """Store suggestions for an incident that was just committed, in a transaction of
    their own: a search must not hold SQLite's write lock, and neither an index nor a
    database that fails now may fail the report, which is saved already (answering
    with an error would invite a retry, and a duplicate incident). The incident has
    no suggestions then until it is next classified."""
    if index is None or not index.is_open:
        return []
    try:
        # Search in a read session: on SQLite a write transaction holds the one write
        # lock from its start, and every other writer would wait out the search.
        async with db.read() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                return []
            draft = draft_of(incident)
            found = await suggest(
                session=session, principal=SYSTEM, index=index, draft=draft, first=STORED,
                incident_id=incident.id,
                exclude=await rejected_for(session=session, incident_id=incident.id),
            )  # fmt: skip
        async with db.transaction() as session:
            incident = await session.get(Incident, incident_id)
            # Reclassified meanwhile: that call stores suggestions for the new text.
            if incident is None or draft_of(incident) != draft:
                return []
            return await store(
                session=session, principal=SYSTEM, incident=incident, found=found, now=now
            )
    except IndexUnavailableError as error:
        logger.warning("no suggestions for incident %s: %s", incident_id, error)
    except (SQLAlchemyError, OSError, DatabaseBusyError) as error:
        logger.warning(
            "no suggestions for incident %s: the database failed after it was saved (%s)",
            incident_id, error, exc_info=not (is_unreachable(error) or is_busy(error)),
        )  # fmt: skip
    return []
