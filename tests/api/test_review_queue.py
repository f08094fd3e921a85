"""The review queue: articles in review, longest waiting first, for knowledge managers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from starlette.applications import Starlette

from api.relay import parse_global_id, to_global_id, to_sort_cursor
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.db import Database
from tests.api.test_dataloaders import counting_statements
from tests.support import Account, Accounts, GraphQLClient

QUEUE = """
query($first: Int, $after: String) {
  articlesAwaitingReview(first: $first, after: $after) {
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { slug status submittedAt submittedBy { username } author { username }
                          tags } }
  }
}
"""
CREATE = """
mutation($title: String!) { createArticle(input: {title: $title}) { ... on Article { id } } }
"""
SUBMIT = """
mutation($id: ID!) {
  submitArticleForReview(input: {id: $id}) { __typename ... on Article { submittedAt } }
}
"""
REJECT = """
mutation($id: ID!) { rejectArticle(input: {id: $id, reason: "Add the df output"}) { __typename } }
"""
APPROVE = "mutation($id: ID!) { approveArticle(input: {id: $id}) { __typename } }"


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER, "kim")


@pytest.fixture
async def rita(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "rita")


@pytest.fixture
async def sam(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "sam")


async def draft(client: GraphQLClient, author: Account, title: str) -> str:
    created = await client(CREATE, {"title": title}, token=author.token)
    gid: str = created.data["createArticle"]["id"]
    return gid


async def submit(client: GraphQLClient, who: Account, gid: str) -> None:
    submitted = await client(SUBMIT, {"id": gid}, token=who.token)
    assert submitted.data["submitArticleForReview"]["__typename"] == "Article"


async def queue(client: GraphQLClient, token: str, **variables: Any) -> Any:
    return (await client(QUEUE, variables, token=token)).data["articlesAwaitingReview"]


def slugs(page: Any) -> list[str]:
    return [edge["node"]["slug"] for edge in page["edges"]]


async def test_the_queue_lists_articles_in_review_longest_waiting_first_with_their_submitter(
    client: GraphQLClient, db: Database, manager: Account, rita: Account, sam: Account
) -> None:
    # given three articles submitted in an order that is not the order they were written
    first, second, third = [
        await draft(client, rita, title) for title in ("Disk full", "DNS timeouts", "TLS expiry")
    ]
    await submit(client, rita, third)
    await submit(client, sam, first)
    await submit(client, rita, second)
    # and articles that are not in review
    await draft(client, rita, "Still a draft")
    published = await draft(client, rita, "Already published")
    async with db.transaction() as session:
        await articles.transition(
            session=session,
            principal=SYSTEM,
            article_id=parse_global_id(published)[1],
            action=Transition.PUBLISH,
        )

    # when a knowledge manager opens the queue
    page = await queue(client, manager.token)

    # then it holds the articles in review, the longest waiting first
    assert slugs(page) == ["tls-expiry", "disk-full", "dns-timeouts"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert [n["submittedBy"]["username"] for n in nodes] == ["rita", "sam", "rita"]
    assert {n["status"] for n in nodes} == {"IN_REVIEW"}
    assert all(n["author"] == {"username": "rita"} for n in nodes)
    times = [dt.datetime.fromisoformat(n["submittedAt"]) for n in nodes]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    assert page["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "endCursor": page["edges"][-1]["cursor"],
    }


async def test_a_rejected_article_leaves_the_queue_and_rejoins_at_the_end(
    client: GraphQLClient, manager: Account, rita: Account, sam: Account
) -> None:
    early, late = await draft(client, rita, "Early"), await draft(client, rita, "Late")
    await submit(client, rita, early)
    await submit(client, rita, late)

    assert (await client(REJECT, {"id": early}, token=manager.token)).data["rejectArticle"][
        "__typename"
    ] == "Article"
    assert slugs(await queue(client, manager.token)) == ["late"]

    # Resubmitted by someone else: it waits behind "late" now, and names the new submitter.
    await submit(client, sam, early)
    page = await queue(client, manager.token)
    assert slugs(page) == ["late", "early"]
    assert page["edges"][1]["node"]["submittedBy"] == {"username": "sam"}

    assert (await client(APPROVE, {"id": late}, token=manager.token)).data["approveArticle"][
        "__typename"
    ] == "Article"
    assert slugs(await queue(client, manager.token)) == ["early"]


async def test_articles_submitted_by_the_system_have_no_submitter(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    async with db.transaction() as session:
        article = await articles.create(
            session=session, principal=SYSTEM, draft=ArticleDraft(title="Imported")
        )
        await articles.transition(
            session=session, principal=SYSTEM, article_id=article.id, action=Transition.SUBMIT
        )
    node = (await queue(client, manager.token))["edges"][0]["node"]
    assert (node["slug"], node["submittedBy"]) == ("imported", None)
    assert node["submittedAt"] is not None


async def test_the_queue_pages_with_cursors_and_survives_changes_between_pages(
    client: GraphQLClient, manager: Account, rita: Account
) -> None:
    gids = [await draft(client, rita, f"Article {n}") for n in range(5)]
    for gid in gids:
        await submit(client, rita, gid)

    page1 = await queue(client, manager.token, first=2)
    assert slugs(page1) == ["article-0", "article-1"]
    assert page1["pageInfo"]["hasNextPage"] is True
    # An article on the first page is approved meanwhile: the next page is not shifted.
    await client(APPROVE, {"id": gids[0]}, token=manager.token)
    page2 = await queue(client, manager.token, first=2, after=page1["pageInfo"]["endCursor"])
    assert slugs(page2) == ["article-2", "article-3"]
    assert page2["pageInfo"]["hasPreviousPage"] is True
    page3 = await queue(client, manager.token, first=2, after=page2["pageInfo"]["endCursor"])
    assert slugs(page3) == ["article-4"]
    assert page3["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.REPORTER, Role.RESPONDER])
async def test_only_knowledge_managers_and_admins_see_the_queue(
    client: GraphQLClient, accounts: Accounts, rita: Account, role: Role | None
) -> None:
    await submit(client, rita, await draft(client, rita, "Waiting"))
    token = None if role is None else (await accounts.create(role)).token

    refused = await client(QUEUE, {}, token=token)

    assert refused.error_codes == ["FORBIDDEN"]
    assert "knowledge_manager role" in refused.errors[0]["message"]
    assert refused.body["data"] is None


async def test_admins_see_the_queue_too(
    client: GraphQLClient, accounts: Accounts, rita: Account
) -> None:
    await submit(client, rita, await draft(client, rita, "Waiting"))
    admin = await accounts.create(Role.ADMIN)
    assert slugs(await queue(client, admin.token)) == ["waiting"]


@pytest.mark.parametrize(
    "after",
    [
        "not a cursor",
        "",
        "x" * 5000,
        to_global_id("Article", 1),  # an id, not a cursor
        "Y3Vyc29yOjE",  # "cursor:1", the cursor of lists ordered by creation
        to_sort_cursor("2026-11-29T10:00:00", 1),  # a time without its zone
        to_sort_cursor("yesterday", 1),
        to_sort_cursor(12, 1),
        to_sort_cursor("2026-11-29T10:00:00+00:00", -1),
    ],
)
async def test_malformed_cursors_are_refused(
    client: GraphQLClient, manager: Account, after: str
) -> None:
    refused = await client(QUEUE, {"after": after}, token=manager.token)
    assert refused.error_codes == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("first", [-1, 101, 2**31 - 1])
async def test_page_sizes_are_bounded(client: GraphQLClient, manager: Account, first: int) -> None:
    refused = await client(QUEUE, {"first": first}, token=manager.token)
    assert refused.error_codes == ["BAD_USER_INPUT"]


async def test_the_queue_costs_the_same_statements_at_any_page_size(
    client: GraphQLClient, db: Database, app: Starlette, manager: Account, rita: Account
) -> None:
    for n in range(6):
        await submit(client, rita, await draft(client, rita, f"Article {n}"))
    await queue(client, manager.token)  # the token's first use is recorded once: not counted
    counts = {}
    for first in (1, 6):
        async with app.state.indexer.paused(), app.state.events.paused():
            with counting_statements(db) as statements:
                assert len(slugs(await queue(client, manager.token, first=first))) == first
        counts[first] = len(statements)
    # the token, the page, then one batch per relation: users (authors and submitters), tags
    assert counts[1] == counts[6] <= 4, counts


async def test_the_service_serves_other_interfaces_too(db: Database) -> None:
    """The CLI and the MCP server call the same function (as the system here)."""
    async with db.transaction() as session:
        for title in ("One", "Two"):
            article = await articles.create(
                session=session, principal=SYSTEM, draft=ArticleDraft(title=title)
            )
            await articles.transition(
                session=session, principal=SYSTEM, article_id=article.id, action=Transition.SUBMIT
            )
    async with db.read() as session:
        page = await articles.awaiting_review(session=session, principal=SYSTEM, first=1)
        assert [a.slug for a in page.items] == ["one"]
        assert page.has_next
        last = page.items[-1]
        rest = await articles.awaiting_review(
            session=session,
            principal=SYSTEM,
            after=last.id,
            after_submitted_at=last.submitted_at,
        )
    assert [a.slug for a in rest.items] == ["two"]
