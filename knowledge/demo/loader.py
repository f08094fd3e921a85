"""Loading ``demo.json`` into the database, idempotently.

Each entry is keyed (slug, username, KE key, incident title) and skipped when it
already exists, so loading twice adds nothing and never overwrites curated data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts import tokens
from knowledge.accounts.models import ApiToken, Team, TeamMembership, User
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles.models import (
    Article,
    ArticleKind,
    ArticleRevision,
    ArticleService,
    ArticleStatus,
    ArticleTag,
)
from knowledge.catalog.models import Service
from knowledge.db import utcnow
from knowledge.incidents.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentLink,
    IncidentStatus,
    Level,
    LinkRelation,
    ResolutionCode,
)
from knowledge.incidents.policy import IncidentPolicy
from knowledge.known_errors.models import KnownError, KnownErrorService, KnownErrorStatus
from knowledge.numbering import next_number
from knowledge.outbox.service import record

DEV_ADMIN_USERNAME = "admin"
POLICY = IncidentPolicy()


@dataclasses.dataclass
class LoadReport:
    teams: int = 0
    services: int = 0
    users: int = 0
    known_errors: int = 0
    articles: int = 0
    incidents: int = 0

    @property
    def total(self) -> int:
        return sum(dataclasses.asdict(self).values())


def demo_data() -> dict[str, Any]:
    text = resources.files("knowledge.demo").joinpath("demo.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


async def is_empty(session: AsyncSession) -> bool:
    """A database nobody has used: no users, articles or incidents."""
    for model in (User, Article, Incident):
        if await session.scalar(sa.select(sa.func.count()).select_from(model)):
            return False
    return True


async def load(session: AsyncSession, data: dict[str, Any] | None = None) -> LoadReport:
    data = data or demo_data()
    report = LoadReport()
    now = utcnow()

    teams: dict[str, Team] = {t.slug: t for t in await session.scalars(sa.select(Team))}
    for item in data["teams"]:
        if item["slug"] not in teams:
            team = Team(slug=item["slug"], name=item["name"], description=item["description"])
            session.add(team)
            teams[team.slug] = team
            report.teams += 1
    await session.flush()

    services: dict[str, Service] = {s.slug: s for s in await session.scalars(sa.select(Service))}
    for item in data["services"]:
        if item["slug"] not in services:
            service = Service(
                slug=item["slug"],
                name=item["name"],
                description=item["description"],
                owner_team_id=teams[item["team"]].id,
            )
            session.add(service)
            services[service.slug] = service
            report.services += 1
    await session.flush()

    users: dict[str, User] = {u.username: u for u in await session.scalars(sa.select(User))}
    for item in data["users"]:
        if item["username"] not in users:
            user = User(
                username=item["username"],
                display_name=item["display_name"],
                email=item["email"],
                role=Role(item["role"]),
            )
            session.add(user)
            await session.flush()
            users[user.username] = user
            for slug in item["teams"]:
                session.add(TeamMembership(team_id=teams[slug].id, user_id=user.id))
            report.users += 1
    await session.flush()

    known_errors: dict[str, KnownError] = {
        k.key: k for k in await session.scalars(sa.select(KnownError))
    }
    for item in data["known_errors"]:
        if item["key"] in known_errors:
            continue
        number = await next_number(session, "known_error")
        known_error = KnownError(
            key=f"KE-{number:04d}",
            title=item["title"],
            symptoms=item["symptoms"],
            root_cause=item["root_cause"],
            workaround=item["workaround"],
            permanent_fix=item["permanent_fix"],
            status=KnownErrorStatus(item["status"]),
            category=item["category"],
            error_signatures=item["error_signatures"],
        )
        session.add(known_error)
        await session.flush()
        known_errors[item["key"]] = known_error
        for slug in item["services"]:
            session.add(
                KnownErrorService(known_error_id=known_error.id, service_id=services[slug].id)
            )
        await record(session=session, entity_type="known_error", entity_id=known_error.id)
        report.known_errors += 1

    articles: dict[str, Article] = {a.slug: a for a in await session.scalars(sa.select(Article))}
    manager = next((u for u in users.values() if u.role is Role.KNOWLEDGE_MANAGER), None)
    for item in data["articles"]:
        if item["slug"] in articles:
            continue
        article = Article(
            slug=item["slug"],
            title=item["title"],
            summary=item["summary"],
            body=item["body"],
            kind=ArticleKind(item["kind"]),
            status=ArticleStatus.PUBLISHED,
            category=item["category"],
            error_signatures=item.get("error_signatures", []),
            known_error_id=known_errors[item["known_error"]].id
            if item.get("known_error")
            else None,
            author_id=manager.id if manager else None,
            published_at=now,
        )
        session.add(article)
        await session.flush()
        articles[article.slug] = article
        session.add(
            ArticleRevision(
                article_id=article.id,
                number=1,
                title=article.title,
                summary=article.summary,
                body=article.body,
                author_id=article.author_id,
                change_note="Demo knowledge base",
            )
        )
        for tag in dict.fromkeys(t.lower() for t in item["tags"]):
            session.add(ArticleTag(article_id=article.id, tag=tag))
        for slug in item["services"]:
            session.add(ArticleService(article_id=article.id, service_id=services[slug].id))
        await record(session=session, entity_type="article", entity_id=article.id)
        report.articles += 1

    existing_titles = set(await session.scalars(sa.select(Incident.title)))
    for item in data["incidents"]:
        if item["title"] in existing_titles:
            continue
        await _load_incident(session, item, now, teams, services, users, articles, known_errors)
        report.incidents += 1
    await session.flush()
    return report


async def _load_incident(
    session: AsyncSession,
    item: dict[str, Any],
    now: dt.datetime,
    teams: dict[str, Team],
    services: dict[str, Service],
    users: dict[str, User],
    articles: dict[str, Article],
    known_errors: dict[str, KnownError],
) -> None:
    detected = now - dt.timedelta(minutes=item["detected_minutes_ago"])
    acknowledged = detected + dt.timedelta(minutes=item["acknowledged_after_minutes"])
    resolved = detected + dt.timedelta(minutes=item["resolved_after_minutes"])
    impact, urgency = Level(item["impact"]), Level(item["urgency"])
    reporter, assignee = users[item["reporter"]], users[item["assignee"]]
    incident = Incident(
        number=await next_number(session, "incident"),
        title=item["title"],
        description=item["description"],
        status=IncidentStatus.RESOLVED,
        impact=impact,
        urgency=urgency,
        priority=POLICY.priority(impact, urgency),
        category=item["category"],
        service_id=services[item["service"]].id,
        assignee_id=assignee.id,
        team_id=teams[item["team"]].id,
        reporter_id=reporter.id,
        detected_at=detected,
        acknowledged_at=acknowledged,
        resolved_at=resolved,
        resolution_code=ResolutionCode(item["resolution_code"]),
        resolution_notes=item["resolution_notes"],
        error_text=item.get("error_text") or "",
    )
    incident.response_due_at, incident.resolution_due_at = POLICY.due(incident.priority, detected)
    session.add(incident)
    await session.flush()
    events = [
        (EventKind.REPORTED, reporter, detected, "Reported"),
        (EventKind.ASSIGNED, assignee, acknowledged, f"Assigned to {assignee.display_name}"),
        (EventKind.RESOLVED, assignee, resolved, item["resolution_notes"]),
    ]
    for kind, actor, at, message in events:
        session.add(
            IncidentEvent(
                incident_id=incident.id,
                kind=kind,
                actor_id=actor.id,
                occurred_at=at,
                message=message,
            )
        )
    resolved_by = item.get("resolved_by") or {}
    if "article" in resolved_by or "known_error" in resolved_by:
        session.add(
            IncidentLink(
                incident_id=incident.id,
                relation=LinkRelation.RESOLVED_BY,
                article_id=articles[resolved_by["article"]].id
                if "article" in resolved_by
                else None,
                known_error_id=(
                    known_errors[resolved_by["known_error"]].id
                    if "known_error" in resolved_by
                    else None
                ),
                created_by_id=assignee.id,
                created_at=resolved,
            )
        )
    await record(session=session, entity_type="incident", entity_id=incident.id)


async def ensure_dev_admin(session: AsyncSession) -> str | None:
    """On a development database with no tokens, make an admin and a token for it.

    Returns the new secret, or ``None`` when tokens already exist.
    """
    if await session.scalar(sa.select(sa.func.count()).select_from(ApiToken)):
        return None
    admin = await session.scalar(sa.select(User).where(User.username == DEV_ADMIN_USERNAME))
    if admin is None:
        admin = User(username=DEV_ADMIN_USERNAME, display_name="Administrator", role=Role.ADMIN)
        session.add(admin)
        await session.flush()
    issued = await tokens.create(
        session=session, principal=SYSTEM, user=admin, role=Role.ADMIN, name="development admin"
    )
    return issued.secret
