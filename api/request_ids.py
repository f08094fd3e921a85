"""One id per HTTP request (or websocket), in the logs and in the ``X-Request-ID`` header.

In production a client sees only "unexpected error" and this id; the operator
finds the stack trace in the logs under the same id. An id set by a proxy or the
client is kept when it looks like an id, so a request can be followed across
hosts; anything else (too long, control characters, log-forging text) is replaced.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def choose_request_id(incoming: bytes | None) -> str:
    if incoming is not None:
        text = incoming.decode("latin-1")
        if SANE_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


def request_id_of(scope: Any) -> str | None:
    """The id the middleware gave this request, from a scope or anything with ``.scope``."""
    mapping = getattr(scope, "scope", scope)
    state = mapping.get("state") if isinstance(mapping, dict) else None
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = choose_request_id(dict(scope["headers"]).get(HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [h for h in message.get("headers", []) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
