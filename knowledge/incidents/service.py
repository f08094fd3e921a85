"""The incident lifecycle (ITIL): detect, classify, assess, plan, execute, review.

Who may do what: reporters (and up) report incidents and add notes to their
own; responders classify, assign, change status, note, resolve, review and
capture knowledge; everyone may read. Every change appends a timeline event
(and an outbox row, so subscribers and the search index hear of it) and bumps
the incident's version; updates name the version they read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.models import Team, User
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleKind
from knowledge.catalog.models import Service
from knowledge.db import flush_or_conflict
from knowledge.errors import InvalidTransitionError, NotFoundError, ValidationError
from knowledge.incidents.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentLink,
    IncidentStatus,
    Level,
    LinkRelation,
    PostIncidentReview,
    ResolutionCode,
)
from knowledge.incidents.policy import IncidentPolicy
from knowledge.incidents.snapshot import snapshot_of
from knowledge.known_errors.models import KnownError
from knowledge.numbering import next_number
from knowledge.outbox.models import OutboxOp
from knowledge.outbox.service import record
from knowledge.pagination import Page, fetch_page
from knowledge.suggestions import signatures
from knowledge.validation import aware, check_version, clean_line, clean_text

RESPONDER = Role.RESPONDER
OPEN = (IncidentStatus.NEW, IncidentStatus.IN_PROGRESS, IncidentStatus.ON_HOLD)
DONE = (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
MAX_DESCRIPTION = 20_000

# status -> statuses a plain status change may lead to (resolve and reopen have their own verbs)
STATUS_CHANGES: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.NEW: frozenset({IncidentStatus.IN_PROGRESS, IncidentStatus.ON_HOLD,
                                   IncidentStatus.CANCELLED}),
    IncidentStatus.IN_PROGRESS: frozenset({IncidentStatus.ON_HOLD, IncidentStatus.CANCELLED}),
    IncidentStatus.ON_HOLD: frozenset({IncidentStatus.IN_PROGRESS, IncidentStatus.CANCELLED}),
    IncidentStatus.RESOLVED: frozenset({IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset(),
    IncidentStatus.CANCELLED: frozenset(),
}  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class IncidentFilter:
    statuses: Sequence[IncidentStatus] | None = None
    priorities: Sequence[int] | None = None
    service_id: int | None = None
    team_id: int | None = None
    assignee_id: int | None = None
    breached: bool | None = None
    alert_fingerprint: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Sla:
    response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None
    response_breached: bool
    resolution_breached: bool

    @property
    def breached(self) -> bool:
        return self.response_breached or self.resolution_breached


def sla_of(incident: Incident, now: dt.datetime) -> Sla:
    """Breached when the target passed before the thing happened (or it still has not)."""

    def late(due: dt.datetime | None, done: dt.datetime | None) -> bool:
        if incident.status is IncidentStatus.CANCELLED and done is None:
            return False  # no service to restore: targets no longer apply
        return due is not None and (done or now) > due

    return Sla(
        response_due_at=incident.response_due_at,
        resolution_due_at=incident.resolution_due_at,
        response_breached=late(incident.response_due_at, incident.acknowledged_at),
        resolution_breached=late(incident.resolution_due_at, incident.resolved_at),
    )


def _breached_clause(now: dt.datetime) -> sa.ColumnElement[bool]:
    def late(due: Any, done: Any) -> sa.ColumnElement[bool]:
        open_or_done = sa.or_(Incident.status != IncidentStatus.CANCELLED, done.is_not(None))
        return sa.and_(due.is_not(None), open_or_done, sa.func.coalesce(done, now) > due)

    return sa.or_(
        late(Incident.response_due_at, Incident.acknowledged_at),
        late(Incident.resolution_due_at, Incident.resolved_at),
    )


# --- reading -------------------------------------------------------------------------


async def get(*, session: AsyncSession, principal: Principal, incident_id: int) -> Incident:
    principal.require(Role.VIEWER, "Reading incidents")
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise NotFoundError(f"no incident with id {incident_id}", field="id")
    return incident


async def get_by_number(
    *, session: AsyncSession, principal: Principal, number: str
) -> Incident | None:
    principal.require(Role.VIEWER, "Reading incidents")
    digits = number.strip().upper().removeprefix("INC-")
    if not digits.isdigit() or len(digits) > 12:
        return None
    return await session.scalar(sa.select(Incident).where(Incident.number == int(digits)))


async def by_ids(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, Incident]:
    rows = await session.scalars(sa.select(Incident).where(Incident.id.in_(set(ids))))
    return {i.id: i for i in rows}


async def get_all(
    *,
    session: AsyncSession,
    principal: Principal,
    now: dt.datetime | None = None,
    filter: IncidentFilter | None = None,
    first: int | None = None,
    after: int | None = None,
) -> Page[Incident]:
    """Newest first. ``now`` is needed only to filter on ``breached``."""
    principal.require(Role.VIEWER, "Listing incidents")
    f = filter or IncidentFilter()
    stmt = sa.select(Incident)
    if f.statuses:
        stmt = stmt.where(Incident.status.in_(list(f.statuses)))
    if f.priorities:
        stmt = stmt.where(Incident.priority.in_(list(f.priorities)))
    for column, value in ((Incident.service_id, f.service_id), (Incident.team_id, f.team_id),
                          (Incident.assignee_id, f.assignee_id),
                          (Incident.alert_fingerprint, f.alert_fingerprint)):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    if f.breached is not None:
        if now is None:
            raise ValueError("filtering on breached needs the time it is judged at")
        clause = _breached_clause(now)
        stmt = stmt.where(clause if f.breached else sa.not_(clause))
    return await fetch_page(
        session, stmt, key=Incident.id, first=first, after=after, descending=True
    )


async def timeline(
    *, session: AsyncSession, principal: Principal, incident_ids: Sequence[int]
) -> dict[int, list[IncidentEvent]]:
    """Events per incident, oldest first; work notes only for responders and up."""
    stmt = sa.select(IncidentEvent).where(IncidentEvent.incident_id.in_(set(incident_ids)))
    if not principal.can(RESPONDER):
        stmt = stmt.where(IncidentEvent.kind != EventKind.NOTE)
    result: dict[int, list[IncidentEvent]] = defaultdict(list)
    for event in await session.scalars(stmt.order_by(IncidentEvent.id)):
        result[event.incident_id].append(event)
    return result


def may_see_event(principal: Principal, event: IncidentEvent) -> bool:
    return event.kind is not EventKind.NOTE or principal.can(RESPONDER)


async def links_of(
    *, session: AsyncSession, incident_ids: Sequence[int]
) -> dict[int, list[IncidentLink]]:
    result: dict[int, list[IncidentLink]] = defaultdict(list)
    for link in await session.scalars(
        sa.select(IncidentLink)
        .where(IncidentLink.incident_id.in_(set(incident_ids)))
        .order_by(IncidentLink.id)
    ):
        result[link.incident_id].append(link)
    return result


async def suggestions_of(
    *, session: AsyncSession, principal: Principal, incident_ids: Sequence[int]
) -> dict[int, list[tuple[IncidentLink, Article | None]]]:
    """Each incident's stored suggestions, best first, each with its article when
    ``principal`` may see it: what a list of incidents shows, in one query instead of
    one for the links and one for their articles."""
    result: dict[int, list[tuple[IncidentLink, Article | None]]] = defaultdict(list)
    rows = await session.execute(
        sa.select(IncidentLink, Article)
        .outerjoin(Article, Article.id == IncidentLink.article_id)
        .where(
            IncidentLink.incident_id.in_(set(incident_ids)),
            IncidentLink.relation == LinkRelation.SUGGESTED,
        )
        # NULL ranks first, as 0, on both databases (they sort NULLs differently).
        .order_by(sa.func.coalesce(IncidentLink.rank, 0), IncidentLink.id)
    )
    for link, article in rows:
        visible = article if article is not None and articles.can_see(principal, article) else None
        result[link.incident_id].append((link, visible))
    return result


async def review_of(
    *, session: AsyncSession, incident_ids: Sequence[int]
) -> dict[int, PostIncidentReview]:
    rows = await session.scalars(
        sa.select(PostIncidentReview).where(PostIncidentReview.incident_id.in_(set(incident_ids)))
    )
    return {r.incident_id: r for r in rows}


# --- writing -------------------------------------------------------------------------


async def add_event(
    session: AsyncSession,
    incident: Incident,
    kind: EventKind,
    principal: Principal | None,
    message: str = "",
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> IncidentEvent:
    """Append to the timeline and tell subscribers (through the outbox)."""
    event = IncidentEvent(
        incident_id=incident.id,
        kind=kind,
        actor_id=principal.user_id if principal else None,
        message=message,
        data=data or {},
    )
    if at is not None:
        event.occurred_at = at
    session.add(event)
    await session.flush()
    await record(
        session=session,
        entity_type="incident_event",
        entity_id=event.id,
        op=OutboxOp.EVENT,
        # The incident as this event left it, for subscription filters and for what
        # subscribers are shown: by the time the event is dispatched the incident may
        # have changed again (knowledge/incidents/snapshot.py).
        payload={
            "incident_id": incident.id,
            "kind": kind.value,
            "priority": incident.priority,
            "service_id": incident.service_id,
            "incident": snapshot_of(incident),
        },
    )
    return event


async def _check_refs(
    session: AsyncSession,
    *,
    service_id: int | None = None,
    team_id: int | None = None,
    assignee_id: int | None = None,
) -> None:
    for model, value, field in ((Service, service_id, "serviceId"), (Team, team_id, "teamId"),
                                (User, assignee_id, "assigneeId")):  # fmt: skip
        if value is not None and await session.get(model, value) is None:
            raise NotFoundError(f"no {model.__name__.lower()} with id {value}", field=field)


def _set_priority(incident: Incident, policy: IncidentPolicy) -> None:
    incident.priority = policy.priority(incident.impact, incident.urgency)
    incident.response_due_at, incident.resolution_due_at = policy.due(
        incident.priority, incident.detected_at
    )


async def report(
    *,
    session: AsyncSession,
    principal: Principal,
    policy: IncidentPolicy,
    now: dt.datetime,
    title: str,
    description: str = "",
    impact: Level = Level.MEDIUM,
    urgency: Level = Level.MEDIUM,
    category: str | None = None,
    service_id: int | None = None,
    error_text: str = "",
    detected_at: dt.datetime | None = None,
    alert_fingerprint: str | None = None,
) -> Incident:
    """Detect: open an incident (people, agents and alerts all come through here)."""
    principal.require(Role.REPORTER, "Reporting incidents")
    if detected_at is not None:
        detected_at = aware(detected_at, field="detectedAt")
    if detected_at is not None and detected_at > now + dt.timedelta(minutes=5):
        raise ValidationError("detectedAt is in the future", field="detectedAt")
    await _check_refs(session, service_id=service_id)
    incident = Incident(
        number=await next_number(session, "incident"),
        title=clean_line(title, field="title"),
        description=clean_text(description, field="description", max_length=MAX_DESCRIPTION,
                               required=False),
        error_text=clean_text(error_text, field="errorText", max_length=MAX_DESCRIPTION,
                              required=False),
        status=IncidentStatus.NEW,
        impact=impact,
        urgency=urgency,
        category=articles.clean_category(category or ""),
        service_id=service_id,
        reporter_id=principal.user_id,
        detected_at=detected_at or now,
        alert_fingerprint=alert_fingerprint,
        alert_occurrences=1 if alert_fingerprint else 0,
    )  # fmt: skip
    incident.error_signature = signatures.primary(
        [incident.title, incident.description], error_text=incident.error_text
    )
    _set_priority(incident, policy)
    session.add(incident)
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    await add_event(session, incident, EventKind.REPORTED, principal, incident.title, at=now)
    return incident


async def _editable(
    session: AsyncSession,
    principal: Principal,
    incident_id: int,
    expected_version: int,
    action: str,
) -> Incident:
    principal.require(RESPONDER, action)
    incident = await get(session=session, principal=principal, incident_id=incident_id)
    check_version(expected=expected_version, current=incident.version,
                  what=f"incident {incident.reference}")  # fmt: skip
    return incident


async def classify(
    *,
    session: AsyncSession,
    principal: Principal,
    policy: IncidentPolicy,
    incident_id: int,
    expected_version: int,
    impact: Level | None = None,
    urgency: Level | None = None,
    category: str | None = None,
    service_id: int | None = None,
    now: dt.datetime | None = None,
) -> Incident:
    """Classify: impact and urgency give the priority (and the SLA due times)."""
    incident = await _editable(session, principal, incident_id, expected_version,
                               "Classifying incidents")  # fmt: skip
    if incident.status not in OPEN:
        raise InvalidTransitionError(
            f"a {incident.status.value} incident cannot be classified", field="id"
        )
    await _check_refs(session, service_id=service_id)
    before = (incident.priority, incident.impact, incident.urgency)
    incident.impact = impact or incident.impact
    incident.urgency = urgency or incident.urgency
    if category is not None:
        incident.category = articles.clean_category(category)
    if service_id is not None:
        incident.service_id = service_id
    _set_priority(incident, policy)
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    await add_event(
        session, incident, EventKind.CLASSIFIED, principal,
        f"P{incident.priority} ({incident.impact.value} impact, {incident.urgency.value} urgency)",
        {"priority_before": before[0], "priority": incident.priority}, at=now,
    )  # fmt: skip
    return incident


async def assign(
    *,
    session: AsyncSession,
    principal: Principal,
    incident_id: int,
    expected_version: int,
    team_id: int | None,
    assignee_id: int | None,
    keep_team: bool = False,
    keep_assignee: bool = False,
    now: dt.datetime | None = None,
) -> Incident:
    """Assess: set the team and the responder (``keep_*`` leaves one as it is)."""
    incident = await _editable(session, principal, incident_id, expected_version,
                               "Assigning incidents")  # fmt: skip
    if incident.status not in OPEN:
        raise InvalidTransitionError(
            f"a {incident.status.value} incident cannot be reassigned", field="id"
        )
    await _check_refs(session, team_id=team_id, assignee_id=assignee_id)
    if not keep_assignee and assignee_id is not None:
        newcomer = await session.get(User, assignee_id)
        if newcomer is not None and not newcomer.role.includes(RESPONDER):
            raise ValidationError(f"{newcomer.username} is not a responder", field="assigneeId")
    if not keep_team:
        incident.team_id = team_id
    if not keep_assignee:
        incident.assignee_id = assignee_id
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    assignee = await session.get(User, incident.assignee_id) if incident.assignee_id else None
    who = assignee.display_name if assignee else "nobody"
    await add_event(session, incident, EventKind.ASSIGNED, principal, f"Assigned to {who}",
                    {"team_id": incident.team_id, "assignee_id": incident.assignee_id},
                    at=now)  # fmt: skip
    return incident


async def change_status(
    *,
    session: AsyncSession,
    principal: Principal,
    now: dt.datetime,
    incident_id: int,
    expected_version: int,
    status: IncidentStatus,
    reason: str = "",
) -> Incident:
    """Plan and execute: in_progress, on_hold, cancelled, closed (resolve and reopen
    have their own functions because they need more than a status)."""
    incident = await _editable(session, principal, incident_id, expected_version,
                               "Changing incident status")  # fmt: skip
    if status not in STATUS_CHANGES[incident.status]:
        hint = {IncidentStatus.RESOLVED: " (use resolveIncident)",
                IncidentStatus.IN_PROGRESS: " (use reopenIncident)"}.get(status, "")  # fmt: skip
        if status is IncidentStatus.IN_PROGRESS and incident.status is not IncidentStatus.RESOLVED:
            hint = ""
        raise InvalidTransitionError(
            f"cannot move a {incident.status.value} incident to {status.value}{hint}",
            field="status",
        )
    reason = clean_text(reason, field="reason", max_length=2000, required=False)
    previous = incident.status
    incident.status = status
    if status is IncidentStatus.IN_PROGRESS and incident.acknowledged_at is None:
        incident.acknowledged_at = now
    if status is IncidentStatus.CLOSED:
        incident.closed_at = now
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    kind = EventKind.CLOSED if status is IncidentStatus.CLOSED else EventKind.STATUS_CHANGED
    await add_event(session, incident, kind, principal,
                    reason or f"{previous.value} -> {status.value}",
                    {"from": previous.value, "to": status.value}, at=now)  # fmt: skip
    if status is IncidentStatus.CLOSED:
        await record(session=session, entity_type="incident", entity_id=incident.id)
    return incident


async def add_note(
    *, session: AsyncSession, principal: Principal, now: dt.datetime, incident_id: int, text: str
) -> IncidentEvent:
    """A work note: responders on any incident, reporters on their own."""
    principal.require(Role.REPORTER, "Adding notes")
    incident = await get(session=session, principal=principal, incident_id=incident_id)
    if not principal.can(RESPONDER) and incident.reporter_id != principal.user_id:
        principal.require(RESPONDER, "Adding notes to someone else's incident")
    text = clean_text(text, field="text", max_length=MAX_DESCRIPTION)
    return await add_event(session, incident, EventKind.NOTE, principal, text, at=now)


async def resolve(
    *,
    session: AsyncSession,
    principal: Principal,
    now: dt.datetime,
    incident_id: int,
    expected_version: int,
    code: ResolutionCode,
    notes: str,
    article_id: int | None = None,
    known_error_id: int | None = None,
    duplicate_of_id: int | None = None,
) -> Incident:
    """Resolve, recording what resolved it: the raw material of the knowledge loop."""
    incident = await _editable(session, principal, incident_id, expected_version,
                               "Resolving incidents")  # fmt: skip
    if incident.status not in OPEN:
        raise InvalidTransitionError(
            f"cannot resolve a {incident.status.value} incident", field="id"
        )
    notes = clean_text(notes, field="notes", max_length=MAX_DESCRIPTION)
    targets = [t for t in (article_id, known_error_id, duplicate_of_id) if t is not None]
    if len(targets) > 1:
        raise ValidationError(
            "name at most one of article, known error or duplicate", field="resolvedBy"
        )
    if code is ResolutionCode.DUPLICATE and duplicate_of_id is None:
        raise ValidationError("a duplicate names the incident it duplicates", field="resolvedBy")
    if article_id is not None:
        article = await articles.get(session=session, principal=principal, article_id=article_id)
        if article.status.value != "published":
            raise ValidationError("only a published article can resolve an incident",
                                  field="resolvedBy.articleId")  # fmt: skip
    if known_error_id is not None and await session.get(KnownError, known_error_id) is None:
        raise NotFoundError(
            f"no known error with id {known_error_id}", field="resolvedBy.knownErrorId"
        )
    if duplicate_of_id is not None:
        if duplicate_of_id == incident.id:
            raise ValidationError(
                "an incident cannot duplicate itself", field="resolvedBy.incidentId"
            )
        await get(session=session, principal=principal, incident_id=duplicate_of_id)
    incident.status = IncidentStatus.RESOLVED
    incident.resolution_code, incident.resolution_notes = code, notes
    incident.resolved_at = now
    incident.acknowledged_at = incident.acknowledged_at or now
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    if targets:
        session.add(IncidentLink(
            incident_id=incident.id,
            relation=LinkRelation.DUPLICATE_OF if duplicate_of_id else LinkRelation.RESOLVED_BY,
            article_id=article_id, known_error_id=known_error_id,
            target_incident_id=duplicate_of_id, created_by_id=principal.user_id,
        ))  # fmt: skip
    await add_event(session, incident, EventKind.RESOLVED, principal, notes,
                    {"code": code.value, "article_id": article_id,
                     "known_error_id": known_error_id, "duplicate_of_id": duplicate_of_id},
                    at=now)  # fmt: skip
    await record(session=session, entity_type="incident", entity_id=incident.id)
    if article_id is not None:  # the article is indexed with the words of what it fixed
        await record(session=session, entity_type="article", entity_id=article_id)
    return incident


async def reopen(
    *,
    session: AsyncSession,
    principal: Principal,
    now: dt.datetime,
    incident_id: int,
    expected_version: int,
    reason: str,
) -> Incident:
    incident = await _editable(session, principal, incident_id, expected_version,
                               "Reopening incidents")  # fmt: skip
    if incident.status is not IncidentStatus.RESOLVED:
        raise InvalidTransitionError(
            f"only resolved incidents can be reopened; this one is {incident.status.value}",
            field="id",
        )
    reason = clean_text(reason, field="reason", max_length=2000)
    incident.status = IncidentStatus.IN_PROGRESS
    incident.resolved_at = None
    incident.reopen_count += 1
    # What resolved it did not hold: it must not count for the article any more.
    undone = await session.scalars(
        sa.delete(IncidentLink)
        .where(
            IncidentLink.incident_id == incident.id,
            IncidentLink.relation.in_([LinkRelation.RESOLVED_BY, LinkRelation.DUPLICATE_OF]),
        )
        .returning(IncidentLink.article_id)
    )
    for article_id in {a for a in undone if a is not None}:  # no longer lends its words
        await record(session=session, entity_type="article", entity_id=article_id)
    await flush_or_conflict(session, what=f"incident {incident.reference}")
    await add_event(session, incident, EventKind.REOPENED, principal, reason, at=now)
    await record(session=session, entity_type="incident", entity_id=incident.id)
    return incident


async def save_review(
    *,
    session: AsyncSession,
    principal: Principal,
    incident_id: int,
    summary: str,
    root_cause: str,
    went_well: str = "",
    went_badly: str = "",
    action_items: Sequence[str] = (),
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> PostIncidentReview:
    """Review: a post-incident review of a resolved P1 or P2 incident."""
    principal.require(RESPONDER, "Writing post-incident reviews")
    incident = await get(session=session, principal=principal, incident_id=incident_id)
    if incident.status not in DONE:
        raise InvalidTransitionError("review an incident once it is resolved", field="incidentId")
    if incident.priority > 2:
        raise InvalidTransitionError("post-incident reviews are for P1 and P2 incidents",
                                     field="incidentId")  # fmt: skip
    if len(action_items) > 50:
        raise ValidationError("at most 50 action items", field="actionItems")
    review = await session.scalar(
        sa.select(PostIncidentReview).where(PostIncidentReview.incident_id == incident_id)
    )
    if review is None:
        review = PostIncidentReview(incident_id=incident_id, author_id=principal.user_id)
        session.add(review)
    elif expected_version is None:
        raise ValidationError("updating a review needs expectedVersion", field="expectedVersion")
    else:
        check_version(expected=expected_version, current=review.version, what="the review")
    review.summary = clean_text(summary, field="summary", max_length=MAX_DESCRIPTION)
    review.root_cause = clean_text(root_cause, field="rootCause", max_length=MAX_DESCRIPTION)
    review.went_well = clean_text(went_well, field="wentWell", max_length=MAX_DESCRIPTION,
                                  required=False)  # fmt: skip
    review.went_badly = clean_text(went_badly, field="wentBadly", max_length=MAX_DESCRIPTION,
                                   required=False)  # fmt: skip
    review.action_items = [clean_line(a, field="actionItems", max_length=500) for a in action_items]
    await flush_or_conflict(session, what="the review")
    await add_event(session, incident, EventKind.REVIEWED, principal, review.summary[:200], at=now)
    return review


async def capture_knowledge(
    *, session: AsyncSession, principal: Principal, incident_id: int, now: dt.datetime | None = None
) -> Article:
    """Draft an article from a resolved incident that no article resolved, and put
    it in the review queue for a knowledge manager."""
    principal.require(RESPONDER, "Capturing knowledge")
    incident = await get(session=session, principal=principal, incident_id=incident_id)
    if incident.status not in DONE:
        raise InvalidTransitionError("capture knowledge once the incident is resolved",
                                     field="incidentId")  # fmt: skip
    linked = await session.scalar(
        sa.select(IncidentLink.id).where(
            IncidentLink.incident_id == incident.id,
            IncidentLink.article_id.is_not(None),
            IncidentLink.relation.in_([LinkRelation.RESOLVED_BY, LinkRelation.RELATED]),
        )
    )
    if linked is not None:
        raise InvalidTransitionError("an article already covers this incident", field="incidentId")
    review = (await review_of(session=session, incident_ids=[incident.id])).get(incident.id)
    service = await session.get(Service, incident.service_id) if incident.service_id else None
    parts = [f"## Symptoms\n\n{incident.description or incident.title}"]
    if incident.error_text:
        parts.append(f"```\n{incident.error_text}\n```")
    if review is not None and review.root_cause:
        parts.append(f"## Cause\n\n{review.root_cause}")
    parts.append(f"## Resolution\n\n{incident.resolution_notes}")
    article = await articles.create(
        session=session,
        principal=principal,
        draft=articles.ArticleDraft(
            title=incident.title,
            summary=f"Captured from {incident.reference}.",
            body="\n\n".join(parts) + "\n",
            kind=ArticleKind.TROUBLESHOOTING,
            category=incident.category or "",
            service_ids=[service.id] if service else [],
            error_signatures=[incident.error_text.splitlines()[0][:500]]
            if incident.error_text
            else [],
        ),
        change_note=f"Captured from {incident.reference}",
    )
    await articles.transition(session=session, principal=principal, article_id=article.id,
                              action=articles.Transition.SUBMIT)  # fmt: skip
    session.add(IncidentLink(incident_id=incident.id, relation=LinkRelation.RELATED,
                             article_id=article.id, created_by_id=principal.user_id))  # fmt: skip
    await add_event(session, incident, EventKind.LINKED, principal,
                    f"Knowledge captured as draft article {article.slug}",
                    {"article_id": article.id}, at=now)  # fmt: skip
    return article
