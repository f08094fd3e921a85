"""Helpers the tests share: a GraphQL client over the real app, and account setup."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from knowledge.accounts import service as accounts_service
from knowledge.accounts import tokens
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.db import Database


@dataclasses.dataclass
class Response:
    status: int
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        """The data of a response that must have no top-level errors."""
        assert self.status == 200, f"HTTP {self.status}: {self.body}"
        assert not self.body.get("errors"), f"unexpected errors: {self.body['errors']}"
        data: dict[str, Any] = self.body["data"]
        return data

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.body.get("errors") or []
        assert errors, f"expected errors, got {self.body}"
        return errors

    @property
    def error_codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code", "") for e in self.errors]


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        reply = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        return Response(reply.status_code, reply.json())


@dataclasses.dataclass
class Account:
    id: int
    username: str
    role: Role
    token: str
    token_id: int


class Accounts:
    """Creates users with tokens directly through the services (the system acting)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._count = 0

    async def create(self, role: Role, username: str | None = None) -> Account:
        self._count += 1
        username = username or f"{role.value.replace('_', '-')}-{self._count}"
        async with self.db.transaction() as session:
            user = await accounts_service.create_user(
                session=session, principal=SYSTEM, username=username, role=role
            )
            issued = await tokens.create(session=session, principal=SYSTEM, user=user, role=role)
        return Account(user.id, username, role, issued.secret, issued.token.id)
