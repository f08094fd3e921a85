"""Incident metrics against a fixture whose answers are worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from knowledge.accounts import service as accounts
from knowledge.accounts.principal import SYSTEM
from knowledge.catalog import service as catalog
from knowledge.db import Database
from knowledge.errors import ValidationError
from knowledge.incidents.metrics import GroupBy, GroupMetrics, incident_metrics
from knowledge.incidents.models import Incident, IncidentLink, IncidentStatus, Level, LinkRelation
from knowledge.incidents.policy import IncidentPolicy
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.service import KnownErrorDraft

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=dt.UTC)


async def seed(db: Database) -> None:
    """A: P1 on pay/sre, acked in 10 min, fixed in 2 h by knowledge, on time.
    B: P1 on pay/sre, acked in 30 min (late), fixed in 6 h (late), reopened once.
    C: P3 on web, never acked nor fixed: both targets missed by NOW.
    D: P3 on web, acked in 30 min, fixed in 2 h by a known error, on time.
    E: outside the window."""
    policy = IncidentPolicy()
    async with db.transaction() as session:
        pay = await catalog.create(session=session, principal=SYSTEM, slug="pay", name="Pay")
        web = await catalog.create(session=session, principal=SYSTEM, slug="web", name="Web")
        sre = await accounts.create_team(session=session, principal=SYSTEM, slug="sre", name="SRE")
        known_error = await known_errors.create(
            session=session, principal=SYSTEM, draft=KnownErrorDraft(title="Cache stampede")
        )
        rows = {
            "A": (1, pay.id, sre.id, at(10, 10), at(10, 10, 10), at(10, 12), 0),
            "B": (1, pay.id, sre.id, at(11, 10), at(11, 10, 30), at(11, 16), 1),
            "C": (3, web.id, None, at(12, 8), None, None, 0),
            "D": (3, web.id, None, at(15, 9), at(15, 9, 30), at(15, 11), 0),
            "E": (1, pay.id, sre.id, at(5, 10, month=2), None, None, 0),
        }
        incidents = {}
        for number, (
            name,
            (priority, service, team, detected, acked, resolved, reopened),
        ) in enumerate(rows.items(), start=1):
            respond, resolve = policy.due(priority, detected)
            level = Level.HIGH if priority == 1 else Level.MEDIUM
            incident = Incident(
                number=number, title=name, status=IncidentStatus.RESOLVED if resolved else IncidentStatus.NEW,
                impact=level, urgency=level, priority=priority, service_id=service, team_id=team,
                detected_at=detected, acknowledged_at=acked, resolved_at=resolved,
                response_due_at=respond, resolution_due_at=resolve, reopen_count=reopened,
            )  # fmt: skip
            session.add(incident)
            await session.flush()
            incidents[name] = incident
        session.add(IncidentLink(incident_id=incidents["A"].id, relation=LinkRelation.RESOLVED_BY,
                                 known_error_id=known_error.id))  # fmt: skip
        session.add(IncidentLink(incident_id=incidents["D"].id, relation=LinkRelation.RESOLVED_BY,
                                 known_error_id=known_error.id))  # fmt: skip
        session.add(IncidentLink(incident_id=incidents["B"].id, relation=LinkRelation.RELATED,
                                 known_error_id=known_error.id))  # fmt: skip


async def metrics(db: Database, group_by: GroupBy) -> dict[str, GroupMetrics]:
    async with db.read() as session:
        groups = await incident_metrics(
            session=session, principal=SYSTEM, now=NOW, start=START, end=END, group_by=group_by
        )
    return {g.key: g for g in groups}


async def test_overall_metrics_match_the_hand_computed_figures(db: Database) -> None:
    await seed(db)
    overall = (await metrics(db, GroupBy.NONE))["all"]
    assert (overall.count, overall.resolved) == (4, 3)
    assert overall.mtta_seconds == pytest.approx((600 + 1800 + 1800) / 3)
    assert overall.mttr_mean_seconds == pytest.approx((7200 + 21600 + 7200) / 3)
    assert overall.mttr_median_seconds == 7200
    assert overall.sla_breach_rate == pytest.approx(2 / 4)  # B and C
    assert overall.reopen_rate == pytest.approx(1 / 4)  # B
    assert overall.resolved_by_knowledge_rate == pytest.approx(2 / 3)  # A and D; B is only related


async def test_metrics_by_priority_team_and_service(db: Database) -> None:
    await seed(db)
    by_priority = await metrics(db, GroupBy.PRIORITY)
    assert set(by_priority) == {"P1", "P3"}
    p1, p3 = by_priority["P1"], by_priority["P3"]
    assert (p1.count, p1.mtta_seconds, p1.mttr_mean_seconds, p1.mttr_median_seconds) == (
        2,
        1200,
        14400,
        14400,
    )
    assert (p1.sla_breach_rate, p1.reopen_rate, p1.resolved_by_knowledge_rate) == (0.5, 0.5, 0.5)
    assert (p3.count, p3.resolved, p3.mtta_seconds, p3.mttr_mean_seconds) == (2, 1, 1800, 7200)
    assert (p3.sla_breach_rate, p3.reopen_rate, p3.resolved_by_knowledge_rate) == (0.5, 0.0, 1.0)
    assert {k: g.count for k, g in (await metrics(db, GroupBy.TEAM)).items()} == {
        "sre": 2,
        "(none)": 2,
    }
    assert {k: g.count for k, g in (await metrics(db, GroupBy.SERVICE)).items()} == {
        "pay": 2,
        "web": 2,
    }
    assert {k: g.count for k, g in (await metrics(db, GroupBy.CATEGORY)).items()} == {"(none)": 4}


async def test_an_empty_window_has_no_groups_and_bad_windows_are_refused(db: Database) -> None:
    await seed(db)
    async with db.read() as session:
        empty = await incident_metrics(session=session, principal=SYSTEM, now=NOW,
                                       start=at(1, 0, month=3), end=at(2, 0, month=3))  # fmt: skip
        assert empty == []
        for start, end in ((END, START), (START, START + dt.timedelta(days=400)),
                           (START.replace(tzinfo=None), END)):  # fmt: skip
            with pytest.raises(ValidationError):
                await incident_metrics(
                    session=session, principal=SYSTEM, now=NOW, start=start, end=end
                )
