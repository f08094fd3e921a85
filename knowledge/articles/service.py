"""Articles: drafting, review, publishing, revisions and feedback.

Who may do what:
- responders (and above) draft, edit drafts and articles in review, and submit;
- knowledge managers also approve, reject, publish, retire, revise published
  articles back to draft, and edit published articles in place;
- everyone may read published and retired articles; drafts and articles in
  review are visible to responders and above.
Every edit writes a revision; every change writes an outbox row for the index.
Knowledge managers work through the review queue (``awaiting_review``), oldest
submission first; bulk changes live in ``knowledge.articles.bulk``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles.models import (
    Article,
    ArticleFeedback,
    ArticleKind,
    ArticleRevision,
    ArticleService,
    ArticleStatus,
    ArticleTag,
)
from knowledge.catalog.models import Service
from knowledge.db import flush_or_conflict, grouped, utcnow
from knowledge.errors import (
    AuthenticationError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from knowledge.incidents.models import Incident, IncidentLink, LinkRelation
from knowledge.known_errors.models import KnownError
from knowledge.outbox.models import OutboxOp
from knowledge.outbox.service import record
from knowledge.pagination import Page, fetch_page
from knowledge.validation import check_version, clean_line, clean_slug, clean_text

AUTHOR = Role.RESPONDER
CURATOR = Role.KNOWLEDGE_MANAGER
VISIBLE_TO_ALL = (ArticleStatus.PUBLISHED, ArticleStatus.RETIRED)

MAX_BODY = 100_000
MAX_SUMMARY = 1_000
MAX_TAGS = 20
MAX_LIST = 20
URL = re.compile(r"^https?://[^\s<>\"]{1,490}$")


class Transition(enum.StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    PUBLISH = "publish"
    RETIRE = "retire"
    REVISE = "revise"


# transition -> (statuses it starts from, status it leads to, role it needs)
TRANSITIONS: dict[Transition, tuple[frozenset[ArticleStatus], ArticleStatus, Role]] = {
    Transition.SUBMIT: (frozenset({ArticleStatus.DRAFT}), ArticleStatus.IN_REVIEW, AUTHOR),
    Transition.APPROVE: (frozenset({ArticleStatus.IN_REVIEW}), ArticleStatus.PUBLISHED, CURATOR),
    Transition.REJECT: (frozenset({ArticleStatus.IN_REVIEW}), ArticleStatus.DRAFT, CURATOR),
    Transition.PUBLISH: (
        frozenset({ArticleStatus.DRAFT, ArticleStatus.IN_REVIEW}),
        ArticleStatus.PUBLISHED,
        CURATOR,
    ),
    Transition.RETIRE: (frozenset({ArticleStatus.PUBLISHED}), ArticleStatus.RETIRED, CURATOR),
    Transition.REVISE: (
        frozenset({ArticleStatus.PUBLISHED, ArticleStatus.RETIRED}),
        ArticleStatus.DRAFT,
        CURATOR,
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ArticleDraft:
    """The editable content of an article; ``None`` means "leave as it is" on update."""

    title: str | None = None
    body: str | None = None
    summary: str | None = None
    kind: ArticleKind | None = None
    category: str | None = None
    tags: Sequence[str] | None = None
    service_ids: Sequence[int] | None = None
    known_error_id: int | None = None
    clear_known_error: bool = False
    error_signatures: Sequence[str] | None = None
    sources: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ArticleStats:
    views: int = 0
    helpful: int = 0
    not_helpful: int = 0
    resolved_incidents: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class FieldDiff:
    field: str
    before: str
    after: str
    unified: str


@dataclasses.dataclass(frozen=True, slots=True)
class ArticleFilter:
    statuses: Sequence[ArticleStatus] | None = None
    kind: ArticleKind | None = None
    category: str | None = None
    tag: str | None = None
    service_id: int | None = None
    known_error_id: int | None = None


class ArticleOrder(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    TITLE = "title"
    VIEWS = "views"


ORDER_COLUMNS: dict[ArticleOrder, Any] = {
    ArticleOrder.CREATED: None,  # the id orders by creation
    ArticleOrder.UPDATED: Article.updated_at,
    ArticleOrder.TITLE: Article.title,
    ArticleOrder.VIEWS: Article.view_count,
}


# --- reading -------------------------------------------------------------------------


def can_see(principal: Principal, article: Article) -> bool:
    return article.status in VISIBLE_TO_ALL or principal.can(AUTHOR)


async def get(*, session: AsyncSession, principal: Principal, article_id: int) -> Article:
    principal.require(Role.VIEWER, "Reading articles")
    article = await session.get(Article, article_id)
    if article is None or not can_see(principal, article):
        raise NotFoundError(f"no article with id {article_id}", field="id")
    return article


async def get_by_slug(*, session: AsyncSession, principal: Principal, slug: str) -> Article | None:
    principal.require(Role.VIEWER, "Reading articles")
    article = await session.scalar(sa.select(Article).where(Article.slug == slug))
    return article if article is not None and can_see(principal, article) else None


async def by_ids(
    *, session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Article]:
    rows = await session.scalars(sa.select(Article).where(Article.id.in_(set(ids))))
    return {a.id: a for a in rows if can_see(principal, a)}


async def get_all(
    *,
    session: AsyncSession,
    principal: Principal,
    filter: ArticleFilter | None = None,
    order: ArticleOrder = ArticleOrder.CREATED,
    descending: bool = False,
    first: int | None = None,
    after: int | None = None,
    after_sort: Any = None,
) -> Page[Article]:
    principal.require(Role.VIEWER, "Listing articles")
    f = filter or ArticleFilter()
    statuses = list(f.statuses or [ArticleStatus.PUBLISHED])
    hidden = [s for s in statuses if s not in VISIBLE_TO_ALL]
    if hidden and not principal.can(AUTHOR):
        names = ", ".join(s.value for s in hidden)
        principal.require(AUTHOR, f"Listing {names} articles")
    stmt = sa.select(Article).where(Article.status.in_(statuses))
    if f.kind is not None:
        stmt = stmt.where(Article.kind == f.kind)
    if f.category is not None:
        stmt = stmt.where(Article.category == f.category)
    if f.known_error_id is not None:
        stmt = stmt.where(Article.known_error_id == f.known_error_id)
    if f.tag is not None:
        tagged = sa.select(ArticleTag.article_id).where(ArticleTag.tag == f.tag.strip().lower())
        stmt = stmt.where(Article.id.in_(tagged))
    if f.service_id is not None:
        linked = sa.select(ArticleService.article_id).where(
            ArticleService.service_id == f.service_id
        )
        stmt = stmt.where(Article.id.in_(linked))
    return await fetch_page(
        session,
        stmt,
        key=Article.id,
        sort=ORDER_COLUMNS[order],
        first=first,
        after=after,
        after_sort=after_sort,
        descending=descending,
    )


async def awaiting_review(
    *,
    session: AsyncSession,
    principal: Principal,
    first: int | None = None,
    after: int | None = None,
    after_submitted_at: dt.datetime | None = None,
) -> Page[Article]:
    """The review queue: articles in review, the longest waiting first.

    Knowledge managers (who approve and reject) see it; authors follow their own
    articles' status instead. A page continues after the article ``after`` that
    was submitted at ``after_submitted_at`` (both from the previous page's last row).
    """
    principal.require(CURATOR, "Seeing the review queue")
    stmt = sa.select(Article).where(Article.status == ArticleStatus.IN_REVIEW)
    return await fetch_page(
        session,
        stmt,
        key=Article.id,
        sort=Article.submitted_at,
        first=first,
        after=after,
        after_sort=after_submitted_at,
    )


def sort_value(article: Article, order: ArticleOrder) -> Any:
    column = ORDER_COLUMNS[order]
    return None if column is None else getattr(article, column.key)


async def tags_of(*, session: AsyncSession, article_ids: Sequence[int]) -> dict[int, list[str]]:
    rows = await session.execute(
        sa.select(ArticleTag.article_id, ArticleTag.tag)
        .where(ArticleTag.article_id.in_(set(article_ids)))
        .order_by(ArticleTag.tag)
    )
    return grouped(rows)


async def services_of(
    *, session: AsyncSession, article_ids: Sequence[int]
) -> dict[int, list[Service]]:
    rows = await session.execute(
        sa.select(ArticleService.article_id, Service)
        .join(Service, Service.id == ArticleService.service_id)
        .where(ArticleService.article_id.in_(set(article_ids)))
        .order_by(Service.id)
    )
    return grouped(rows)


async def votes_of(
    *, session: AsyncSession, where: Sequence[sa.ColumnElement[bool]]
) -> dict[int, tuple[int, int]]:
    """(helpful, unhelpful) votes per article among the feedback ``where`` selects: one
    query for an article's stats and the performance report, so both count alike."""
    rows = await session.execute(
        sa.select(
            ArticleFeedback.article_id,
            sa.func.sum(sa.case((ArticleFeedback.helpful, 1), else_=0)),
            sa.func.sum(sa.case((ArticleFeedback.helpful, 0), else_=1)),
        )
        .where(*where)
        .group_by(ArticleFeedback.article_id)
    )
    return {article_id: (int(good or 0), int(bad or 0)) for article_id, good, bad in rows}


async def stats_of(*, session: AsyncSession, article_ids: Sequence[int]) -> dict[int, ArticleStats]:
    ids = set(article_ids)
    views = dict(
        (
            await session.execute(
                sa.select(Article.id, Article.view_count).where(Article.id.in_(ids))
            )
        ).all()
    )
    helpful = await votes_of(session=session, where=[ArticleFeedback.article_id.in_(ids)])
    resolved = (
        await session.execute(
            sa.select(IncidentLink.article_id, sa.func.count(sa.distinct(IncidentLink.incident_id)))
            .where(
                IncidentLink.article_id.in_(ids),
                IncidentLink.relation == LinkRelation.RESOLVED_BY,
            )
            .group_by(IncidentLink.article_id)
        )
    ).all()
    resolved_counts = {row[0]: int(row[1]) for row in resolved}
    return {
        article_id: ArticleStats(
            views=int(views.get(article_id, 0)),
            helpful=helpful.get(article_id, (0, 0))[0],
            not_helpful=helpful.get(article_id, (0, 0))[1],
            resolved_incidents=resolved_counts.get(article_id, 0),
        )
        for article_id in ids
    }


# --- writing -------------------------------------------------------------------------


def slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:80].rstrip("-")
    return slug or "article"


async def _free_slug(session: AsyncSession, base: str) -> str:
    taken = set(
        await session.scalars(
            sa.select(Article.slug).where(
                sa.or_(Article.slug == base, Article.slug.like(f"{base}-%"))
            )
        )
    )
    if base not in taken:
        return base
    n = 2
    while f"{base[:74]}-{n}" in taken:
        n += 1
    return f"{base[:74]}-{n}"


def clean_tags(tags: Sequence[str], *, field: str = "tags") -> list[str]:
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags", field=field)
    cleaned = [clean_line(t, field=field, max_length=60).lower() for t in tags]
    return list(dict.fromkeys(cleaned))


def clean_list(values: Sequence[str], *, field: str, max_length: int) -> list[str]:
    if len(values) > MAX_LIST:
        raise ValidationError(f"at most {MAX_LIST} {field}", field=field)
    return list(dict.fromkeys(clean_line(v, field=field, max_length=max_length) for v in values))


def clean_sources(values: Sequence[str]) -> list[str]:
    sources = clean_list(values, field="sources", max_length=500)
    for url in sources:
        if not URL.fullmatch(url):
            raise ValidationError(f"{url!r} is not an http(s) URL", field="sources")
    return sources


def clean_category(value: str) -> str | None:
    value = value.strip()
    return clean_line(value, field="category", max_length=80).lower() if value else None


async def _check_services(session: AsyncSession, service_ids: Sequence[int]) -> list[int]:
    wanted = list(dict.fromkeys(service_ids))
    found = set(await session.scalars(sa.select(Service.id).where(Service.id.in_(wanted))))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFoundError(f"no service with id {missing[0]}", field="serviceIds")
    return wanted


async def _apply(session: AsyncSession, article: Article, draft: ArticleDraft) -> None:
    """Validate ``draft`` and copy its fields onto ``article`` (links come later)."""
    if draft.title is not None:
        article.title = clean_line(draft.title, field="title", max_length=200)
    if draft.body is not None:
        article.body = clean_text(
            draft.body, field="body", max_length=MAX_BODY, required=False, keep_indent=True
        )
    if draft.summary is not None:
        article.summary = clean_text(
            draft.summary, field="summary", max_length=MAX_SUMMARY, required=False
        )
    if draft.kind is not None:
        article.kind = draft.kind
    if draft.category is not None:
        article.category = clean_category(draft.category)
    if draft.error_signatures is not None:
        article.error_signatures = clean_list(
            draft.error_signatures, field="errorSignatures", max_length=500
        )
    if draft.sources is not None:
        article.sources = clean_sources(draft.sources)
    if draft.clear_known_error:
        article.known_error_id = None
    elif draft.known_error_id is not None:
        if await session.get(KnownError, draft.known_error_id) is None:
            raise NotFoundError(
                f"no known error with id {draft.known_error_id}", field="knownErrorId"
            )
        article.known_error_id = draft.known_error_id


async def _apply_links(session: AsyncSession, article: Article, draft: ArticleDraft) -> None:
    """Replace tags and services (the article must have its id)."""
    if draft.tags is not None:
        tags = clean_tags(draft.tags)
        await session.execute(sa.delete(ArticleTag).where(ArticleTag.article_id == article.id))
        session.add_all(ArticleTag(article_id=article.id, tag=t) for t in tags)
    if draft.service_ids is not None:
        services = await _check_services(session, draft.service_ids)
        await session.execute(
            sa.delete(ArticleService).where(ArticleService.article_id == article.id)
        )
        session.add_all(ArticleService(article_id=article.id, service_id=s) for s in services)


SNAPSHOT_TEXT = ("title", "summary", "body")


async def _snapshot(
    session: AsyncSession, article: Article, author_id: int | None, note: str
) -> ArticleRevision:
    tags = (await tags_of(session=session, article_ids=[article.id]))[article.id]
    services = (await services_of(session=session, article_ids=[article.id]))[article.id]
    known_error = (
        await session.get(KnownError, article.known_error_id) if article.known_error_id else None
    )
    return ArticleRevision(
        article_id=article.id,
        number=article.current_revision,
        title=article.title,
        summary=article.summary,
        body=article.body,
        author_id=author_id,
        change_note=note,
        attributes={
            "kind": article.kind.value,
            "category": article.category or "",
            "tags": "\n".join(sorted(tags)),
            "services": "\n".join(sorted(s.slug for s in services)),
            "known_error": known_error.key if known_error else "",
            "error_signatures": "\n".join(article.error_signatures),
            "sources": "\n".join(article.sources),
        },
    )


async def create(
    *,
    session: AsyncSession,
    principal: Principal,
    draft: ArticleDraft,
    slug: str | None = None,
    change_note: str = "",
) -> Article:
    principal.require(AUTHOR, "Writing articles")
    if draft.title is None or not draft.title.strip():
        raise ValidationError("title must not be empty", field="title")
    note = clean_text(change_note, field="changeNote", max_length=500, required=False)
    chosen = clean_slug(slug) if slug else await _free_slug(session, slugify(draft.title))
    article = Article(
        slug=chosen,
        status=ArticleStatus.DRAFT,
        author_id=principal.user_id,
        current_revision=1,
        kind=draft.kind or ArticleKind.TROUBLESHOOTING,
    )
    await _apply(session, article, draft)
    if draft.tags is not None:
        clean_tags(draft.tags)  # fail before the insert, not after
    session.add(article)
    await flush_or_conflict(session, what=f"article {chosen!r}", field="slug")
    await _apply_links(session, article, draft)
    await session.flush()
    session.add(await _snapshot(session, article, principal.user_id, note or "Created"))
    await record(session=session, entity_type="article", entity_id=article.id)
    await session.flush()
    return article


def check_editable(principal: Principal, article: Article) -> None:
    """Whether ``principal`` may edit ``article`` as it is now (its status decides)."""
    principal.require(AUTHOR, "Editing articles")
    if article.status is ArticleStatus.RETIRED:
        raise InvalidTransitionError(
            "a retired article cannot be edited; revise it back to draft first", field="id"
        )
    if article.status is ArticleStatus.PUBLISHED:
        principal.require(CURATOR, "Editing a published article")


async def update(
    *,
    session: AsyncSession,
    principal: Principal,
    article_id: int,
    expected_version: int,
    draft: ArticleDraft,
    change_note: str = "",
) -> Article:
    principal.require(AUTHOR, "Editing articles")
    article = await get(session=session, principal=principal, article_id=article_id)
    check_version(
        expected=expected_version, current=article.version, what=f"article {article.slug}"
    )
    check_editable(principal, article)
    note = clean_text(change_note, field="changeNote", max_length=500, required=False)
    await _apply(session, article, draft)
    await _apply_links(session, article, draft)
    article.current_revision += 1
    article.updated_at = utcnow()  # tags and services alone would not touch the row
    await flush_or_conflict(session, what=f"article {article.slug}")
    session.add(await _snapshot(session, article, principal.user_id, note))
    await record(session=session, entity_type="article", entity_id=article.id)
    await session.flush()
    return article


async def transition(
    *,
    session: AsyncSession,
    principal: Principal,
    article_id: int,
    action: Transition,
    expected_version: int | None = None,
    reason: str = "",
) -> Article:
    sources, target, role = TRANSITIONS[action]
    principal.require(role, f"To {action.value} an article")
    article = await get(session=session, principal=principal, article_id=article_id)
    if expected_version is not None:
        check_version(
            expected=expected_version, current=article.version, what=f"article {article.slug}"
        )
    if article.status not in sources:
        allowed = " or ".join(sorted(s.value for s in sources))
        raise InvalidTransitionError(
            f"cannot {action.value} an article that is {article.status.value} "
            f"(only {allowed} articles)",
            field="id",
        )
    reason = clean_text(
        reason, field="reason", max_length=2000, required=action is Transition.REJECT
    )
    now = utcnow()
    article.status = target
    if action is Transition.SUBMIT:
        article.submitted_at, article.review_note = now, ""
        article.submitted_by_id = principal.user_id
    elif action is Transition.REJECT:
        article.review_note = reason
    elif target is ArticleStatus.PUBLISHED:
        article.published_at, article.review_note = now, ""
    elif action is Transition.RETIRE:
        article.retired_at = now
        article.review_note = reason
    await flush_or_conflict(session, what=f"article {article.slug}")
    await record(
        session=session,
        entity_type="article",
        entity_id=article.id,
        payload={"transition": action.value, "actor": principal.username},
    )
    return article


# --- revisions -----------------------------------------------------------------------


async def revisions(
    *, session: AsyncSession, principal: Principal, article_id: int
) -> list[ArticleRevision]:
    await get(session=session, principal=principal, article_id=article_id)
    rows = await session.scalars(
        sa.select(ArticleRevision)
        .where(ArticleRevision.article_id == article_id)
        .order_by(ArticleRevision.number.desc())
    )
    return list(rows)


async def diff(
    *, session: AsyncSession, principal: Principal, article_id: int, old: int, new: int
) -> list[FieldDiff]:
    """What changed between two revisions, field by field (unchanged fields left out)."""
    await get(session=session, principal=principal, article_id=article_id)
    found = {
        r.number: r
        for r in await session.scalars(
            sa.select(ArticleRevision).where(
                ArticleRevision.article_id == article_id, ArticleRevision.number.in_([old, new])
            )
        )
    }
    for number, field in ((old, "from"), (new, "to")):
        if number not in found:
            raise NotFoundError(f"article has no revision {number}", field=field)
    before, after = found[old], found[new]
    changes = []

    def values(revision: ArticleRevision) -> dict[str, str]:
        fields = {f: getattr(revision, f) for f in SNAPSHOT_TEXT}
        return fields | {k: str(v) for k, v in (revision.attributes or {}).items()}

    was, now = values(before), values(after)
    for field in dict.fromkeys([*was, *now]):
        a, b = was.get(field, ""), now.get(field, "")
        if a != b:
            unified = "".join(
                difflib.unified_diff(
                    a.splitlines(keepends=True),
                    b.splitlines(keepends=True),
                    fromfile=f"r{old}/{field}",
                    tofile=f"r{new}/{field}",
                )
            )
            changes.append(FieldDiff(field=field, before=a, after=b, unified=unified))
    return changes


# --- feedback ------------------------------------------------------------------------


async def rate(
    *,
    session: AsyncSession,
    principal: Principal,
    article_id: int,
    helpful: bool,
    comment: str = "",
    incident_id: int | None = None,
) -> ArticleFeedback:
    """One vote per user, article and incident: rating again changes the vote."""
    if principal.user_id is None:
        raise AuthenticationError("sign in to rate articles")
    article = await get(session=session, principal=principal, article_id=article_id)
    if article.status is not ArticleStatus.PUBLISHED:
        raise InvalidTransitionError("only published articles can be rated", field="articleId")
    comment = clean_text(comment, field="comment", max_length=2000, required=False)
    # One vote per user: serialise raters of this article (PostgreSQL; SQLite already is).
    await session.execute(sa.select(Article.id).where(Article.id == article_id).with_for_update())
    if incident_id is not None and await session.get(Incident, incident_id) is None:
        raise NotFoundError(f"no incident with id {incident_id}", field="incidentId")
    feedback = await session.scalar(
        sa.select(ArticleFeedback).where(
            ArticleFeedback.article_id == article_id,
            ArticleFeedback.user_id == principal.user_id,
            ArticleFeedback.incident_id.is_(None)
            if incident_id is None
            else ArticleFeedback.incident_id == incident_id,
        )
    )
    if feedback is None:
        feedback = ArticleFeedback(
            article_id=article_id, user_id=principal.user_id, incident_id=incident_id
        )
        session.add(feedback)
    feedback.helpful, feedback.comment = helpful, comment
    await session.flush()
    await record(
        session=session,
        entity_type="article_feedback",
        entity_id=article_id,
        op=OutboxOp.EVENT,
        payload={"helpful": helpful},
    )
    return feedback


async def record_view(
    *, session: AsyncSession, principal: Principal, article_id: int, now: dt.datetime | None = None
) -> None:
    """Count a view without touching the article's version (views are not edits), and
    remember when: the stale-article report asks how recently, not how often."""
    await get(session=session, principal=principal, article_id=article_id)
    await session.execute(
        sa.update(Article)
        .where(Article.id == article_id)
        # updated_at is named so that its onupdate does not fire: a view is not an edit
        # (the duplicate report and "recently updated" ordering read it as one).
        .values(
            view_count=Article.view_count + 1,
            last_viewed_at=now or utcnow(),
            updated_at=Article.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
