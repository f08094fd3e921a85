"""Migrations are tested, not trusted: a fresh database upgraded to head matches the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from knowledge import migrate
from knowledge.db import Database
from knowledge.models import metadata
from tests.conftest import DatabaseFactory


def test_there_is_a_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


async def test_upgrade_matches_the_models_and_downgrade_undoes_it(
    database_factory: DatabaseFactory,
) -> None:
    db = Database(await database_factory.create())
    try:
        assert await migrate.current_revision(db.engine) is None

        await migrate.upgrade(db.engine)
        assert await migrate.is_at_head(db.engine)
        assert await migrate.schema_differences(db.engine) == []
        async with db.engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert set(metadata.tables) <= tables

        await migrate.downgrade(db.engine, "base")
        async with db.engine.connect() as connection:
            left = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert left <= {"alembic_version"}

        await migrate.upgrade(db.engine)
        assert await migrate.schema_differences(db.engine) == []
    finally:
        await db.dispose()


async def test_a_model_change_without_a_migration_is_detected(
    database_factory: DatabaseFactory,
) -> None:
    db = Database(await database_factory.create())
    changed = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["teams"].append_column(sa.Column("nickname", sa.String(40)))
    try:
        await migrate.upgrade(db.engine)
        differences = await migrate.schema_differences(db.engine, changed)
        assert [d[0] for d in differences] == ["add_column"]
        assert differences[0][3].name == "nickname"
    finally:
        await db.dispose()


async def test_0003_keeps_every_article_row_and_finds_who_submitted_articles_in_review(
    database_factory: DatabaseFactory,
) -> None:
    """The articles table is rebuilt on SQLite: nothing that cascades from it may go."""
    table = sa.table
    column = sa.column
    users = table("users", column("id"), column("username"), column("display_name"),
                  column("role"))  # fmt: skip
    articles = table("articles", column("id"), column("slug"), column("title"), column("kind"),
                     column("status"), column("error_signatures", sa.JSON),
                     column("sources", sa.JSON), column("submitted_at", sa.DateTime(True)),
                     column("submitted_by_id"))  # fmt: skip
    tags = table("article_tags", column("article_id"), column("tag"))
    outbox = table("outbox", column("entity_type"), column("entity_id"), column("op"),
                   column("payload", sa.JSON))  # fmt: skip
    db = Database(await database_factory.create())
    try:
        await migrate.upgrade(db.engine, "0002")
        async with db.engine.begin() as connection:
            await connection.execute(sa.insert(users), [
                {"id": 1, "username": "rita", "display_name": "Rita", "role": "responder"},
                {"id": 2, "username": "sam", "display_name": "Sam", "role": "responder"},
            ])  # fmt: skip
            await connection.execute(sa.insert(articles), [
                {"id": n, "slug": f"a{n}", "title": f"A{n}", "kind": "faq", "status": status,
                 "error_signatures": [], "sources": [], "submitted_at": None}
                for n, status in ((1, "in_review"), (2, "in_review"), (3, "draft"))
            ])  # fmt: skip
            await connection.execute(sa.insert(tags), [{"article_id": 1, "tag": "disk"}])
            submissions = [(1, "sam"), (1, "rita"), (2, "system"), (3, "rita")]
            await connection.execute(sa.insert(outbox), [
                {"entity_type": "article", "entity_id": article_id, "op": "upsert",
                 "payload": {"transition": "submit", "actor": actor}}
                for article_id, actor in submissions
            ])  # fmt: skip

        await migrate.upgrade(db.engine)

        async with db.engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(
                        articles.c.id, articles.c.submitted_by_id, articles.c.submitted_at
                    ).order_by(articles.c.id)
                )
            ).all()
            kept = await connection.scalar(sa.select(sa.func.count()).select_from(tags))
        # the latest submission wins; the system is nobody; drafts are left alone
        assert [(r[0], r[1]) for r in rows] == [(1, 1), (2, None), (3, None)]
        assert [r[2] is not None for r in rows] == [True, True, False]
        assert kept == 1

        await migrate.downgrade(db.engine, "0002")
        async with db.engine.connect() as connection:
            assert await connection.scalar(sa.select(sa.func.count()).select_from(tags)) == 1
    finally:
        await db.dispose()
