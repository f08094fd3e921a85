"""Search through GraphQL against our own fixture articles (the index is real)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.catalog import service as catalog
from knowledge.db import Database
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.service import KnownErrorDraft
from tests.support import Accounts, GraphQLClient

SEARCH = """
query($q: String!, $types: [SearchType!], $filter: SearchFilter, $first: Int, $after: String) {
  search(query: $q, types: $types, filter: $filter, first: $first, after: $after) {
    totalCount didYouMean readAsPlainText
    pageInfo { hasNextPage endCursor }
    facets { category { value count } service { value count } tags { value count } }
    edges { cursor node {
      __typename
      ... on SearchHit { score matchedTerms highlights { field fragments } }
      ... on ArticleHit { article { slug status } }
      ... on KnownErrorHit { knownError { key } }
    } }
  }
}
"""

FIXTURES: list[dict[str, Any]] = [
    {"slug": "disk-quota-exceeded", "title": "Disk quota exceeded on shared volumes",
     "category": "storage", "tags": ["disk", "quota"], "services": ["files"],
     "body": "## Symptoms\nWrites fail with EDQUOT.\n## Resolution\nRaise the quota."},
    {"slug": "log-rotation", "title": "Rotating application logs",
     "category": "storage", "tags": ["logs"], "services": ["files"],
     "body": "## Resolution\nOld logs can fill the disk quota of a volume; rotate them daily."},
    {"slug": "certificate-expired", "title": "TLS certificate expired",
     "category": "tls", "tags": ["tls", "certificates"], "services": ["edge"],
     "body": "## Symptoms\nBrowsers show <script>NET::ERR_CERT_DATE_INVALID</script>.\n"
             "## Resolution\nRenew the certificate and reload the proxy."},
    {"slug": "dns-timeouts", "title": "DNS lookups time out under load",
     "category": "networking", "tags": ["dns"], "services": ["edge"],
     "body": "## Cause\nconntrack table full.\n## Resolution\nRaise nf_conntrack_max."},
    {"slug": "retired-quota-guide", "title": "Disk quota exceeded (old guide)",
     "category": "storage", "tags": ["disk"], "services": ["files"], "retire": True,
     "body": "Superseded."},
    {"slug": "draft-quota-notes", "title": "Disk quota exceeded draft notes",
     "category": "storage", "tags": ["disk"], "services": ["files"], "draft": True,
     "body": "Work in progress."},
]  # fmt: skip


async def seed(db: Database) -> None:
    async with db.transaction() as session:
        services = {
            slug: (await catalog.create(session=session, principal=SYSTEM, slug=slug, name=slug)).id
            for slug in ("files", "edge")
        }
        for item in FIXTURES:
            article = await articles.create(
                session=session,
                principal=SYSTEM,
                slug=item["slug"],
                draft=ArticleDraft(
                    title=item["title"],
                    body=item["body"],
                    category=item["category"],
                    tags=item["tags"],
                    service_ids=[services[s] for s in item["services"]],
                ),
            )
            if item.get("draft"):
                continue
            for action in [Transition.PUBLISH] + (
                [Transition.RETIRE] if item.get("retire") else []
            ):
                await articles.transition(
                    session=session, principal=SYSTEM, article_id=article.id, action=action
                )
        await known_errors.create(
            session=session,
            principal=SYSTEM,
            draft=KnownErrorDraft(
                title="Proxy serves an expired certificate after renewal",
                symptoms="Clients still see the old certificate",
                workaround="Reload the proxy",
                category="tls",
            ),
        )


@pytest.fixture
async def indexed(db: Database, app: Starlette) -> Database:
    await seed(db)
    await app.state.indexer.catch_up()
    return db


async def search(client: GraphQLClient, q: str, token: str | None = None, **variables: Any) -> Any:
    return (await client(SEARCH, {"q": q, **variables}, token=token)).data["search"]


def slugs(result: Any) -> list[str]:
    return [e["node"]["article"]["slug"] for e in result["edges"] if "article" in e["node"]]


async def test_a_title_match_outranks_a_body_mention(
    client: GraphQLClient, indexed: Database
) -> None:
    result = await search(client, "disk quota")
    assert slugs(result)[:2] == ["disk-quota-exceeded", "log-rotation"]


async def test_retired_and_draft_articles_are_not_found_by_default(
    client: GraphQLClient, indexed: Database
) -> None:
    found = slugs(await search(client, "disk quota exceeded", first=50))
    assert "retired-quota-guide" not in found
    assert "draft-quota-notes" not in found


async def test_knowledge_managers_may_search_drafts_others_may_not(
    client: GraphQLClient, indexed: Database, accounts: Accounts
) -> None:
    manager = await accounts.create(Role.KNOWLEDGE_MANAGER)
    drafts = await search(client, "quota", manager.token, filter={"status": ["draft"]})
    assert slugs(drafts) == ["draft-quota-notes"]
    responder = await accounts.create(Role.RESPONDER)
    refused = await client(SEARCH, {"q": "quota", "filter": {"status": ["draft"]}},
                           token=responder.token)  # fmt: skip
    assert refused.error_codes == ["FORBIDDEN"]


async def test_hits_are_highlighted_with_escaped_text(
    client: GraphQLClient, indexed: Database
) -> None:
    result = await search(client, "certificate browsers", types=["ARTICLE"])
    hit = result["edges"][0]["node"]
    assert hit["article"]["slug"] == "certificate-expired"
    fragments = {h["field"]: h["fragments"] for h in hit["highlights"]}
    assert any("<mark" in f for f in fragments["title"])
    symptoms = " ".join(fragments["symptoms"])
    assert "&lt;script&gt;" in symptoms
    assert "<script>" not in symptoms
    assert "certif" in " ".join(hit["matchedTerms"])


async def test_facets_count_every_match_not_just_the_page(
    client: GraphQLClient, indexed: Database
) -> None:
    result = await search(client, "disk quota certificate dns", first=1)
    assert len(result["edges"]) == 1
    assert result["totalCount"] == 5
    facets = result["facets"]
    assert {f["value"]: f["count"] for f in facets["category"]} == {
        "storage": 2, "tls": 2, "networking": 1}  # fmt: skip
    assert {f["value"]: f["count"] for f in facets["service"]} == {"files": 2, "edge": 2}
    assert {"value": "disk", "count": 1} in facets["tags"]


async def test_filters_narrow_by_type_category_service_and_tags(
    client: GraphQLClient, indexed: Database
) -> None:
    only_known_errors = await search(client, "certificate", types=["KNOWN_ERROR"])
    assert [e["node"]["__typename"] for e in only_known_errors["edges"]] == ["KnownErrorHit"]
    assert only_known_errors["edges"][0]["node"]["knownError"]["key"] == "KE-0001"
    storage = await search(client, "", filter={"category": "storage"})
    assert sorted(slugs(storage)) == ["disk-quota-exceeded", "log-rotation"]
    tagged = await search(client, "", filter={"service": "files", "tags": ["quota"]})
    assert slugs(tagged) == ["disk-quota-exceeded"]


async def test_phrases_match_adjacent_words_only(client: GraphQLClient, indexed: Database) -> None:
    assert slugs(await search(client, '"quota exceeded"')) == ["disk-quota-exceeded"]
    assert "log-rotation" in slugs(await search(client, "quota exceeded"))


async def test_typos_are_forgiven_with_a_did_you_mean(
    client: GraphQLClient, indexed: Database
) -> None:
    result = await search(client, "certifcate expird", types=["ARTICLE"])
    assert result["didYouMean"] == "certificate expired"
    assert slugs(result)[0] == "certificate-expired"
    fuzzy = await search(client, "certifcate~", types=["ARTICLE"])
    assert "certificate-expired" in slugs(fuzzy)


@pytest.mark.parametrize(
    "query",
    ['"unbalanced quote', "(open paren", "close)", "*", "?", "title:", "field:value", ":::",
     "AND", "OR OR", "NOT", "-", "+", "~", "^2", "[a TO", "{x", "\\", "' OR 1=1 --",
     "\x00", "💥", "a" * 999, "disk AND (quota OR", "quota~99", "*quota*"],
)  # fmt: skip
async def test_hostile_query_strings_never_fail(
    client: GraphQLClient, indexed: Database, query: str
) -> None:
    reply = await client(SEARCH, {"q": query})
    data = reply.data["search"]
    assert data["totalCount"] >= 0
    assert all(e["node"]["__typename"].endswith("Hit") for e in data["edges"])


async def test_invalid_syntax_is_searched_as_plain_words(
    client: GraphQLClient, indexed: Database
) -> None:
    result = await search(client, '"disk quota')
    assert result["readAsPlainText"] is True
    assert slugs(result)[0] == "disk-quota-exceeded"


async def test_results_page_with_cursors(client: GraphQLClient, indexed: Database) -> None:
    first = await search(client, "disk quota certificate dns", types=["ARTICLE"], first=2)
    rest = await search(client, "disk quota certificate dns", types=["ARTICLE"], first=10,
                        after=first["pageInfo"]["endCursor"])  # fmt: skip
    assert first["pageInfo"]["hasNextPage"] is True
    assert len(slugs(first)) == 2
    assert set(slugs(first)).isdisjoint(slugs(rest))
    assert len(slugs(first) + slugs(rest)) == 4


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [({"q": "x" * 1001}, "at most 1000"), ({"q": "x", "first": 101}, "at most 100"),
     ({"q": "x", "after": "not-a-cursor"}, "not a cursor")],
)  # fmt: skip
async def test_bad_search_arguments_are_clear_errors(
    client: GraphQLClient, indexed: Database, variables: dict[str, Any], complaint: str
) -> None:
    reply = await client(SEARCH, variables)
    assert reply.error_codes == ["BAD_USER_INPUT"]
    assert complaint in reply.errors[0]["message"]


async def test_a_new_article_becomes_searchable_once_published(
    client: GraphQLClient, indexed: Database, app: Starlette, accounts: Accounts
) -> None:
    manager = await accounts.create(Role.KNOWLEDGE_MANAGER)
    created = await client(
        """mutation { createArticle(input: {title: "Zookeeper session expired", body: "x"}) {
             ... on Article { id } } }""",
        token=manager.token,
    )
    article_id = created.data["createArticle"]["id"]
    await app.state.indexer.catch_up()
    assert slugs(await search(client, "zookeeper")) == []
    await client("mutation($id: ID!) { publishArticle(input: {id: $id}) { __typename } }",
                 {"id": article_id}, token=manager.token)  # fmt: skip
    await app.state.indexer.catch_up()
    assert slugs(await search(client, "zookeeper")) == ["zookeeper-session-expired"]


async def test_a_search_that_asks_for_no_facets_still_answers(
    client: GraphQLClient, indexed: Database
) -> None:
    reply = await client('{ search(query: "disk quota") { totalCount edges { cursor } } }')
    assert reply.data["search"]["totalCount"] >= 2
