"""Suggesting knowledge for an incident or a draft of one.

For now the suggestions are a search over published articles and known errors
with the most informative words of everything the reporter wrote; the ranking
engine (signatures, context, history) will grow here behind the same function.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.query import MAX_QUERY_LENGTH, plain_words

__all__ = ["plain_words", "query_text", "suggest"]

# Chosen with ``knownfix eval`` on incident-eval-dev (full mode): 8 words gave
# Recall@1 0.82, 16 gave 0.93, 32 gave 0.98 at about 60 ms p50; a reporter's
# description needs more words than a search box query.
MAX_TERMS = 32


def query_text(title: str, description: str = "", error_text: str = "") -> str:
    """Everything the reporter wrote, as plain lower-case words: no query syntax (a log's
    "NOT NULL" is not an operator), and the search keeps the rarest of them."""
    return " ".join(plain_words(f"{title} {description} {error_text}")).lower()


async def suggest(
    *,
    session: AsyncSession,
    principal: Principal,
    index: SearchIndex,
    title: str,
    description: str = "",
    error_text: str = "",
    service: str | None = None,
    first: int = 5,
) -> list[search.SearchHit]:
    # A description can be a page of logs: keep its most informative words first.
    text = await asyncio.to_thread(
        search.informative_words, index, query_text(title, description, error_text), MAX_TERMS
    )
    text = text[:MAX_QUERY_LENGTH].rsplit(" ", 1)[0] if len(text) > MAX_QUERY_LENGTH else text
    if not text:
        return []
    results = await search.search(
        session=session,
        principal=principal,
        index=index,
        text=text,
        filter=search.SearchFilter(kinds=["article", "known_error"]),
        first=first,
        with_facets=False,
        max_terms=MAX_TERMS,
    )
    return results.hits
