"""The ``knownfix`` command, run in-process against the database under test."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from api.cli import main
from knowledge.config import Settings
from knowledge.db import Database
from knowledge.semantic import encoder as semantic_encoder
from tests.conftest import DatabaseFactory
from tests.support import GraphQLClient


async def knownfix(*argv: str) -> int:
    """Run the CLI in a thread: it starts its own event loop, as it does in a shell."""
    return await asyncio.to_thread(main, list(argv))


async def test_db_upgrade_brings_a_fresh_database_to_head(
    database_factory: DatabaseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await database_factory.create()
    assert await knownfix("db", "current", "--database-url", url) == 1
    assert "(empty) (behind" in capsys.readouterr().out
    assert await knownfix("db", "upgrade", "--database-url", url) == 0
    assert await knownfix("db", "upgrade", "--database-url", url) == 0, "upgrading twice is safe"
    assert await knownfix("db", "current", "--database-url", url) == 0
    assert "up to date" in capsys.readouterr().out.splitlines()[-1]


async def test_token_create_prints_a_token_that_works(
    db: Database, client: GraphQLClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await knownfix(
            "token", "create", "--user", "ops", "--role", "responder", "--database-url", db.url
        )
        == 0
    )
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert "created user ops" in captured.err
    me = (await client("{ me { role user { username } } }", token=token)).data["me"]
    assert me == {"role": "RESPONDER", "user": {"username": "ops"}}


async def test_token_create_does_not_silently_promote(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["token", "create", "--user", "pat", "--database-url", db.url]
    assert await knownfix(*base, "--role", "viewer") == 0
    assert await knownfix(*base, "--role", "admin") == 1
    assert "pass --promote" in capsys.readouterr().err
    assert await knownfix(*base, "--role", "admin", "--promote") == 0
    assert "promoted pat to admin" in capsys.readouterr().err


async def test_token_create_rejects_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        await knownfix("token", "create", "--user", "x", "--role", "wizard")
    assert exited.value.code == 2
    assert "invalid choice: 'wizard'" in capsys.readouterr().err


async def test_demo_load_is_idempotent(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert await knownfix("demo", "load", "--database-url", db.url) == 0
    first = capsys.readouterr().out
    assert first.startswith("added 42 articles, 12 known errors, 8 incidents")
    assert await knownfix("demo", "load", "--database-url", db.url) == 0
    assert "nothing added" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KNOWNFIX_ENV", "staging"),
        ("KNOWNFIX_PORT", "http"),
        ("KNOWNFIX_DATABASE_URL", "oracle://x"),
    ],
)
async def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert await knownfix("db", "current") == 2
    error = capsys.readouterr().err
    assert error.startswith(f"knownfix: configuration error: {variable}: ")


async def test_a_bad_database_url_flag_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert await knownfix("db", "current", "--database-url", "nonsense") == 2
    assert "--database-url: not a database URL" in capsys.readouterr().err


async def test_an_unreachable_database_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql+asyncpg://knownfix@127.0.0.1:1/nowhere"
    assert await knownfix("db", "current", "--database-url", url) == 1
    error = capsys.readouterr().err
    assert error.startswith("knownfix: cannot reach the database")
    assert len(error.strip().splitlines()) == 1


def test_settings_default_is_the_embedded_database() -> None:
    assert Settings().database_url.startswith("sqlite+aiosqlite:///./var/")


@pytest.mark.parametrize("workers", ["0", "-1", "65", "99999999999999999999"])
async def test_serve_refuses_a_worker_count_out_of_range(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, workers: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'knownfix.db'}"
    assert await knownfix("serve", "--workers", workers, "--database-url", url) == 2
    error = capsys.readouterr().err
    assert error.startswith("knownfix: configuration error: --workers: expected a number between")
    assert not (tmp_path / "var").exists(), "refused before touching anything"


def damaged_model_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package whose model weights are cut short, found where Python finds packages."""
    model = semantic_encoder.installed_model()
    assert model is not None
    damaged = tmp_path / "damaged_model_package"
    shutil.copytree(model, damaged / "model", ignore=shutil.ignore_patterns("model.safetensors"))
    (damaged / "__init__.py").write_text("")
    (damaged / "model" / "model.safetensors").write_bytes(
        (model / "model.safetensors").read_bytes()[:4096]
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return damaged.name


@pytest.mark.parametrize("command", ["serve", "indexer"])
@pytest.mark.parametrize(("model", "message"), [
    ("missing", "the sentence model is not installed: pip install"),
    ("damaged", "cannot load the sentence model in "),
])  # fmt: skip
async def test_serve_and_the_index_writer_refuse_to_start_without_a_usable_sentence_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    command: str, model: str, message: str,
) -> None:  # fmt: skip
    package = (
        damaged_model_package(tmp_path, monkeypatch) if model == "damaged"
        else "no_such_model_package"
    )  # fmt: skip
    monkeypatch.setattr(semantic_encoder, "MODEL_PACKAGE", package)
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'knownfix.db'}"
    assert await knownfix(command, "--database-url", url) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"knownfix: {message}")
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "var").exists(), "refused before touching anything"


@pytest.mark.parametrize("workers", ["two", "2.5", ""])
async def test_serve_refuses_a_worker_count_that_is_not_a_number(
    capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        await knownfix("serve", "--workers", workers)
    assert exited.value.code == 2
    assert "--workers: invalid int value" in capsys.readouterr().err
