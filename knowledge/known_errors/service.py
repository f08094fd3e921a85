"""Known errors: documented root causes with workarounds (ITIL problem management).

Knowledge managers record and maintain them; everyone may read them.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article
from knowledge.catalog.models import Service
from knowledge.db import flush_or_conflict, grouped
from knowledge.errors import InvalidTransitionError, NotFoundError, ValidationError
from knowledge.known_errors.models import KnownError, KnownErrorService, KnownErrorStatus
from knowledge.numbering import next_number, raise_counter
from knowledge.outbox.service import record
from knowledge.pagination import Page, fetch_page
from knowledge.validation import check_version, clean_line, clean_text

CURATOR = Role.KNOWLEDGE_MANAGER
KEY = re.compile(r"^KE-(\d{4,9})$")
MAX_TEXT = 20_000

# Which status may follow which: fixes can regress, archived errors can return.
ALLOWED_STATUS_CHANGES: dict[KnownErrorStatus, frozenset[KnownErrorStatus]] = {
    KnownErrorStatus.OPEN: frozenset({KnownErrorStatus.FIX_IN_PROGRESS, KnownErrorStatus.FIXED,
                                      KnownErrorStatus.ARCHIVED}),
    KnownErrorStatus.FIX_IN_PROGRESS: frozenset({KnownErrorStatus.OPEN, KnownErrorStatus.FIXED,
                                                 KnownErrorStatus.ARCHIVED}),
    KnownErrorStatus.FIXED: frozenset({KnownErrorStatus.OPEN, KnownErrorStatus.ARCHIVED}),
    KnownErrorStatus.ARCHIVED: frozenset({KnownErrorStatus.OPEN}),
}  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class KnownErrorDraft:
    title: str | None = None
    symptoms: str | None = None
    root_cause: str | None = None
    workaround: str | None = None
    permanent_fix: str | None = None
    category: str | None = None
    error_signatures: Sequence[str] | None = None
    service_ids: Sequence[int] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class KnownErrorFilter:
    statuses: Sequence[KnownErrorStatus] | None = None
    category: str | None = None
    service_id: int | None = None


def format_key(number: int) -> str:
    return f"KE-{number:04d}"


async def get(*, session: AsyncSession, principal: Principal, known_error_id: int) -> KnownError:
    principal.require(Role.VIEWER, "Reading known errors")
    known_error = await session.get(KnownError, known_error_id)
    if known_error is None:
        raise NotFoundError(f"no known error with id {known_error_id}", field="id")
    return known_error


async def get_by_key(*, session: AsyncSession, principal: Principal, key: str) -> KnownError | None:
    principal.require(Role.VIEWER, "Reading known errors")
    return await session.scalar(sa.select(KnownError).where(KnownError.key == key.strip().upper()))


async def by_ids(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, KnownError]:
    rows = await session.scalars(sa.select(KnownError).where(KnownError.id.in_(set(ids))))
    return {k.id: k for k in rows}


async def get_all(
    *,
    session: AsyncSession,
    principal: Principal,
    filter: KnownErrorFilter | None = None,
    first: int | None = None,
    after: int | None = None,
) -> Page[KnownError]:
    principal.require(Role.VIEWER, "Listing known errors")
    f = filter or KnownErrorFilter()
    stmt = sa.select(KnownError)
    if f.statuses:
        stmt = stmt.where(KnownError.status.in_(list(f.statuses)))
    if f.category is not None:
        stmt = stmt.where(KnownError.category == f.category.strip().lower())
    if f.service_id is not None:
        stmt = stmt.where(
            KnownError.id.in_(
                sa.select(KnownErrorService.known_error_id).where(
                    KnownErrorService.service_id == f.service_id
                )
            )
        )
    return await fetch_page(session, stmt, key=KnownError.id, first=first, after=after)


async def services_of(
    *, session: AsyncSession, known_error_ids: Sequence[int]
) -> dict[int, list[Service]]:
    rows = await session.execute(
        sa.select(KnownErrorService.known_error_id, Service)
        .join(Service, Service.id == KnownErrorService.service_id)
        .where(KnownErrorService.known_error_id.in_(set(known_error_ids)))
        .order_by(Service.id)
    )
    return grouped(rows)


async def articles_of(
    *, session: AsyncSession, principal: Principal, known_error_ids: Sequence[int]
) -> dict[int, list[Article]]:
    rows = await session.scalars(
        sa.select(Article)
        .where(Article.known_error_id.in_(set(known_error_ids)))
        .order_by(Article.id)
    )
    result: dict[int, list[Article]] = defaultdict(list)
    for article in rows:
        if articles.can_see(principal, article):
            assert article.known_error_id is not None
            result[article.known_error_id].append(article)
    return result


async def _apply(session: AsyncSession, known_error: KnownError, draft: KnownErrorDraft) -> None:
    if draft.title is not None:
        known_error.title = clean_line(draft.title, field="title", max_length=200)
    for field in ("symptoms", "root_cause", "workaround", "permanent_fix"):
        value = getattr(draft, field)
        if value is not None:
            name = "".join(p.capitalize() if i else p for i, p in enumerate(field.split("_")))
            setattr(
                known_error,
                field,
                clean_text(value, field=name, max_length=MAX_TEXT, required=False),
            )
    if draft.category is not None:
        category = draft.category.strip()
        known_error.category = (
            clean_line(category, field="category", max_length=80).lower() if category else None
        )
    if draft.error_signatures is not None:
        if len(draft.error_signatures) > 20:
            raise ValidationError("at most 20 error signatures", field="errorSignatures")
        known_error.error_signatures = list(
            dict.fromkeys(
                clean_line(s, field="errorSignatures", max_length=500)
                for s in draft.error_signatures
            )
        )
    await flush_or_conflict(session, what=f"known error {known_error.key}")
    if draft.service_ids is not None:
        wanted = list(dict.fromkeys(draft.service_ids))
        found = set(await session.scalars(sa.select(Service.id).where(Service.id.in_(wanted))))
        if missing := [i for i in wanted if i not in found]:
            raise NotFoundError(f"no service with id {missing[0]}", field="serviceIds")
        await session.execute(
            sa.delete(KnownErrorService).where(KnownErrorService.known_error_id == known_error.id)
        )
        session.add_all(
            KnownErrorService(known_error_id=known_error.id, service_id=s) for s in wanted
        )


async def create(
    *,
    session: AsyncSession,
    principal: Principal,
    draft: KnownErrorDraft,
    key: str | None = None,
) -> KnownError:
    """Record a known error; ``key`` keeps an imported record's own key."""
    principal.require(CURATOR, "Recording known errors")
    if draft.title is None or not draft.title.strip():
        raise ValidationError("title must not be empty", field="title")
    if key is not None:
        match = KEY.fullmatch(key)
        if match is None:
            raise ValidationError("a key is KE- and at least four digits", field="key")
        await raise_counter(session, "known_error", int(match.group(1)))
    known_error = KnownError(
        key=key or format_key(await next_number(session, "known_error")),
        title="",
        status=KnownErrorStatus.OPEN,
        created_by_id=principal.user_id,
    )
    session.add(known_error)
    await _apply(session, known_error, draft)
    await flush_or_conflict(session, what=f"known error {known_error.key}")
    await record(session=session, entity_type="known_error", entity_id=known_error.id)
    return known_error


async def update(
    *,
    session: AsyncSession,
    principal: Principal,
    known_error_id: int,
    expected_version: int,
    draft: KnownErrorDraft,
    status: KnownErrorStatus | None = None,
) -> KnownError:
    principal.require(CURATOR, "Changing known errors")
    known_error = await get(session=session, principal=principal, known_error_id=known_error_id)
    check_version(
        expected=expected_version,
        current=known_error.version,
        what=f"known error {known_error.key}",
    )
    if status is not None and status is not known_error.status:
        if status not in ALLOWED_STATUS_CHANGES[known_error.status]:
            raise InvalidTransitionError(
                f"a known error that is {known_error.status.value} cannot become {status.value}",
                field="status",
            )
        known_error.status = status
    await _apply(session, known_error, draft)
    await flush_or_conflict(session, what=f"known error {known_error.key}")
    await record(session=session, entity_type="known_error", entity_id=known_error.id)
    return known_error


async def link_article(
    *,
    session: AsyncSession,
    principal: Principal,
    article_id: int,
    known_error_id: int | None,
) -> Article:
    """Tie an article to the known error it documents (``None`` unties it)."""
    principal.require(CURATOR, "Linking articles to known errors")
    article = await articles.get(session=session, principal=principal, article_id=article_id)
    if known_error_id is not None:
        await get(session=session, principal=principal, known_error_id=known_error_id)
    article.known_error_id = known_error_id
    await flush_or_conflict(session, what=f"article {article.slug}")
    await record(session=session, entity_type="article", entity_id=article.id)
    return article
