"""Articles through GraphQL: lifecycle and roles, revisions, validation, conflicts, feedback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.relay import to_global_id
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import ArticleStatus
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.db import Database
from tests.support import Account, Accounts, GraphQLClient

ARTICLE_FIELDS = """
  id slug title summary body bodyHtml kind status category tags version currentRevision
  reviewNote sources errorSignatures publishedAt author { username }
  services { slug } knownError { key } stats { views helpful notHelpful helpfulRatio }
"""
RESULT = f"""
  __typename
  ... on Article {{ {ARTICLE_FIELDS} }}
  ... on Error {{ message code field }}
  ... on ConflictError {{ currentVersion }}
"""
CREATE = f"mutation($input: CreateArticleInput!) {{ createArticle(input: $input) {{ {RESULT} }} }}"
UPDATE = f"mutation($input: UpdateArticleInput!) {{ updateArticle(input: $input) {{ {RESULT} }} }}"
ARTICLE = f"query($id: ID!) {{ article(id: $id) {{ {ARTICLE_FIELDS} }} }}"

TRANSITION_MUTATIONS = {
    Transition.SUBMIT: "submitArticleForReview",
    Transition.APPROVE: "approveArticle",
    Transition.REJECT: "rejectArticle",
    Transition.PUBLISH: "publishArticle",
    Transition.RETIRE: "retireArticle",
    Transition.REVISE: "reviseArticle",
}
INPUT_TYPES = {
    Transition.REJECT: "ArticleReasonInput",
    Transition.RETIRE: "RetireArticleInput",
}
# The status each transition needs to start from, reached from a fresh draft.
PATH_TO: dict[Transition, list[Transition]] = {
    Transition.SUBMIT: [],
    Transition.APPROVE: [Transition.SUBMIT],
    Transition.REJECT: [Transition.SUBMIT],
    Transition.PUBLISH: [],
    Transition.RETIRE: [Transition.PUBLISH],
    Transition.REVISE: [Transition.PUBLISH],
}


def transition_document(action: Transition) -> str:
    name = TRANSITION_MUTATIONS[action]
    input_type = INPUT_TYPES.get(action, "ArticleTransitionInput")
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {RESULT} }} }}"


async def draft_article(
    db: Database, title: str = "Disk full on the build agents", **kw: Any
) -> int:
    async with db.transaction() as session:
        article = await articles.create(
            session=session,
            principal=SYSTEM,
            draft=ArticleDraft(title=title, body=kw.pop("body", "## Symptoms\nENOSPC"), **kw),
        )
    return article.id


async def move(db: Database, article_id: int, *actions: Transition) -> None:
    for action in actions:
        async with db.transaction() as session:
            await articles.transition(
                session=session, principal=SYSTEM, article_id=article_id, action=action, reason="x"
            )


@pytest.fixture
async def responder(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "rita")


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER, "kim")


async def test_a_responder_drafts_an_article_at_revision_one(
    client: GraphQLClient, responder: Account
) -> None:
    article = (
        await client(
            CREATE,
            {"input": {"title": "Kafka consumer lag after deploy", "body": "## Cause\nRebalance",
                       "tags": ["Kafka", "kafka", "lag"], "category": "Messaging"}},
            token=responder.token,
        )
    ).data["createArticle"]  # fmt: skip
    assert article["__typename"] == "Article"
    assert article["slug"] == "kafka-consumer-lag-after-deploy"
    assert (article["status"], article["version"], article["currentRevision"]) == ("DRAFT", 1, 1)
    assert article["tags"] == ["kafka", "lag"]
    assert article["category"] == "messaging"
    assert article["author"] == {"username": "rita"}
    assert "<h2>Cause</h2>" in article["bodyHtml"]


async def test_slugs_stay_unique_when_titles_repeat(
    client: GraphQLClient, responder: Account
) -> None:
    slugs = []
    for _ in range(3):
        created = await client(CREATE, {"input": {"title": "TLS: expired!"}}, token=responder.token)
        slugs.append(created.data["createArticle"]["slug"])
    assert slugs == ["tls-expired", "tls-expired-2", "tls-expired-3"]
    taken = await client(
        CREATE, {"input": {"title": "x", "slug": "tls-expired"}}, token=responder.token
    )
    assert taken.data["createArticle"]["__typename"] == "ConflictError"


@pytest.mark.parametrize("action", list(Transition))
@pytest.mark.parametrize("role", [Role.VIEWER, Role.REPORTER, Role.RESPONDER,
                                  Role.KNOWLEDGE_MANAGER, Role.ADMIN])  # fmt: skip
async def test_each_transition_is_allowed_only_from_its_role_up(
    client: GraphQLClient, db: Database, accounts: Accounts, action: Transition, role: Role
) -> None:
    article_id = await draft_article(db)
    await move(db, article_id, *PATH_TO[action])
    account = await accounts.create(role)
    variables = {"input": {"id": to_global_id("Article", article_id)}}
    if action in (Transition.REJECT, Transition.RETIRE):
        variables["input"]["reason"] = "Needs the exact error line"

    result = (await client(transition_document(action), variables, token=account.token)).data
    outcome = result[TRANSITION_MUTATIONS[action]]

    _, target, needed = articles.TRANSITIONS[action]
    if role.includes(needed):
        assert outcome["__typename"] == "Article"
        assert outcome["status"] == target.value.upper()
    else:
        # Without the role, drafts may not even be visible: either answer hides nothing.
        assert outcome["__typename"] in ("PermissionDeniedError", "NotFoundError")
        async with db.read() as session:
            unchanged = await articles.get(session=session, principal=SYSTEM, article_id=article_id)
        assert unchanged.status is not target or not PATH_TO[action]


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ([], Transition.APPROVE),
        ([], Transition.RETIRE),
        ([], Transition.REVISE),
        ([Transition.PUBLISH], Transition.SUBMIT),
        ([Transition.PUBLISH], Transition.PUBLISH),
        ([Transition.PUBLISH, Transition.RETIRE], Transition.APPROVE),
        ([Transition.SUBMIT], Transition.RETIRE),
    ],
)
async def test_transitions_from_the_wrong_status_are_typed_errors(
    client: GraphQLClient,
    db: Database,
    manager: Account,
    path: list[Transition],
    action: Transition,
) -> None:
    article_id = await draft_article(db)
    await move(db, article_id, *path)
    variables: dict[str, Any] = {
        "input": {"id": to_global_id("Article", article_id), "reason": "r"}
    }
    if action not in (Transition.REJECT, Transition.RETIRE):
        del variables["input"]["reason"]
    outcome = (await client(transition_document(action), variables, token=manager.token)).data[
        TRANSITION_MUTATIONS[action]
    ]
    assert outcome["__typename"] == "InvalidTransitionError"
    assert f"cannot {action.value}" in outcome["message"]


async def test_rejecting_needs_a_reason_which_the_author_then_sees(
    client: GraphQLClient, db: Database, manager: Account, responder: Account
) -> None:
    article_id = await draft_article(db)
    await move(db, article_id, Transition.SUBMIT)
    gid = to_global_id("Article", article_id)
    blank = await client(transition_document(Transition.REJECT),
                         {"input": {"id": gid, "reason": "  "}}, token=manager.token)  # fmt: skip
    assert blank.data["rejectArticle"]["__typename"] == "ValidationError"
    rejected = await client(transition_document(Transition.REJECT),
                            {"input": {"id": gid, "reason": "Add the df output"}},
                            token=manager.token)  # fmt: skip
    assert rejected.data["rejectArticle"]["status"] == "DRAFT"
    seen = (await client(ARTICLE, {"id": gid}, token=responder.token)).data["article"]
    assert seen["reviewNote"] == "Add the df output"


async def test_who_may_edit_depends_on_the_status(
    client: GraphQLClient, db: Database, manager: Account, responder: Account
) -> None:
    article_id = await draft_article(db)
    gid = to_global_id("Article", article_id)

    async def edit(token: str, version: int, title: str) -> dict[str, Any]:
        variables = {"input": {"id": gid, "expectedVersion": version, "title": title}}
        return (await client(UPDATE, variables, token=token)).data["updateArticle"]

    assert (await edit(responder.token, 1, "Draft edit"))["__typename"] == "Article"
    await move(db, article_id, Transition.PUBLISH)
    version = (await client(ARTICLE, {"id": gid})).data["article"]["version"]
    assert (await edit(responder.token, version, "Sneaky"))["__typename"] == "PermissionDeniedError"
    edited = await edit(manager.token, version, "Curated edit")
    assert (edited["title"], edited["status"]) == ("Curated edit", "PUBLISHED")
    await move(db, article_id, Transition.RETIRE)
    version = (await client(ARTICLE, {"id": gid})).data["article"]["version"]
    assert (await edit(manager.token, version, "Too late"))[
        "__typename"
    ] == "InvalidTransitionError"


async def test_every_edit_is_a_revision_and_revisions_can_be_diffed(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    article_id = await draft_article(db, body="## Resolution\n1. Delete old logs\n")
    gid = to_global_id("Article", article_id)
    edits = [("1. Delete old logs\n2. Rotate with logrotate\n", "add rotation"),
             ("1. Rotate with logrotate\n", "deleting by hand is risky")]  # fmt: skip
    for version, (body, note) in enumerate(edits, start=1):
        update = {"id": gid, "expectedVersion": version, "body": f"## Resolution\n{body}",
                  "changeNote": note}  # fmt: skip
        assert (await client(UPDATE, {"input": update}, token=responder.token)).data

    revisions = (
        await client(
            "query($id: ID!) { articleRevisions(articleId: $id) { number changeNote author { username } } }",
            {"id": gid},
            token=responder.token,
        )
    ).data["articleRevisions"]
    assert [(r["number"], r["changeNote"]) for r in revisions] == [
        (3, "deleting by hand is risky"), (2, "add rotation"), (1, "Created")]  # fmt: skip
    assert revisions[0]["author"] == {"username": "rita"}

    diff = (
        await client(
            """query($id: ID!) { articleDiff(articleId: $id, fromRevision: 1, toRevision: 3) {
                 fromRevision toRevision changes { field before after unified } } }""",
            {"id": gid},
            token=responder.token,
        )
    ).data["articleDiff"]
    assert [c["field"] for c in diff["changes"]] == ["body"]
    unified = diff["changes"][0]["unified"]
    assert "-1. Delete old logs" in unified
    assert "+1. Rotate with logrotate" in unified
    missing = await client(
        'query($id: ID!) { articleDiff(articleId: $id, fromRevision: 1, toRevision: 9) { fromRevision } }',
        {"id": gid}, token=responder.token,
    )  # fmt: skip
    assert missing.error_codes == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "input.title"),
        ({"title": "t" * 201}, "input.title"),
        ({"title": "two\nlines"}, "input.title"),
        ({"body": "b" * 100_001}, "input.body"),
        ({"summary": "s" * 1001}, "input.summary"),
        ({"tags": [f"t{i}" for i in range(21)]}, "input.tags"),
        ({"tags": ["x" * 61]}, "input.tags"),
        ({"sources": ["javascript:alert(1)"]}, "input.sources"),
        ({"sources": ["ftp://example.com/file"]}, "input.sources"),
        ({"slug": "Not A Slug"}, "input.slug"),
        ({"serviceIds": ["garbage"]}, "input.serviceIds"),
        ({"serviceIds": [to_global_id("Service", 999)]}, "input.serviceIds"),
        ({"knownErrorId": to_global_id("KnownError", 999)}, "input.knownErrorId"),
        ({"errorSignatures": ["e" * 501]}, "input.errorSignatures"),
        ({"changeNote": "n" * 501}, "input.changeNote"),
    ],
)
async def test_invalid_article_input_is_refused_and_nothing_is_stored(
    client: GraphQLClient, responder: Account, fields: dict[str, Any], field: str
) -> None:
    payload = {"title": "A valid title", **fields}
    result = (await client(CREATE, {"input": payload}, token=responder.token)).data["createArticle"]
    assert result["__typename"] in ("ValidationError", "NotFoundError")
    assert result["field"] == field
    listed = await client("{ articles(filter: {statuses: [DRAFT]}) { nodes { id } } }",
                          token=responder.token)  # fmt: skip
    assert listed.data["articles"]["nodes"] == []


async def test_hostile_text_is_kept_literally_and_rendered_inert(
    client: GraphQLClient, responder: Account
) -> None:
    hostile = "<img src=x onerror=alert(1)> '; DROP TABLE articles; --"
    created = (
        await client(CREATE, {"input": {"title": "Hostile", "body": hostile, "summary": hostile}},
                     token=responder.token)
    ).data["createArticle"]  # fmt: skip
    assert created["body"] == hostile
    assert "<img" not in created["bodyHtml"]
    assert "&lt;img" in created["bodyHtml"]


async def test_missing_input_is_a_graphql_error(client: GraphQLClient, responder: Account) -> None:
    reply = await client(CREATE, {"input": {"body": "no title"}}, token=responder.token)
    assert "title" in reply.errors[0]["message"]


async def test_a_stale_version_is_a_conflict_and_concurrent_edits_let_one_win(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    gid = to_global_id("Article", await draft_article(db))
    replies = await asyncio.gather(*(
        client(UPDATE, {"input": {"id": gid, "expectedVersion": 1, "title": f"Edit {n}"}},
               token=responder.token)
        for n in range(4)
    ))  # fmt: skip
    outcomes = [r.data["updateArticle"] for r in replies]
    winners = [o for o in outcomes if o["__typename"] == "Article"]
    assert len(winners) == 1
    assert sorted(o["__typename"] for o in outcomes if o not in winners) == ["ConflictError"] * 3
    stored = (await client(ARTICLE, {"id": gid}, token=responder.token)).data["article"]
    assert (stored["title"], stored["version"], stored["currentRevision"]) == (
        winners[0]["title"], 2, 2)  # fmt: skip


async def test_drafts_are_hidden_from_viewers(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    gid = to_global_id("Article", await draft_article(db))
    assert (await client(ARTICLE, {"id": gid})).data["article"] is None
    assert (await client(ARTICLE, {"id": gid}, token=responder.token)).data["article"]["id"] == gid
    listing = await client("{ articles(filter: {statuses: [DRAFT]}) { nodes { id } } }")
    assert listing.error_codes == ["FORBIDDEN"]


async def test_feedback_counts_votes_once_per_user_and_views_do_not_bump_the_version(
    client: GraphQLClient, db: Database, accounts: Accounts
) -> None:
    article_id = await draft_article(db)
    await move(db, article_id, Transition.PUBLISH)
    gid = to_global_id("Article", article_id)
    rate = """mutation($input: RateArticleInput!) { rateArticle(input: $input) {
                __typename ... on ArticleFeedback { helpful } ... on Error { code } } }"""
    anonymous = await client(rate, {"input": {"articleId": gid, "helpful": True}})
    assert anonymous.error_codes == ["UNAUTHENTICATED"]
    voters = [await accounts.create(Role.VIEWER) for _ in range(3)]
    for voter, helpful in zip(voters, (True, True, False), strict=True):
        await client(rate, {"input": {"articleId": gid, "helpful": helpful}}, token=voter.token)
    # The third voter changes their mind: still one vote.
    await client(rate, {"input": {"articleId": gid, "helpful": True}}, token=voters[2].token)
    view = "mutation($id: ID!) { recordArticleView(input: {id: $id}) { ... on ArticleStats { views } } }"
    for _ in range(2):
        await client(view, {"id": gid})
    article = (await client(ARTICLE, {"id": gid})).data["article"]
    assert article["stats"] == {"views": 2, "helpful": 3, "notHelpful": 0, "helpfulRatio": 1.0}
    async with db.read() as session:
        row = await articles.get(session=session, principal=SYSTEM, article_id=article_id)
    assert row.version == article["version"] == 2  # created, published; views are not edits


async def test_only_published_articles_can_be_rated(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    gid = to_global_id("Article", await draft_article(db))
    rate = """mutation($id: ID!) { rateArticle(input: {articleId: $id, helpful: true}) {
                __typename } }"""
    result = (await client(rate, {"id": gid}, token=responder.token)).data["rateArticle"]
    assert result["__typename"] == "InvalidTransitionError"


async def test_lists_filter_order_and_page_with_cursors(
    client: GraphQLClient, db: Database
) -> None:
    titles = ["Charlie", "alpha", "Bravo", "delta", "Echo"]
    for title in titles:
        article_id = await draft_article(
            db, title=title, tags=["paging"] if title != "Echo" else []
        )
        await move(db, article_id, Transition.PUBLISH)
    query = """query($after: String) {
      articles(filter: {tag: "paging"}, orderBy: {field: TITLE}, first: 2, after: $after) {
        nodes { title } pageInfo { hasNextPage endCursor } } }"""
    seen, after = [], None
    while True:
        page = (await client(query, {"after": after})).data["articles"]
        seen += [n["title"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(["Charlie", "alpha", "Bravo", "delta"])
    bad = await client(query, {"after": "bm9wZQ"})
    assert bad.error_codes == ["BAD_USER_INPUT"]


async def test_retired_articles_stay_readable_by_id(client: GraphQLClient, db: Database) -> None:
    article_id = await draft_article(db)
    await move(db, article_id, Transition.PUBLISH, Transition.RETIRE)
    article = (await client(ARTICLE, {"id": to_global_id("Article", article_id)})).data["article"]
    assert article["status"] == ArticleStatus.RETIRED.value.upper()


async def test_a_body_keeps_its_leading_indentation(
    client: GraphQLClient, responder: Account
) -> None:
    body = "    $ kubectl get pods\n    NAME   READY\n\nThen restart."
    created = await client(
        CREATE, {"input": {"title": "Indented", "body": body}}, token=responder.token
    )
    assert created.data["createArticle"]["body"] == body
    assert "<pre><code>$ kubectl get pods" in created.data["createArticle"]["bodyHtml"]


async def test_concurrent_votes_by_one_user_count_once(
    client: GraphQLClient, db: Database, accounts: Accounts
) -> None:
    article_id = await draft_article(db)
    await move(db, article_id, Transition.PUBLISH)
    gid = to_global_id("Article", article_id)
    voter = await accounts.create(Role.VIEWER)
    rate = (
        "mutation($id: ID!) { rateArticle(input: {articleId: $id, helpful: true}) { __typename } }"
    )
    await asyncio.gather(*(client(rate, {"id": gid}, token=voter.token) for _ in range(4)))
    stats = (await client(ARTICLE, {"id": gid})).data["article"]["stats"]
    assert stats["helpful"] == 1


async def test_a_revision_diff_shows_tag_and_category_changes_too(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    gid = to_global_id("Article", await draft_article(db, tags=["disk"], category="storage"))
    update = {"id": gid, "expectedVersion": 1, "tags": ["disk", "inodes"], "category": "linux"}
    assert (await client(UPDATE, {"input": update}, token=responder.token)).data
    diff = (
        await client(
            "query($id: ID!) { articleDiff(articleId: $id, fromRevision: 1, toRevision: 2) { changes { field before after } } }",
            {"id": gid},
            token=responder.token,
        )
    ).data["articleDiff"]["changes"]
    assert {c["field"]: (c["before"], c["after"]) for c in diff} == {
        "category": ("storage", "linux"),
        "tags": ("disk", "disk\ninodes"),
    }
