"""What responders did before: the history signals, read straight from the database.

Outcomes are counted from incident links and article feedback on every call, so
an accepted, rejected or ``resolved by`` link counts the moment it is committed
(no reindex). Only the text of resolved incidents comes from the index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.articles.models import ArticleFeedback
from knowledge.incidents.models import Incident, IncidentLink, LinkRelation
from knowledge.search.documents import key_of

# Relations that say "this restored service" and "this did not".
GOOD = (LinkRelation.RESOLVED_BY, LinkRelation.ACCEPTED)
BAD = (LinkRelation.REJECTED,)


@dataclasses.dataclass(slots=True)
class Outcomes:
    resolved: int = 0
    accepted: int = 0
    rejected: int = 0
    suggested: int = 0
    helpful: int = 0
    unhelpful: int = 0

    @property
    def good(self) -> int:
        return self.resolved + self.accepted + self.helpful

    @property
    def bad(self) -> int:
        return self.rejected + self.unhelpful


def link_key(link_article: int | None, link_known_error: int | None) -> str | None:
    if link_article is not None:
        return key_of("article", link_article)
    if link_known_error is not None:
        return key_of("known_error", link_known_error)
    return None


async def outcomes(*, session: AsyncSession, keys: Sequence[str]) -> dict[str, Outcomes]:
    """Judged outcomes per article / known error key: links and votes counted in one
    statement (a suggestion waits for every round trip to the database)."""
    article_ids = [int(k.split(":")[1]) for k in keys if k.startswith("article:")]
    known_error_ids = [int(k.split(":")[1]) for k in keys if k.startswith("known_error:")]
    found = {key: Outcomes() for key in keys}
    if not article_ids and not known_error_ids:
        return found
    links = (
        sa.select(
            IncidentLink.article_id,
            IncidentLink.known_error_id,
            sa.cast(IncidentLink.relation, sa.String(32)).label("outcome"),
            sa.func.count().label("n"),
        )
        .where(
            sa.or_(
                IncidentLink.article_id.in_(article_ids),
                IncidentLink.known_error_id.in_(known_error_ids),
            )
        )
        .group_by(IncidentLink.article_id, IncidentLink.known_error_id, IncidentLink.relation)
    )
    votes = (
        sa.select(
            ArticleFeedback.article_id,
            sa.cast(sa.null(), sa.Integer),
            sa.case((ArticleFeedback.helpful, "helpful"), else_="unhelpful"),
            sa.func.count(),
        )
        .where(ArticleFeedback.article_id.in_(article_ids))
        .group_by(ArticleFeedback.article_id, ArticleFeedback.helpful)
    )
    for article_id, known_error_id, outcome, count in await session.execute(
        sa.union_all(links, votes)
    ):
        key = link_key(article_id, known_error_id)
        if key in found and (field := _FIELDS.get(outcome)):
            setattr(found[key], field, getattr(found[key], field) + count)
    return found


# What each counted outcome adds to (a link's relation, or a vote).
_FIELDS = {
    LinkRelation.RESOLVED_BY.value: "resolved",
    LinkRelation.ACCEPTED.value: "accepted",
    LinkRelation.REJECTED.value: "rejected",
    LinkRelation.SUGGESTED.value: "suggested",
    "helpful": "helpful",
    "unhelpful": "unhelpful",
}


async def resolved_incidents(
    *, session: AsyncSession, incident_ids: Sequence[int]
) -> dict[int, tuple[Incident, list[str]]]:
    """Past incidents with what restored service for each: ``resolved by`` and
    accepted suggestions, minus anything later rejected for the same incident.
    Incidents nothing restored are left out. One statement: rows and links."""
    if not incident_ids:
        return {}
    rows = await session.execute(
        sa.select(Incident, IncidentLink.article_id, IncidentLink.known_error_id,
                  IncidentLink.relation)
        .join(IncidentLink, IncidentLink.incident_id == Incident.id)
        .where(
            IncidentLink.incident_id.in_(set(incident_ids)),
            IncidentLink.relation.in_((*GOOD, *BAD)),
        )
        .order_by(IncidentLink.id)
    )  # fmt: skip
    incidents: dict[int, Incident] = {}
    good: dict[int, list[str]] = {}
    bad: dict[int, set[str]] = {}
    for incident, article_id, known_error_id, relation in rows:
        key = link_key(article_id, known_error_id)
        if key is None:
            continue
        incidents[incident.id] = incident
        if relation in BAD:
            bad.setdefault(incident.id, set()).add(key)
        elif key not in good.setdefault(incident.id, []):
            good[incident.id].append(key)
    found = {
        i: (incidents[i], [k for k in keys if k not in bad.get(i, set())])
        for i, keys in good.items()
    }
    return {i: entry for i, entry in found.items() if entry[1]}
