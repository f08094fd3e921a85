"""Liveness and readiness probes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from api.app import create_app
from knowledge.config import Settings
from knowledge.db import Database
from tests.conftest import http_client


@asynccontextmanager
async def probe(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app), http_client(app) as http:
        yield http


async def test_healthz_says_the_process_is_up(db: Database, settings: Settings) -> None:
    async with probe(db, settings) as http:
        reply = await http.get("/healthz")
    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})


async def test_readyz_checks_the_database_and_its_schema(db: Database, settings: Settings) -> None:
    async with probe(db, settings) as http:
        reply = await http.get("/readyz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ready",
        "checks": {"index": "ok", "database": "ok", "migrations": "ok"},
        "process": {"pid": os.getpid(), "indexWriter": True},
    }


async def test_readyz_fails_clearly_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://knownfix@127.0.0.1:1/unreachable"
    db = Database(url)
    try:
        async with probe(db, Settings(database_url=url, index_dir=tmp_path)) as http:
            reply = await http.get("/readyz")
            health = await http.get("/healthz")
    finally:
        await db.dispose()
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unreachable: ")
    assert health.status_code == 200, "liveness must not depend on the database"


async def test_readyz_fails_when_migrations_are_not_applied(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    db = Database(url)
    try:
        async with probe(db, Settings(database_url=url, index_dir=tmp_path)) as http:
            reply = await http.get("/readyz")
    finally:
        await db.dispose()
    assert reply.status_code == 503
    assert "run 'knownfix db upgrade'" in reply.json()["checks"]["migrations"]
