"""The number of SQL statements per request does not grow with the page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from starlette.applications import Starlette

from knowledge.accounts import service as accounts
from knowledge.accounts.principal import SYSTEM
from knowledge.catalog import service as catalog
from knowledge.db import Database
from tests.support import GraphQLClient

NESTED = """
query($first: Int) {
  services(first: $first) {
    nodes { slug ownerTeam { slug members { username teams { slug } } services { slug } } }
  }
  users(first: $first) { nodes { username teams { slug members { username } } } }
}
"""


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def seed(db: Database, teams: int, per_team: int) -> None:
    async with db.transaction() as session:
        for t in range(teams):
            team = await accounts.create_team(
                session=session, principal=SYSTEM, slug=f"team-{t}", name=f"Team {t}"
            )
            for u in range(per_team):
                await accounts.create_user(
                    session=session, principal=SYSTEM, username=f"u-{t}-{u}", team_ids=[team.id]
                )
            await catalog.create(
                session=session,
                principal=SYSTEM,
                slug=f"service-{t}",
                name=f"Service {t}",
                owner_team_id=team.id,
            )


async def test_nested_lists_cost_the_same_number_of_statements_at_any_page_size(
    client: GraphQLClient, db: Database, app: Starlette
) -> None:
    await seed(db, teams=12, per_team=3)
    counts = {}
    for first in (2, 12):
        # The indexer and event dispatcher share the engine; keep their queries out.
        async with app.state.indexer.paused(), app.state.events.paused():
            with counting_statements(db) as statements:
                data = (await client(NESTED, {"first": first})).data
        assert len(data["services"]["nodes"]) == first
        assert len(data["users"]["nodes"]) == first
        counts[first] = len(statements)
    assert counts[2] == counts[12], counts
    # services, users, then one batch per relation: owner teams, members, teams of
    # members, services of teams, teams of users, members of those teams.
    assert counts[12] <= 7, counts


async def test_the_guard_itself_sees_queries(db: Database) -> None:
    with counting_statements(db) as statements:
        async with db.read() as session:
            await session.execute(sa.text("SELECT 1"))
    assert len(statements) == 1
