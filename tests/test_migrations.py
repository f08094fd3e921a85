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
