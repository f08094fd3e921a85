"""Bearer-token authentication in front of GraphQL, for HTTP and websockets.

A request with a bad token is refused outright (401), even in development: a
client that sends credentials wants to act as someone, and silently treating it
as anonymous would hide the mistake. Without a token, development mode serves
an anonymous viewer and production mode refuses.
"""

from __future__ import annotations

import logging
from typing import Any

from api.token_cache import TokenCache
from knowledge.accounts import tokens
from knowledge.accounts.principal import ANONYMOUS_VIEWER, Principal
from knowledge.db import Database, DatabaseBusyError
from knowledge.errors import AuthenticationError

logger = logging.getLogger("knownfix.auth")

SCHEME = "bearer"


def bearer_secret(authorization: str | None) -> str | None:
    """The token in an ``Authorization`` value; ``None`` when there is no header."""
    if authorization is None:
        return None
    scheme, _, secret = authorization.strip().partition(" ")
    if scheme.lower() != SCHEME or not secret.strip():
        raise AuthenticationError("malformed Authorization header: expected 'Bearer <token>'")
    return secret.strip()


async def authenticate(
    db: Database,
    authorization: str | None,
    *,
    allow_anonymous: bool,
    cache: TokenCache | None = None,
) -> Principal:
    """The caller; with ``cache``, a token seen in the last few seconds is not looked up
    again (see api/token_cache.py for what that may miss and for how long)."""
    secret = bearer_secret(authorization)
    if secret is None:
        if not allow_anonymous:
            raise AuthenticationError(
                "authentication required: send 'Authorization: Bearer <token>'"
            )
        return ANONYMOUS_VIEWER
    if cache is None:
        async with db.read() as session:
            result = await tokens.authenticate(session=session, secret=secret)
    else:
        tokens.check_format(secret)
        token_hash = tokens.hash_token(secret)
        cached = cache.get(token_hash)
        if cached is not None:
            return cached
        generation = cache.generation
        async with db.read() as session:
            result = await tokens.authenticate(
                session=session, secret=secret, now=cache.clock.now()
            )
        cache.put(token_hash, result.principal, expires_at=result.expires_at, generation=generation)
    if result.use_is_stale:
        try:
            async with db.transaction() as session:
                await tokens.record_use(session=session, token_id=result.principal.token_id or 0)
        except DatabaseBusyError:
            # Bookkeeping, not what was asked for: a later request records the use.
            logger.warning("token last use not recorded: the database is busy with writes")
    return result.principal


def connection_authorization(params: Any) -> str | None:
    """The Authorization value a websocket client put in its connection_init payload."""
    if not isinstance(params, dict):
        return None
    for key in ("Authorization", "authorization"):
        value = params.get(key)
        if isinstance(value, str):
            return value
    return None
