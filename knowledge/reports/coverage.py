"""Which resolved incidents knowledge covered, shared by the gap and top-article sections.

An incident is covered when an article is linked to it as ``resolved_by`` or
``related`` (what ``capture_knowledge`` refuses to capture again), or a known
error as ``resolved_by`` (its workaround is knowledge too). Duplicates and
no-fault incidents are neither covered nor gaps: there was nothing to learn.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from knowledge.incidents.models import Incident, IncidentLink, LinkRelation, ResolutionCode
from knowledge.incidents.service import DONE

NOTHING_TO_LEARN = (ResolutionCode.DUPLICATE, ResolutionCode.NO_FAULT)


def covered_ids() -> sa.Select[Any]:
    return sa.select(IncidentLink.incident_id).where(
        sa.or_(
            sa.and_(
                IncidentLink.article_id.is_not(None),
                IncidentLink.relation.in_([LinkRelation.RESOLVED_BY, LinkRelation.RELATED]),
            ),
            sa.and_(
                IncidentLink.known_error_id.is_not(None),
                IncidentLink.relation == LinkRelation.RESOLVED_BY,
            ),
            IncidentLink.relation == LinkRelation.DUPLICATE_OF,
        )
    )


def resolved_in(start: dt.datetime, end: dt.datetime) -> sa.ColumnElement[bool]:
    """Resolved (or since closed) in [start, end), and worth learning from."""
    return sa.and_(
        Incident.status.in_(DONE),
        Incident.resolved_at >= start,
        Incident.resolved_at < end,
        sa.or_(
            Incident.resolution_code.is_(None),
            Incident.resolution_code.not_in(NOTHING_TO_LEARN),
        ),
    )


def uncovered_in(start: dt.datetime, end: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(resolved_in(start, end), Incident.id.not_in(covered_ids()))
