"""The private PostgreSQL cluster helper: a test that cannot have one is skipped on
SQLite, but fails the PostgreSQL run, which exists partly to run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import postgres


@pytest.fixture
def no_postgresql_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    def nowhere() -> Path | None:
        return None

    monkeypatch.setattr(postgres, "_bin_dir", nowhere)


async def test_without_postgresql_programs_the_sqlite_run_skips(
    no_postgresql_programs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KNOWNFIX_TEST_DATABASE_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="initdb and pg_ctl"):
        async with postgres.private_cluster():
            pass


async def test_without_postgresql_programs_the_postgresql_run_fails(
    no_postgresql_programs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWNFIX_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@db/test")
    with pytest.raises(pytest.fail.Exception, match=r"initdb and pg_ctl.*must run this test"):
        async with postgres.private_cluster():
            pass
