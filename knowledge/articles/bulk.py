"""Changing many articles at once: retire, retag, move to a category.

Per item, not all-or-nothing: every id is tried, each in its own transaction,
and each one's outcome (the article, or the domain error that stopped it) is
reported on its own. That is what users of ServiceNow or Zammad bulk edits
expect: one draft that may not be retired must not undo the retirement of
ninety-nine published articles. One transaction per item also keeps SQLite's
single write lock short, so incident work never queues behind a long batch, and
never holds locks on several articles at once, so two batches cannot deadlock
on PostgreSQL.

Each item goes through the same service function as a single edit, so it writes
the same revision and outbox row (and so reaches the search index and the
subscribers). A bulk request names no versions: it means "whatever the article
is now". An item that loses a race with a concurrent edit is therefore tried
again on the fresh row, a few times, before being reported as a conflict.

Whatever is wrong with the request as a whole (the role, too many ids, bad
tags or category) fails before any item is touched. An unexpected failure (the
database gone) stops the batch with an exception: the items done before it stay
done, as they would have after as many single changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.articles import service
from knowledge.articles.models import Article
from knowledge.articles.service import AUTHOR, CURATOR, ArticleDraft, Transition
from knowledge.errors import AuthenticationError, ConflictError, DomainError, ValidationError
from knowledge.validation import clean_text

MAX_IDS = 100
ATTEMPTS = 3  # per item, when a concurrent edit wins the race

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclasses.dataclass(frozen=True, slots=True)
class ItemResult:
    """One id's outcome: the article as it now is, or why it was left alone."""

    article_id: int
    article: Article | None = None
    error: DomainError | None = None


def check_count(count: int) -> None:
    if count > MAX_IDS:
        raise ValidationError(f"at most {MAX_IDS} articles at a time, got {count}", field="ids")


def check_ids(article_ids: Sequence[int]) -> list[int]:
    """The ids to work on, each once and in the order given; at most ``MAX_IDS``."""
    check_count(len(article_ids))
    return list(dict.fromkeys(article_ids))


async def _each(
    transaction: Transaction,
    article_ids: Sequence[int],
    change: Callable[[AsyncSession, int], Awaitable[Article]],
) -> list[ItemResult]:
    results = []
    for article_id in article_ids:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with transaction() as session:
                    article = await change(session, article_id)
            except AuthenticationError:
                raise
            except ConflictError as error:
                if attempt < ATTEMPTS:
                    continue
                results.append(ItemResult(article_id, error=error))
            except DomainError as error:
                results.append(ItemResult(article_id, error=error))
            else:
                results.append(ItemResult(article_id, article=article))
            break
    return results


async def retire(
    *,
    transaction: Transaction,
    principal: Principal,
    article_ids: Sequence[int],
    reason: str = "",
) -> list[ItemResult]:
    """Retire published articles (hidden from search); the reason is kept on each."""
    principal.require(CURATOR, "Retiring articles")
    ids = check_ids(article_ids)
    reason = clean_text(reason, field="reason", max_length=2000, required=False)

    async def change(session: AsyncSession, article_id: int) -> Article:
        return await service.transition(
            session=session,
            principal=principal,
            article_id=article_id,
            action=Transition.RETIRE,
            reason=reason,
        )

    return await _each(transaction, ids, change)


async def retag(
    *,
    transaction: Transaction,
    principal: Principal,
    article_ids: Sequence[int],
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> list[ItemResult]:
    """Add and remove tags, keeping each article's other tags.

    An article that already has the tags asked for is left as it is (no empty
    revision), but only if its caller could have edited it.
    """
    principal.require(AUTHOR, "Retagging articles")
    ids = check_ids(article_ids)
    added = service.clean_tags(add, field="addTags")
    removed = service.clean_tags(remove, field="removeTags")
    if not added and not removed:
        raise ValidationError("name at least one tag to add or remove", field="addTags")
    both = sorted(set(added) & set(removed))
    if both:
        raise ValidationError(f"tag {both[0]!r} is both added and removed", field="removeTags")
    note = "Tags: " + ", ".join([f"+{t}" for t in added] + [f"-{t}" for t in removed])

    async def change(session: AsyncSession, article_id: int) -> Article:
        article = await service.get(session=session, principal=principal, article_id=article_id)
        current = (await service.tags_of(session=session, article_ids=[article_id]))[article_id]
        wanted = [t for t in current if t not in removed] + [t for t in added if t not in current]
        if set(wanted) == set(current):
            service.check_editable(principal, article)
            return article
        if len(wanted) > service.MAX_TAGS:
            raise ValidationError(
                f"the article would have {len(wanted)} tags; at most {service.MAX_TAGS}",
                field="addTags",
            )
        return await service.update(
            session=session,
            principal=principal,
            article_id=article_id,
            expected_version=article.version,
            draft=ArticleDraft(tags=wanted),
            change_note=note,
        )

    return await _each(transaction, ids, change)


async def move_to_category(
    *,
    transaction: Transaction,
    principal: Principal,
    article_ids: Sequence[int],
    category: str,
) -> list[ItemResult]:
    """Put articles in one category; an empty one takes them out of any category."""
    principal.require(AUTHOR, "Moving articles")
    ids = check_ids(article_ids)
    target = service.clean_category(category)
    note = f"Moved to category {target}" if target else "Removed from its category"

    async def change(session: AsyncSession, article_id: int) -> Article:
        article = await service.get(session=session, principal=principal, article_id=article_id)
        if article.category == target:
            service.check_editable(principal, article)
            return article
        return await service.update(
            session=session,
            principal=principal,
            article_id=article_id,
            expected_version=article.version,
            draft=ArticleDraft(category=target or ""),
            change_note=note,
        )

    return await _each(transaction, ids, change)
