"""Bulk article changes: every id is tried on its own and reported on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette

from api.relay import parse_global_id, to_global_id
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import ArticleStatus
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.db import Database
from tests.support import Account, Accounts, GraphQLClient

PAYLOAD = """
  __typename
  ... on BulkArticlesPayload {
    articles { id slug status category tags version currentRevision reviewNote }
    errors { id error { __typename message code field ... on ConflictError { currentVersion } } }
  }
  ... on Error { message code field }
"""
RETIRE = f"""
mutation($input: RetireArticlesInput!) {{ retireArticles(input: $input) {{ {PAYLOAD} }} }}
"""
RETAG = f"""
mutation($input: RetagArticlesInput!) {{ retagArticles(input: $input) {{ {PAYLOAD} }} }}
"""
MOVE = f"""
mutation($input: MoveArticlesToCategoryInput!) {{
  moveArticlesToCategory(input: $input) {{ {PAYLOAD} }}
}}
"""
UPDATE = """
mutation($input: UpdateArticleInput!) {
  updateArticle(input: $input) { __typename ... on Article { version tags } }
}
"""
ARTICLE = "query($id: ID!) { article(id: $id) { version tags currentRevision } }"
REVISIONS = """
query($id: ID!) { articleRevisions(articleId: $id) { number changeNote author { username } } }
"""
DIFF = """
query($id: ID!, $from: Int!, $to: Int!) {
  articleDiff(articleId: $id, fromRevision: $from, toRevision: $to) {
    changes { field before after }
  }
}
"""
SEARCH = "query($q: String!) { search(query: $q) { totalCount } }"


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER, "kim")


@pytest.fixture
async def responder(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "rita")


async def article(
    db: Database, title: str, *actions: Transition, tags: list[str] | None = None
) -> str:
    """An article (as the system) moved through ``actions``; its global id."""
    async with db.transaction() as session:
        row = await articles.create(
            session=session, principal=SYSTEM, draft=ArticleDraft(title=title, tags=tags)
        )
        for action in actions:
            await articles.transition(
                session=session, principal=SYSTEM, article_id=row.id, action=action
            )
    return to_global_id("Article", row.id)


async def published(db: Database, title: str, tags: list[str] | None = None) -> str:
    return await article(db, title, Transition.PUBLISH, tags=tags)


async def bulk(
    client: GraphQLClient, document: str, account: Account | None, **input: Any
) -> dict[str, Any]:
    response = await client(document, {"input": input}, token=account and account.token)
    (result,) = response.data.values()
    assert isinstance(result, dict)
    return result


def errors_by_id(result: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {e["id"]: (e["error"]["__typename"], e["error"]["field"]) for e in result["errors"]}


def key(gid: str) -> int:
    return parse_global_id(gid)[1]


async def status_of(db: Database, gid: str) -> ArticleStatus:
    async with db.read() as session:
        row = await articles.get(session=session, principal=SYSTEM, article_id=key(gid))
    return row.status


# --- retiring -------------------------------------------------------------------------


async def test_retiring_many_reports_each_id_on_its_own(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    # given published articles, and ids that cannot be retired for every reason there is
    one, two = await published(db, "Disk full"), await published(db, "DNS timeouts")
    draft = await article(db, "A draft")
    retired = await article(db, "Old", Transition.PUBLISH, Transition.RETIRE)
    missing = to_global_id("Article", 999_999)
    malformed = "definitely-not-an-id"
    service_id = to_global_id("Service", 1)
    ids = [one, draft, missing, two, malformed, retired, service_id]

    # when a knowledge manager retires them all
    result = await bulk(client, RETIRE, manager, ids=ids, reason="Superseded by the runbook")

    # then the published ones are retired, with the reason, and every other id says why not
    assert result["__typename"] == "BulkArticlesPayload"
    assert [(a["id"], a["status"], a["reviewNote"]) for a in result["articles"]] == [
        (one, "RETIRED", "Superseded by the runbook"),
        (two, "RETIRED", "Superseded by the runbook"),
    ]
    assert [e["id"] for e in result["errors"]] == [draft, missing, malformed, retired, service_id]
    assert errors_by_id(result) == {
        draft: ("InvalidTransitionError", "input.ids.1"),
        missing: ("NotFoundError", "input.ids.2"),
        malformed: ("ValidationError", "input.ids.4"),
        retired: ("InvalidTransitionError", "input.ids.5"),
        service_id: ("ValidationError", "input.ids.6"),
    }
    assert await status_of(db, draft) is ArticleStatus.DRAFT


async def test_retired_articles_leave_the_search_index(
    client: GraphQLClient, db: Database, app: Starlette, manager: Account
) -> None:
    gids = [await published(db, f"Kafka consumer lag {n}") for n in range(3)]
    await app.state.indexer.catch_up()
    assert (await client(SEARCH, {"q": "kafka lag"})).data["search"]["totalCount"] == 3

    result = await bulk(client, RETIRE, manager, ids=gids[:2])
    assert len(result["articles"]) == 2

    await app.state.indexer.catch_up()
    assert (await client(SEARCH, {"q": "kafka lag"})).data["search"]["totalCount"] == 1


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.REPORTER, Role.RESPONDER])
async def test_only_knowledge_managers_retire_in_bulk(
    client: GraphQLClient, db: Database, accounts: Accounts, role: Role | None
) -> None:
    gid = await published(db, "Disk full")
    account = None if role is None else await accounts.create(role)

    result = await bulk(client, RETIRE, account, ids=[gid, "malformed"])

    assert result["__typename"] == "PermissionDeniedError"
    assert "knowledge_manager" in result["message"]
    assert await status_of(db, gid) is ArticleStatus.PUBLISHED


async def test_more_than_a_hundred_ids_are_refused_before_anything_changes(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    gid = await published(db, "Disk full")

    result = await bulk(client, RETIRE, manager, ids=[gid] + ["junk"] * 100)

    assert (result["__typename"], result["field"]) == ("ValidationError", "input.ids")
    assert "at most 100" in result["message"]
    assert await status_of(db, gid) is ArticleStatus.PUBLISHED


async def test_a_hundred_ids_are_accepted_and_a_repeated_id_counts_once(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    gid = await published(db, "Disk full")

    result = await bulk(client, RETIRE, manager, ids=[gid] * 100)

    assert [a["id"] for a in result["articles"]] == [gid]
    assert result["errors"] == []


async def test_an_empty_list_changes_nothing(client: GraphQLClient, manager: Account) -> None:
    for document, extra in ((RETIRE, {}), (RETAG, {"addTags": ["x"]}), (MOVE, {"category": "x"})):
        result = await bulk(client, document, manager, ids=[], **extra)
        assert result == {"__typename": "BulkArticlesPayload", "articles": [], "errors": []}


async def test_a_reason_too_long_is_refused_as_a_whole(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    gid = await published(db, "Disk full")
    result = await bulk(client, RETIRE, manager, ids=[gid], reason="x" * 2001)
    assert (result["__typename"], result["field"]) == ("ValidationError", "input.reason")
    assert await status_of(db, gid) is ArticleStatus.PUBLISHED


async def test_missing_input_is_a_graphql_error(client: GraphQLClient, manager: Account) -> None:
    refused = await client(RETAG, {"input": {"addTags": ["x"]}}, token=manager.token)
    assert "ids" in refused.errors[0]["message"]
    wrong_type = await client(RETIRE, {"input": {"ids": "not a list of ids"}}, token=manager.token)
    assert wrong_type.data["retireArticles"]["errors"][0]["error"]["__typename"] == (
        "ValidationError"
    )


# --- retagging ------------------------------------------------------------------------


async def test_retagging_keeps_other_tags_and_writes_a_revision_each(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    # given an article whose tags change, and one that already is as asked
    changed = await published(db, "Disk full", tags=["disk", "linux"])
    already = await published(db, "Quota", tags=["ext4", "storage"])

    result = await bulk(
        client, RETAG, manager, ids=[changed, already],
        addTags=["Storage", " ext4 "], removeTags=["LINUX", "windows"],
    )  # fmt: skip

    assert result["errors"] == []
    after = {a["id"]: a for a in result["articles"]}
    assert after[changed]["tags"] == ["disk", "ext4", "storage"]
    assert after[changed]["currentRevision"] == 2
    assert after[already]["tags"] == ["ext4", "storage"]
    assert (after[already]["currentRevision"], after[already]["version"]) == (1, 2)
    revisions = (await client(REVISIONS, {"id": changed})).data["articleRevisions"]
    assert revisions[0] == {
        "number": 2,
        "changeNote": "Tags: +storage, +ext4, -linux, -windows",
        "author": {"username": "kim"},
    }
    diff = (await client(DIFF, {"id": changed, "from": 1, "to": 2})).data["articleDiff"]
    assert diff["changes"] == [
        {"field": "tags", "before": "disk\nlinux", "after": "disk\next4\nstorage"}
    ]


@pytest.mark.parametrize(
    ("add", "remove", "field"),
    [
        ([], [], "input.addTags"),
        (["disk"], ["Disk"], "input.removeTags"),
        (["x" * 61], [], "input.addTags"),
        (["bad\u0000tag"], [], "input.addTags"),
        (["line\nbreak"], [], "input.addTags"),
        ([f"t{n}" for n in range(21)], [], "input.addTags"),
        ([], ["   "], "input.removeTags"),
    ],
)
async def test_bad_tags_are_refused_as_a_whole(
    client: GraphQLClient,
    db: Database,
    manager: Account,
    add: list[str],
    remove: list[str],
    field: str,
) -> None:
    gid = await published(db, "Disk full", tags=["disk"])
    result = await bulk(client, RETAG, manager, ids=[gid], addTags=add, removeTags=remove)
    assert (result["__typename"], result["field"]) == ("ValidationError", field)
    assert (await client(ARTICLE, {"id": gid})).data["article"]["currentRevision"] == 1


async def test_hostile_tags_are_kept_literally(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    gid = await published(db, "Disk full")
    hostile = ["<script>alert(1)</script>", "'; drop table articles; --", "ünïcødé"]
    result = await bulk(client, RETAG, manager, ids=[gid], addTags=hostile)
    assert sorted(result["articles"][0]["tags"]) == sorted(hostile)


async def test_an_article_that_would_have_too_many_tags_fails_alone(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    full = await published(db, "Full", tags=[f"t{n}" for n in range(19)])
    roomy = await published(db, "Roomy")

    result = await bulk(client, RETAG, manager, ids=[full, roomy], addTags=["a", "b"])

    assert [a["id"] for a in result["articles"]] == [roomy]
    assert errors_by_id(result) == {full: ("ValidationError", "input.addTags")}
    assert "21 tags" in result["errors"][0]["error"]["message"]


async def test_a_responder_retags_drafts_and_reviews_but_not_published_or_retired_articles(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    draft = await article(db, "Draft")
    in_review = await article(db, "In review", Transition.SUBMIT)
    public = await published(db, "Public", tags=["disk"])
    retired = await article(db, "Retired", Transition.PUBLISH, Transition.RETIRE)

    # "disk" is already on the published article: refused all the same, not "unchanged"
    result = await bulk(
        client, RETAG, responder, ids=[draft, in_review, public, retired], addTags=["disk"]
    )

    assert [a["id"] for a in result["articles"]] == [draft, in_review]
    assert errors_by_id(result) == {
        public: ("PermissionDeniedError", "input.ids.2"),
        retired: ("InvalidTransitionError", "input.ids.3"),
    }


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.REPORTER])
async def test_viewers_and_reporters_may_not_retag_or_move(
    client: GraphQLClient, db: Database, accounts: Accounts, role: Role | None
) -> None:
    gid = await article(db, "Draft")
    account = None if role is None else await accounts.create(role)
    for document, extra in ((RETAG, {"addTags": ["x"]}), (MOVE, {"category": "x"})):
        result = await bulk(client, document, account, ids=[gid], **extra)
        assert result["__typename"] == "PermissionDeniedError"


# --- moving ---------------------------------------------------------------------------


async def test_moving_to_a_category_and_out_of_every_category(
    client: GraphQLClient, db: Database, manager: Account
) -> None:
    one, two = await published(db, "Disk full"), await article(db, "A draft")

    moved = await bulk(client, MOVE, manager, ids=[one, two], category="  Storage ")
    assert [(a["category"], a["currentRevision"]) for a in moved["articles"]] == [
        ("storage", 2),
        ("storage", 2),
    ]
    again = await bulk(client, MOVE, manager, ids=[one], category="storage")
    assert again["articles"][0]["currentRevision"] == 2, "already there: no empty revision"
    cleared = await bulk(client, MOVE, manager, ids=[one], category="")
    assert [(a["category"], a["currentRevision"]) for a in cleared["articles"]] == [(None, 3)]
    revisions = (await client(REVISIONS, {"id": one})).data["articleRevisions"]
    assert [r["changeNote"] for r in revisions[:2]] == [
        "Removed from its category",
        "Moved to category storage",
    ]


@pytest.mark.parametrize("category", ["x" * 81, "two\nlines", "nul\u0000"])
async def test_a_bad_category_is_refused_as_a_whole(
    client: GraphQLClient, db: Database, manager: Account, category: str
) -> None:
    gid = await published(db, "Disk full")
    result = await bulk(client, MOVE, manager, ids=[gid], category=category)
    assert (result["__typename"], result["field"]) == ("ValidationError", "input.category")


# --- concurrency ----------------------------------------------------------------------


async def test_an_article_changed_since_it_was_read_is_changed_as_it_now_is(
    client: GraphQLClient, db: Database, manager: Account, responder: Account
) -> None:
    # given a knowledge manager who read a draft at version 1
    gid = await article(db, "Disk full", tags=["disk"])
    read = (await client(ARTICLE, {"id": gid}, token=manager.token)).data["article"]
    # and a responder who tagged it meanwhile
    edited = await client(
        UPDATE, {"input": {"id": gid, "expectedVersion": read["version"], "tags": ["disk", "linux"]}},
        token=responder.token,
    )  # fmt: skip
    assert edited.data["updateArticle"]["version"] == 2

    # when the manager retags it in bulk (naming no version)
    result = await bulk(client, RETAG, manager, ids=[gid], addTags=["ext4"])

    # then both changes are kept, each in its own revision
    assert result["articles"][0]["tags"] == ["disk", "ext4", "linux"]
    assert (result["articles"][0]["version"], result["articles"][0]["currentRevision"]) == (3, 3)
    diff = (await client(DIFF, {"id": gid, "from": 2, "to": 3}, token=manager.token)).data[
        "articleDiff"
    ]
    assert diff["changes"] == [
        {"field": "tags", "before": "disk\nlinux", "after": "disk\next4\nlinux"}
    ]
    # while a single edit naming what was read is still a conflict
    stale = await client(
        UPDATE, {"input": {"id": gid, "expectedVersion": read["version"], "tags": []}},
        token=manager.token,
    )  # fmt: skip
    assert stale.data["updateArticle"]["__typename"] == "ConflictError"


async def test_concurrent_bulk_changes_and_edits_end_consistent(
    client: GraphQLClient, db: Database, manager: Account, responder: Account
) -> None:
    gids = [await article(db, f"Article {n}", tags=["base"]) for n in range(4)]

    async def edit(gid: str) -> str:
        read = (await client(ARTICLE, {"id": gid}, token=responder.token)).data["article"]
        edited = await client(
            UPDATE, {"input": {"id": gid, "expectedVersion": read["version"],
                               "tags": [*read["tags"], "edited"]}},
            token=responder.token,
        )  # fmt: skip
        typename: str = edited.data["updateArticle"]["__typename"]
        return typename

    outcomes = await asyncio.gather(
        bulk(client, RETAG, manager, ids=gids, addTags=["alpha"]),
        bulk(client, RETAG, manager, ids=list(reversed(gids)), addTags=["beta"]),
        bulk(client, MOVE, manager, ids=gids, category="storage"),
        *(edit(gid) for gid in gids),
    )
    results, edits = outcomes[:3], outcomes[3:]

    # Every bulk item either applied or reports a conflict it could not get past.
    for result in results:
        assert result["__typename"] == "BulkArticlesPayload"
        assert {e["error"]["__typename"] for e in result["errors"]} <= {"ConflictError"}
    assert set(edits) <= {"Article", "ConflictError"}
    applied = [{a["id"] for a in result["articles"]} for result in results]
    for n, gid in enumerate(gids):
        async with db.read() as session:
            row = await articles.get(session=session, principal=SYSTEM, article_id=key(gid))
            tags = (await articles.tags_of(session=session, article_ids=[row.id]))[row.id]
            numbers = [r.number for r in await articles.revisions(
                session=session, principal=SYSTEM, article_id=row.id)]  # fmt: skip
        # no change was lost: what was reported as done is there
        assert "base" in tags
        assert ("alpha" in tags) == (gid in applied[0])
        assert ("beta" in tags) == (gid in applied[1])
        assert (row.category == "storage") == (gid in applied[2])
        assert ("edited" in tags) == (edits[n] == "Article")
        # and the history has one revision per change, numbered without gaps
        assert sorted(numbers) == list(range(1, row.current_revision + 1))
        changes = sum(gid in a for a in applied) + (edits[n] == "Article")
        assert row.current_revision == 1 + changes
