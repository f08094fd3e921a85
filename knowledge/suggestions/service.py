"""Suggesting knowledge for an incident or a draft of one.

For now the suggestions are a search over published articles and known errors
with the incident's title and its first error line; the ranking engine will
grow here behind the same function.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.query import plain_words

MAX_WORDS = 24


def query_text(title: str, description: str = "", error_text: str = "") -> str:
    first_error = next((line for line in error_text.splitlines() if line.strip()), "")
    words = plain_words(f"{title} {first_error}") or plain_words(description)
    return " ".join(words[:MAX_WORDS])


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
    text = query_text(title, description, error_text)
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
    )
    return results.hits
