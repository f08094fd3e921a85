"""Plain, JSON-ready views of search results and incidents, for scripts and agents.

GraphQL clients pick their fields; the ``knownfix`` command and the MCP server
(``api.mcp_server``) give whole answers instead. These functions
build them once, from the same knowledge services and with the same caller's
permissions, so ``--json`` and the text for people show the same facts. Values
are str, int, float, bool, None, lists and dicts; times are ISO 8601 in UTC; every
thing carries the reference people use (slug, KE-0001, INC-000123) and the API's
global id, so a script can go on in GraphQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.relay import to_global_id
from knowledge.accounts.models import Team, User
from knowledge.accounts.principal import Principal
from knowledge.articles import service as articles
from knowledge.articles.models import Article
from knowledge.catalog import service as catalog
from knowledge.catalog.models import Service
from knowledge.errors import NotFoundError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Incident, IncidentLink
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError
from knowledge.search.index import SearchIndex
from knowledge.search.service import SearchHit, SearchResults
from knowledge.suggestions import service as suggestions
from knowledge.suggestions.service import Draft, Signal, Suggestion
from knowledge.suggestions.similar import Similar


def when(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()


def _thing(row: Article | KnownError | Incident) -> dict[str, Any]:
    """What a hit or a link points at: its kind, references and title."""
    if isinstance(row, Article):
        return {"kind": "article", "id": to_global_id("Article", row.id), "ref": row.slug,
                "title": row.title, "status": row.status.value}  # fmt: skip
    if isinstance(row, KnownError):
        return {"kind": "known_error", "id": to_global_id("KnownError", row.id), "ref": row.key,
                "title": row.title, "status": row.status.value}  # fmt: skip
    return {"kind": "incident", "id": to_global_id("Incident", row.id), "ref": row.reference,
            "title": row.title, "status": row.status.value}  # fmt: skip


def thing(row: Article | KnownError | Incident) -> dict[str, Any]:
    """Kind, global id, reference, title and status: enough to name it and fetch it."""
    return _thing(row)


def hit_view(hit: SearchHit) -> dict[str, Any]:
    return {
        **_thing(hit.entity),
        "score": round(hit.score, 4),
        "matched_terms": hit.matched_terms,
        # Escaped text with the matches in <mark>, as the API returns them.
        "highlights": {h.field: h.fragments for h in hit.highlights},
    }


def search_view(query: str, results: SearchResults) -> dict[str, Any]:
    return {
        "query": query,
        "total": results.total,
        "did_you_mean": results.did_you_mean,
        "read_as_plain_text": results.read_as_plain_text,
        "has_more": results.has_next,
        "hits": [hit_view(h) for h in results.hits],
    }


async def _usernames(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(sa.select(User.id, User.username).where(User.id.in_(wanted)))
    return dict(rows.all())


async def _targets(
    session: AsyncSession, principal: Principal, links: list[IncidentLink]
) -> dict[tuple[str, int], dict[str, Any]]:
    """What the links point at, as far as the caller may see it (drafts stay hidden)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    article_ids = [link.article_id for link in links if link.article_id is not None]
    error_ids = [link.known_error_id for link in links if link.known_error_id is not None]
    incident_ids = [link.target_incident_id for link in links if link.target_incident_id]
    if article_ids:
        visible = await articles.by_ids(session=session, principal=principal, ids=article_ids)
        for a in visible.values():
            found["article", a.id] = _thing(a)
    if error_ids:
        for k in (await known_errors.by_ids(session=session, ids=error_ids)).values():
            found["known_error", k.id] = _thing(k)
    if incident_ids:
        for i in (await incidents.by_ids(session=session, ids=incident_ids)).values():
            found["incident", i.id] = _thing(i)
    return found


def _link_key(link: IncidentLink) -> tuple[str, int]:
    if link.article_id is not None:
        return "article", link.article_id
    if link.known_error_id is not None:
        return "known_error", link.known_error_id
    return "incident", link.target_incident_id or 0


async def incident_view(
    *, session: AsyncSession, principal: Principal, incident: Incident, now: dt.datetime
) -> dict[str, Any]:
    """An incident with its SLA, links and the timeline the caller may see."""
    events = (
        await incidents.timeline(session=session, principal=principal, incident_ids=[incident.id])
    )[incident.id]
    links = (await incidents.links_of(session=session, incident_ids=[incident.id]))[incident.id]
    targets = await _targets(session, principal, links)
    names = await _usernames(
        session,
        [incident.reporter_id, incident.assignee_id]
        + [e.actor_id for e in events]
        + [link.created_by_id for link in links],
    )
    service = await session.get(Service, incident.service_id) if incident.service_id else None
    team = await session.get(Team, incident.team_id) if incident.team_id else None
    sla = incidents.sla_of(incident, now)
    return {
        "id": to_global_id("Incident", incident.id),
        "number": incident.reference,
        "title": incident.title,
        "description": incident.description,
        "status": incident.status.value,
        "impact": incident.impact.value,
        "urgency": incident.urgency.value,
        "priority": incident.priority,
        "category": incident.category,
        "service": service.slug if service else None,
        "team": team.slug if team else None,
        "assignee": names.get(incident.assignee_id or 0),
        "reporter": names.get(incident.reporter_id or 0),
        "error_text": incident.error_text,
        "detected_at": when(incident.detected_at),
        "acknowledged_at": when(incident.acknowledged_at),
        "resolved_at": when(incident.resolved_at),
        "closed_at": when(incident.closed_at),
        "resolution_code": incident.resolution_code.value if incident.resolution_code else None,
        "resolution_notes": incident.resolution_notes,
        "reopen_count": incident.reopen_count,
        "alert_occurrences": incident.alert_occurrences,
        "version": incident.version,
        "sla": {
            "response_due_at": when(sla.response_due_at),
            "resolution_due_at": when(sla.resolution_due_at),
            "response_breached": sla.response_breached,
            "resolution_breached": sla.resolution_breached,
            "breached": sla.breached,
        },
        "links": [
            {
                "relation": link.relation.value,
                "target": targets.get(_link_key(link)),  # None: hidden from the caller
                "score": link.score,
                "rank": link.rank,
                "reason": link.reason,
                "created_by": names.get(link.created_by_id or 0),
                "created_at": when(link.created_at),
            }
            for link in links
        ],
        "timeline": [
            {
                "occurred_at": when(e.occurred_at),
                "kind": e.kind.value,
                "actor": names.get(e.actor_id or 0),
                "message": e.message,
            }
            for e in events
        ],
    }


# --- suggestions, similar incidents and articles (``knownfix suggest``, the MCP server) ---


def _signal_view(signal: Signal) -> dict[str, Any]:
    return {
        "name": signal.name,
        "value": round(signal.value, 4),
        "weight": round(signal.weight, 4),
        "contribution": round(signal.contribution, 4),
        "detail": signal.detail,
    }


async def suggest(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    title: str,
    description: str = "",
    error_text: str = "",
    service: str | None = None,
    category: str | None = None,
    first: int = 5,
) -> dict[str, Any]:
    """Suggestions for an incident being written (``service`` is a slug); nothing is saved."""
    service_id = None
    if service:
        row = await catalog.get_by_slug(session=session, principal=principal, slug=service)
        if row is None:
            raise NotFoundError(f"no service {service!r}", field="service")
        service_id = row.id
    draft = Draft(
        title=title, description=description, error_text=error_text, service_id=service_id,
        category=category,
    )  # fmt: skip
    found = await suggestions.suggest(
        session=session, principal=principal, index=index, draft=draft, first=first
    )
    return await suggestions_view(session=session, draft=draft, service=service, found=found)


async def suggestions_view(
    *, session: AsyncSession, draft: Draft, service: str | None, found: list[Suggestion]
) -> dict[str, Any]:
    """Suggestions for a draft, best first, each with its signals and evidence."""
    evidence_ids = [e.incident_id for s in found for e in s.evidence]
    past = await incidents.by_ids(session=session, ids=evidence_ids) if evidence_ids else {}
    return {
        "draft": {"title": draft.title, "service": service, "category": draft.category},
        "suggestions": [
            {
                **_thing(s.target),
                "rank": s.rank,
                "score": round(s.score, 4),  # 0-1: how often such a top suggestion was right
                "explanation": s.explanation(),
                "signals": [_signal_view(signal) for signal in s.signals],
                "evidence": [
                    {**_thing(past[e.incident_id]), "similarity": round(e.similarity, 4)}
                    for e in s.evidence
                    if e.incident_id in past
                ],
                "matched_terms": s.matched_terms,
                "highlights": {h.field: h.fragments for h in s.highlights},
            }
            for s in found
        ],
    }


def similar_view(incident: Incident, found: list[Similar]) -> dict[str, Any]:
    """Resolved incidents like this one, with how each was resolved."""
    return {
        "incident": _thing(incident),
        "similar": [
            {
                **_thing(s.incident),
                "similarity": round(s.similarity, 4),
                "same_signature": s.same_signature,
                "reason": s.reason,
                "resolution_code": (
                    s.incident.resolution_code.value if s.incident.resolution_code else None
                ),
                "resolution_notes": s.incident.resolution_notes,
                "resolved_at": when(s.incident.resolved_at),
            }
            for s in found
        ],
    }


async def article_view(
    *, session: AsyncSession, principal: Principal, article: Article
) -> dict[str, Any]:
    """An article with its Markdown body, tags, services, known error and outcomes."""
    tags = (await articles.tags_of(session=session, article_ids=[article.id]))[article.id]
    services = (await articles.services_of(session=session, article_ids=[article.id]))[article.id]
    stats = (await articles.stats_of(session=session, article_ids=[article.id]))[article.id]
    known_error = (
        await known_errors.get(
            session=session, principal=principal, known_error_id=article.known_error_id
        )
        if article.known_error_id is not None
        else None
    )
    return {
        **_thing(article),
        "slug": article.slug,
        "article_kind": article.kind.value,
        "summary": article.summary,
        "body": article.body,  # Markdown, as written
        "category": article.category,
        "tags": tags,
        "services": [s.slug for s in services],
        "error_signatures": list(article.error_signatures),
        "sources": list(article.sources),
        "known_error": _thing(known_error) if known_error is not None else None,
        "version": article.version,
        "revision": article.current_revision,
        "published_at": when(article.published_at),
        "updated_at": when(article.updated_at),
        "stats": {
            "views": stats.views,
            "helpful": stats.helpful,
            "not_helpful": stats.not_helpful,
            "resolved_incidents": stats.resolved_incidents,
        },
    }
