"""``knownfix suggest``, run in-process against the test database, as a script would.

The draft comes from options or standard input; the answer is a table for people
or one JSON object for scripts, from the same suggestion service as the API.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from api.cli_agents import TOKEN_VARIABLE
from api.relay import to_global_id
from knowledge.config import Settings
from knowledge.db import Database
from tests.api.test_cli import knownfix
from tests.api.test_cli_agents import World, build_world
from tests.support import Accounts

TITLE = "Deploys fail: disk quota exceeded"


@pytest.fixture
async def knowledge(
    db: Database, settings: Settings, accounts: Accounts, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> World:  # fmt: skip
    """As for ``search`` and ``incident show``: an article and a known error about disk
    quotas, and an incident on the service ``files`` that the article resolved."""
    return await build_world(db, settings, accounts, monkeypatch, tmp_path)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


async def suggest_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert await knownfix("suggest", *argv, "--json") == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


async def test_json_has_ranked_suggestions_with_signals_and_evidence(
    knowledge: World, capsys: pytest.CaptureFixture[str]
) -> None:
    found = await suggest_json(
        capsys, "--title", TITLE, "--description", "EDQUOT when agents write caches",
        "--service", "files",
    )  # fmt: skip

    assert found["draft"] == {"title": TITLE, "service": "files", "category": None}
    best = found["suggestions"][0]
    assert (best["rank"], best["kind"], best["ref"], best["status"]) == (
        1, "article", "disk-quota-exceeded", "published",
    )  # fmt: skip
    assert best["id"] == to_global_id("Article", knowledge.fix_id)
    assert 0 < best["score"] <= 1
    assert {"text", "signature", "service", "category", "history", "success"} <= {
        s["name"] for s in best["signals"]
    }
    for signal in best["signals"]:
        assert signal["contribution"] == pytest.approx(signal["value"] * signal["weight"], abs=1e-3)
    strongest = max(best["signals"], key=lambda s: s["contribution"])
    assert best["explanation"].startswith(f"{strongest['name']} +{strongest['contribution']:.2f}")
    assert [e["ref"] for e in best["evidence"]] == [knowledge.incident_number]
    assert "quota" in best["matched_terms"]
    kinds = {s["kind"] for s in found["suggestions"]}
    assert kinds == {"article", "known_error"}, "incidents are evidence, not suggestions"


async def test_a_table_for_people_with_the_reasons(
    knowledge: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("suggest", "--title", TITLE, "--first", "1") == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0] == f"1 suggestions for {TITLE!r}, best first"
    assert lines[1].split() == ["#", "SCORE", "KIND", "REF", "TITLE"]
    assert lines[2].split()[:4] == ["1", lines[2].split()[1], "article", "disk-quota-exceeded"]
    assert lines[3:5] == ["", "Why:"]
    assert lines[5].startswith("  1. title +"), "the strongest signal first"
    assert lines[6].startswith(f"     resolved before: {knowledge.incident_number} (")
    assert lines[6].endswith(" alike)")


async def test_nothing_to_suggest_is_said_politely(
    knowledge: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("suggest", "--title", "zebra giraffe") == 0
    assert capsys.readouterr().out.strip() == "No suggestions for 'zebra giraffe'."


async def test_the_title_and_description_can_come_from_standard_input(
    knowledge: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, f"\n{TITLE}\nEDQUOT when agents write caches\nsecond line\n")
    found = await suggest_json(capsys)
    assert found["draft"]["title"] == TITLE
    assert found["suggestions"][0]["ref"] == "disk-quota-exceeded"


async def test_description_dash_reads_standard_input(
    knowledge: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "Writes fail with EDQUOT on the shared volume\n")
    found = await suggest_json(capsys, "--title", "Builds broken", "--description", "-")
    assert found["draft"]["title"] == "Builds broken"
    assert found["suggestions"][0]["ref"] == "disk-quota-exceeded"


async def test_without_a_title_or_piped_input_it_is_a_usage_error(
    knowledge: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal())
    with pytest.raises(SystemExit) as exited:
        await knownfix("suggest")
    assert exited.value.code == 2
    assert "give --title, or pipe the title" in capsys.readouterr().err


async def test_a_description_from_both_places_is_a_usage_error(
    knowledge: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "A title\nand a description\n")
    with pytest.raises(SystemExit) as exited:
        await knownfix("suggest", "--description", "another")
    assert exited.value.code == 2
    assert "--description or stdin, not both" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--title", "disk", "--service", "nope"], "knownfix: no service 'nope'"),
        (["--title", "two\nlines"], "knownfix: title must be a single line"),
        (["--title", " "], "knownfix: write a title, a description or an error first"),
    ],
)
async def test_what_cannot_be_suggested_for_fails_with_a_reason(
    knowledge: World, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert await knownfix("suggest", *argv) == 1
    assert capsys.readouterr().err.strip() == message


@pytest.mark.parametrize("first", ["0", "21", "five"])
async def test_first_is_one_to_twenty(capsys: pytest.CaptureFixture[str], first: str) -> None:
    with pytest.raises(SystemExit) as exited:
        await knownfix("suggest", "--title", "x", "--first", first)
    assert exited.value.code == 2
    assert "expected a number from 1 to 20" in capsys.readouterr().err


async def test_it_acts_as_the_token_holder(
    knowledge: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "kfx_" + "A" * 43)
    assert await knownfix("suggest", "--title", TITLE) == 2
    assert capsys.readouterr().err.startswith(f"knownfix: configuration error: {TOKEN_VARIABLE}: ")
    monkeypatch.setenv(TOKEN_VARIABLE, knowledge.responder.token)
    assert (await suggest_json(capsys, "--title", TITLE))["suggestions"]


async def test_an_index_dir_flag_and_a_database_flag_are_honoured(
    knowledge: World, db: Database, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("KNOWNFIX_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    index = tmp_path / "other-index"
    found = await suggest_json(
        capsys, "--title", TITLE, "--database-url", db.url, "--index-dir", str(index)
    )
    assert found["suggestions"][0]["ref"] == "disk-quota-exceeded"
    assert index.exists()
