"""The demo knowledge base: broad, published, linked, and safe to load twice."""

from __future__ import annotations

import sqlalchemy as sa

from knowledge.articles.models import Article, ArticleRevision, ArticleStatus
from knowledge.db import Database
from knowledge.demo import loader
from knowledge.incidents.models import Incident, IncidentLink, IncidentStatus, LinkRelation
from knowledge.known_errors.models import KnownError
from knowledge.outbox.models import OutboxEntry


async def test_the_demo_covers_the_promised_ground(db: Database) -> None:
    async with db.transaction() as session:
        assert await loader.is_empty(session)
        report = await loader.load(session)
    assert report.articles + report.known_errors >= 30
    assert report.incidents >= 3
    async with db.read() as session:
        categories = set(await session.scalars(sa.select(Article.category).distinct()))
        statuses = set(await session.scalars(sa.select(Article.status).distinct()))
        revisions = await session.scalar(sa.select(sa.func.count()).select_from(ArticleRevision))
        keys = list(await session.scalars(sa.select(KnownError.key).order_by(KnownError.id)))
        incidents = list(await session.scalars(sa.select(Incident).order_by(Incident.number)))
        resolved_by = await session.scalar(
            sa.select(sa.func.count())
            .select_from(IncidentLink)
            .where(IncidentLink.relation == LinkRelation.RESOLVED_BY)
        )
        outbox = await session.scalar(sa.select(sa.func.count()).select_from(OutboxEntry))
    assert {"database", "networking", "tls", "kubernetes", "storage", "messaging"} <= categories
    assert statuses == {ArticleStatus.PUBLISHED}
    assert revisions == report.articles
    assert keys[0] == "KE-0001"
    assert [i.reference for i in incidents][:2] == ["INC-000001", "INC-000002"]
    assert all(i.status is IncidentStatus.RESOLVED and i.resolved_at for i in incidents)
    assert all(i.resolved_at > i.detected_at for i in incidents if i.resolved_at)
    assert resolved_by is not None
    assert resolved_by >= len(incidents) - 1
    assert outbox == report.articles + report.known_errors + report.incidents


async def test_loading_twice_adds_nothing(db: Database) -> None:
    async with db.transaction() as session:
        await loader.load(session)
    async with db.transaction() as session:
        again = await loader.load(session)
        assert not await loader.is_empty(session)
    assert again.total == 0


async def test_a_development_admin_token_is_made_once(db: Database) -> None:
    async with db.transaction() as session:
        first = await loader.ensure_dev_admin(session)
    async with db.transaction() as session:
        second = await loader.ensure_dev_admin(session)
    assert first is not None
    assert first.startswith("kfx_")
    assert second is None
