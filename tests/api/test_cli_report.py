"""``knownfix report``, run in-process as a knowledge manager's script would: the same
figures as GraphQL's ``knowledgeReport``, as one JSON object or as text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.cli_agents import TOKEN_VARIABLE
from api.relay import to_global_id
from knowledge.accounts.roles import Role
from knowledge.db import Database
from knowledge.incidents.models import LinkRelation
from tests.api.test_cli import knownfix
from tests.knowledge.test_reports import OLD, POOL_ERROR, Seed, feb
from tests.support import Accounts

WINDOW = ["--from", "2026-02-01T00:00:00+00:00", "--to", "2026-03-01T00:00:00+00:00"]
HOUR = 3600.0


@pytest.fixture
async def world(
    db: Database, accounts: Accounts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    """Two uncovered incidents with one signature, an article that resolved a third,
    and a forgotten article; the command runs as a knowledge manager."""
    monkeypatch.setenv("KNOWNFIX_DATABASE_URL", db.url)
    monkeypatch.setenv("KNOWNFIX_INDEX_DIR", str(tmp_path / "cli-index"))
    manager = await accounts.create(Role.KNOWLEDGE_MANAGER, "kim")
    monkeypatch.setenv(TOKEN_VARIABLE, manager.token)
    seed = Seed(db)
    pay = await seed.service("pay")
    pool = [
        await seed.incident(
            f"Pool outage {n}",
            hours=n + 1,
            service_id=pay,
            error_text=POOL_ERROR.format("u", n),
            notes="Restart" * (n + 1),
        )
        for n in range(2)
    ]
    fix = await seed.article("Pool fix")
    await seed.link(await seed.incident("Covered", hours=0.5), fix, LinkRelation.RESOLVED_BY,
                    feb(15))  # fmt: skip
    await seed.article("Forgotten runbook", published_at=OLD)
    return {"pool": pool, "fix": fix}


async def test_json_holds_every_section(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("report", *WINDOW, "--json") == 0, capsys.readouterr().err
    view = json.loads(capsys.readouterr().out)

    assert view["window"] == {"start": "2026-02-01T00:00:00+00:00",
                              "end": "2026-03-01T00:00:00+00:00"}  # fmt: skip
    gaps = view["knowledge_gaps"]
    assert (gaps["total_gaps"], gaps["uncovered_incidents"]) == (1, 2)
    [gap] = gaps["gaps"]
    assert (gap["count"], gap["downtime_seconds"], gap["service"]) == (2, 3 * HOUR, "pay")
    assert gap["reason"] == "same error signature"
    capture = gap["capture_knowledge"]
    assert capture["mutation"] == "captureKnowledge"
    assert capture["incident"]["id"] == to_global_id("Incident", world["pool"][1].id)
    assert capture["incident"]["ref"] == world["pool"][1].reference
    assert [a["ref"] for a in view["stale_articles"]["articles"]] == ["forgotten-runbook"]
    assert [(t["ref"], t["incidents_resolved"]) for t in view["top_articles"]] == [("pool-fix", 1)]
    assert (view["poor_performers"], view["possible_duplicates"]) == ([], [])


async def test_text_for_people(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert await knownfix("report", *WINDOW, "--first", "5") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Knowledge gaps: 1 (2 uncovered incidents)" in out
    gap_row = next(line for line in out.splitlines() if line.startswith("2 "))
    assert world["pool"][1].reference in gap_row
    assert "3.0 h" in gap_row
    assert "Stale articles (idle 90 days or more): 1" in out
    assert "Top articles: 1" in out


@pytest.mark.parametrize("role", [None, Role.RESPONDER])
async def test_only_knowledge_managers_may_run_it(
    world: dict[str, Any], accounts: Accounts, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], role: Role | None,
) -> None:  # fmt: skip
    if role is None:
        monkeypatch.delenv(TOKEN_VARIABLE)
    else:
        monkeypatch.setenv(TOKEN_VARIABLE, (await accounts.create(role)).token)
    assert await knownfix("report", *WINDOW, "--json") == 1
    captured = capsys.readouterr()
    assert "knowledge_manager role" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--days", "0"],
        ["--days", "367"],
        ["--days", "many"],
        ["--first", "101"],
        ["--first", "-1"],
        ["--from", "yesterday"],
    ],
)
async def test_bad_options_are_usage_errors(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        await knownfix("report", *argv)
    assert exited.value.code == 2
    assert "usage: knownfix report" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "2026-03-01T00:00:00+00:00", "--to", "2026-02-01T00:00:00+00:00"],
         "ends before it starts"),
        (["--from", "2026-02-01T00:00:00", "--to", "2026-03-01T00:00:00+00:00"],
         "needs a UTC offset"),
        ([*WINDOW, "--stale-after-days", "0"], "staleAfterDays is 1 to 3650"),
    ],
)  # fmt: skip
async def test_bad_windows_fail_with_the_reason(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert await knownfix("report", *argv) == 1
    assert message in capsys.readouterr().err
