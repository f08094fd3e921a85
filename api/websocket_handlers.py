"""strawberry's websocket protocol handlers, told what a database outage means.

``on_ws_connect`` reads the database (a token sent in ``connection_init``, and the check
that a subscription can be served at all). strawberry's handlers only expect
``ConnectionRejectionError`` from it; anything else escaped to uvicorn, which logged
"Exception in ASGI application" with a traceback and dropped the connection with no
close code. An outage is not a bug: the client is told to try again later (close code
1013) and the log gets one line.
"""

from __future__ import annotations

import logging

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)

from api.context import Context
from api.errors import DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_MESSAGE
from knowledge.db import is_unreachable

logger = logging.getLogger("knownfix.app")

TRY_AGAIN_LATER = 1013  # RFC 6455: "the server is overloaded", read by clients as retry
UNAVAILABLE_REASON = "the database is unavailable"


def describe(error: BaseException) -> str:
    """The error in one line, short enough for a log that must not flood."""
    return f"{type(error).__name__}: {str(error)[:200]}"


def log_unreachable(doing: str, error: BaseException) -> None:
    logger.warning("database unreachable while %s: %s", doing, describe(error))


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, the protocol current clients speak."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Exception as error:
            if not is_unreachable(error):
                raise
            log_unreachable("acknowledging a connection_init", error)
            await self.websocket.close(code=TRY_AGAIN_LATER, reason=UNAVAILABLE_REASON)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """graphql-ws (subscriptions-transport-ws), which says why in a connection_error."""

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Exception as error:
            if not is_unreachable(error):
                raise
            log_unreachable("acknowledging a connection_init", error)
            await self.send_message(
                {
                    "type": "connection_error",
                    "payload": {
                        "message": DATABASE_UNAVAILABLE_MESSAGE,
                        "extensions": {"code": DATABASE_UNAVAILABLE},
                    },
                }
            )
            await self.websocket.close(code=TRY_AGAIN_LATER, reason=UNAVAILABLE_REASON)
