"""Browser frontends on listed origins may call the API; others get no CORS grant."""

from __future__ import annotations

from api.app import create_app
from knowledge.config import Settings
from knowledge.db import Database
from tests.conftest import http_client

LISTED = "https://desk.example.com"


async def test_only_listed_origins_get_cors_headers(db: Database, settings: Settings) -> None:
    app = create_app(settings.replace(cors_origins=(LISTED,)), db=db)
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    async with app.router.lifespan_context(app), http_client(app) as http:
        allowed = await http.options("/graphql", headers={"Origin": LISTED, **preflight})
        refused = await http.options(
            "/graphql", headers={"Origin": "https://evil.example", **preflight}
        )
        simple = await http.post(
            "/graphql",
            json={"query": "{ me { role } }"},
            headers={"Origin": "https://evil.example"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == LISTED
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    # Without Allow-Origin a browser neither exposes the answer nor lets the page read it.
    assert "access-control-allow-origin" not in simple.headers
