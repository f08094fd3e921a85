"""Incident metrics over a time window: how fast service is restored, and what helps.

MTTA is detection to acknowledgement (first taken in progress, or resolved);
MTTR is detection to resolution. Both are in seconds, over the incidents
detected in the window that got that far. Rates are shares of the incidents in
the group; the knowledge share is over resolved incidents.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import statistics
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.models import Team
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.catalog.models import Service
from knowledge.incidents.models import Incident, IncidentLink, LinkRelation
from knowledge.incidents.service import sla_of
from knowledge.validation import check_window


class GroupBy(enum.StrEnum):
    NONE = "none"
    PRIORITY = "priority"
    SERVICE = "service"
    CATEGORY = "category"
    TEAM = "team"


@dataclasses.dataclass(frozen=True, slots=True)
class GroupMetrics:
    key: str
    count: int
    resolved: int
    mtta_seconds: float | None
    mttr_mean_seconds: float | None
    mttr_median_seconds: float | None
    sla_breach_rate: float | None
    reopen_rate: float | None
    resolved_by_knowledge_rate: float | None


def time_to_restore(incident: Incident) -> float | None:
    """Seconds from detection to resolution (the "R" of MTTR); None while unresolved.
    Knowledge reports weigh gaps and savings in the same unit."""
    return seconds_to_restore(incident.detected_at, incident.resolved_at)


def seconds_to_restore(detected_at: dt.datetime, resolved_at: dt.datetime | None) -> float | None:
    """``time_to_restore`` from the two columns, for queries that load only those."""
    if resolved_at is None:
        return None
    return (resolved_at - detected_at).total_seconds()


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def incident_metrics(
    *,
    session: AsyncSession,
    principal: Principal,
    now: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
    group_by: GroupBy = GroupBy.NONE,
) -> list[GroupMetrics]:
    principal.require(Role.VIEWER, "Reading incident metrics")
    start, end = check_window(start, end)
    incidents = list(
        await session.scalars(
            sa.select(Incident).where(Incident.detected_at >= start, Incident.detected_at < end)
        )
    )
    ids = [i.id for i in incidents]
    by_knowledge = set(
        await session.scalars(
            sa.select(IncidentLink.incident_id).where(
                IncidentLink.incident_id.in_(ids),
                IncidentLink.relation == LinkRelation.RESOLVED_BY,
                sa.or_(
                    IncidentLink.article_id.is_not(None), IncidentLink.known_error_id.is_not(None)
                ),
            )
        )
    )
    names: dict[int, str] = {}
    if group_by is GroupBy.SERVICE:
        names = dict((await session.execute(sa.select(Service.id, Service.slug))).all())
    elif group_by is GroupBy.TEAM:
        names = dict((await session.execute(sa.select(Team.id, Team.slug))).all())

    def key(incident: Incident) -> str:
        match group_by:
            case GroupBy.PRIORITY:
                return f"P{incident.priority}"
            case GroupBy.SERVICE:
                return names.get(incident.service_id or 0, "(none)")
            case GroupBy.TEAM:
                return names.get(incident.team_id or 0, "(none)")
            case GroupBy.CATEGORY:
                return incident.category or "(none)"
        return "all"

    groups: dict[str, list[Incident]] = defaultdict(list)
    for incident in incidents:
        groups[key(incident)].append(incident)
    result = []
    for name, members in sorted(groups.items()):
        acknowledged = [(i.acknowledged_at - i.detected_at).total_seconds()
                        for i in members if i.acknowledged_at]  # fmt: skip
        resolved = [i for i in members if i.resolved_at]
        repair = [t for i in resolved if (t := time_to_restore(i)) is not None]
        result.append(
            GroupMetrics(
                key=name,
                count=len(members),
                resolved=len(resolved),
                mtta_seconds=_mean(acknowledged),
                mttr_mean_seconds=_mean(repair),
                mttr_median_seconds=statistics.median(repair) if repair else None,
                sla_breach_rate=_share(sum(sla_of(i, now).breached for i in members), len(members)),
                reopen_rate=_share(sum(i.reopen_count > 0 for i in members), len(members)),
                resolved_by_knowledge_rate=_share(
                    sum(i.id in by_knowledge for i in resolved), len(resolved)
                ),
            )
        )
    return result
