"""The Starlette application: GraphQL (HTTP and websocket), health and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from api.auth import authenticate, connection_authorization
from api.context import Context, build_context
from api.errors import RETRY_AFTER_SECONDS, database_unavailable
from api.limits import BodyLimit
from api.request_ids import RequestIdMiddleware, request_id_of
from api.response_cache import CachedResponses, ResponseCache
from api.schema import build_schema
from api.token_cache import TokenCache
from api.webhooks import alertmanager
from api.websocket_handlers import (
    TRY_AGAIN_LATER,
    UNAVAILABLE_REASON,
    LegacyWSHandler,
    TransportWSHandler,
    log_unreachable,
)
from knowledge import heap, migrate
from knowledge.clock import Clock, SystemClock
from knowledge.config import Settings
from knowledge.db import Database, is_unreachable
from knowledge.errors import AuthenticationError
from knowledge.incidents.policy import IncidentPolicy
from knowledge.outbox.dispatch import EventDispatcher
from knowledge.outbox.watcher import other_processes_commits
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self,
        db: Database,
        settings: Settings,
        index: SearchIndex,
        clock: Clock,
        events: EventDispatcher,
        policy: IncidentPolicy,
    ) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None if settings.is_production else "graphiql",
            allowed_origins=settings.cors_origins,
        )
        self.db = db
        self.settings = settings
        self.index = index
        self.clock = clock
        self.events = events
        self.policy = policy
        self.token_cache = TokenCache(clock)

    def decode_json(self, data: str | bytes) -> object:
        """strawberry answers 400 only for ``JSONDecodeError``; a body nested deeper than
        the recursion limit or not UTF-8 would otherwise be a 500."""
        try:
            return super().decode_json(data)
        except (RecursionError, UnicodeDecodeError) as error:
            raise json.JSONDecodeError(type(error).__name__, "", 0) from None

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = build_context(
            db=self.db,
            settings=self.settings,
            principal=request.scope["state"]["principal"],
            index=self.index,
            clock=self.clock,
            events=self.events,
            policy=self.policy,
            request=request,
            response=response,
            request_id=request_id_of(request),
            token_cache=self.token_cache,
            # Closed by CachedResponses once the response is sent (a websocket's context
            # outlives many results: its reads each take a session of their own).
            share_reads=not isinstance(request, WebSocket),
        )
        # The response cache asks the context, after the view, whether to keep the answer.
        request.scope["state"]["context"] = context
        return context

    async def on_ws_connect(self, context: Context) -> None:
        """Browsers cannot set websocket headers: accept the token in connection_init.

        A subscription is acknowledged only while the database answers: its events come
        from the outbox. A token found in the token cache proves nothing about that, so
        the database is asked either way; an outage raised here closes the websocket
        with 1013 (api/websocket_handlers.py)."""
        authorization = connection_authorization(context.connection_params)
        if authorization is not None or context.principal.is_anonymous:
            try:
                context.principal = await authenticate(
                    self.db,
                    authorization,
                    allow_anonymous=not self.settings.is_production,
                    cache=self.token_cache,
                )
            except AuthenticationError as error:
                raise ConnectionRejectionError({"message": error.message}) from None
        await self.db.ping()


class AuthGate:
    """Resolve the caller before GraphQL runs; refuse bad credentials with 401."""

    def __init__(self, view: GraphQLView, cache: ResponseCache | None = None) -> None:
        self.view = view
        self.cached_view = CachedResponses(view, view.db, cache)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization")
        settings = self.view.settings
        is_websocket = scope["type"] == "websocket"
        try:
            if is_websocket:
                # Said at the handshake, before any token check that the cache may answer,
                # so that a client learns of an outage even before its connection_init.
                await self.view.db.ping()
            principal = await authenticate(
                self.view.db,
                None if authorization is None else authorization.decode("latin-1"),
                # A websocket's token may come in connection_init instead (see on_ws_connect).
                allow_anonymous=is_websocket or not settings.is_production,
                cache=self.view.token_cache,
            )
        except AuthenticationError as error:
            if is_websocket:
                await WebSocket(scope, receive, send).close(code=4401, reason=error.message)
                return
            response = JSONResponse(
                {"errors": [{"message": error.message, "extensions": {"code": "UNAUTHENTICATED"}}]},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        except Exception as error:
            if not is_unreachable(error):
                raise
            # An outage is not a bug: a clear 503 at once, no traceback per request.
            if is_websocket:
                log_unreachable("opening a subscription websocket", error)
                # Accepted, then closed with 1013 "try again later": refusing the handshake
                # instead would read as 403 Forbidden, as if the token were bad.
                websocket = WebSocket(scope, receive, send)
                await websocket.accept(subprotocol=(scope.get("subprotocols") or [None])[0])
                await websocket.close(code=TRY_AGAIN_LATER, reason=UNAVAILABLE_REASON)
                return
            log_unreachable("authenticating", error)
            response = JSONResponse(
                {"errors": [database_unavailable(request_id_of(scope))]},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.cached_view(scope, receive, send)


async def healthz(_: Request) -> Response:
    """The process is up; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready to serve: the database answers, its schema is at the code's head, and
    the search index is open and following the outbox."""
    db: Database = request.app.state.db
    indexer: Indexer = request.app.state.indexer
    checks: dict[str, str] = {}
    ready = True
    if not indexer.index.is_open:
        ready = False
        checks["index"] = "not open"
    elif indexer.last_error:
        ready = False
        checks["index"] = f"indexing failed: {indexer.last_error[:200]}"
    else:
        checks["index"] = "ok"
    try:
        async with db.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
        current, head = await migrate.current_revision(db.engine), migrate.head_revision()
        if current == head:
            checks["migrations"] = "ok"
        else:
            ready = False
            checks["migrations"] = (
                f"database at {current}, code expects {head}: run 'knownfix db upgrade'"
            )
    except Exception as error:
        ready = False
        checks["database"] = f"unreachable: {type(error).__name__}: {str(error)[:200]}"
    return JSONResponse(
        {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            # Processes sharing an index directory: which one writes it (the others search).
            "process": {"pid": os.getpid(), "indexWriter": indexer.is_writer},
        },
        status_code=200 if ready else 503,
    )


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    clock: Clock | None = None,
    settle_after_start: bool = False,
    stand_in: bool = False,
) -> Starlette:
    """The app; pass ``db`` to share an engine and ``clock`` to control time (tests).
    ``settle_after_start``: ``heap.settle()`` once started (a server process; not a
    test process, which starts app after app). ``stand_in``: a worker of ``serve``,
    which writes the index only while ``serve``'s index writer is not running."""
    own_db = db is None
    database = db or settings.database()
    indexer = Indexer(
        database,
        SearchIndex(settings.index_dir, postings_cache_bytes=settings.search_cache_bytes),
        outbox_retention=settings.outbox_retention,
        stand_in=stand_in,
    )
    events = EventDispatcher(database)
    followers = [indexer.notify, events.notify]
    listener = other_processes_commits(database, followers)
    policy = settings.incident_policy()
    time = clock or SystemClock()
    view = GraphQLView(database, settings, indexer.index, time, events, policy)
    response_cache = (
        ResponseCache(settings.response_cache_bytes, settings.response_cache_entry_bytes)
        if settings.response_cache_enabled
        else None
    )
    gate = AuthGate(view, response_cache)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The sentence model, loaded before serving: the catch-up may encode titles, and
        # the first suggestion should not wait for it (nor find it missing).
        await asyncio.to_thread(lambda: indexer.index.sentences)
        # Catch up with everything committed while we were down before serving.
        await indexer.start()
        await events.start()
        database.on_commit.extend(followers)
        await listener.start()
        if settle_after_start:
            heap.settle()
        try:
            yield
        finally:
            await listener.stop()
            for follower in followers:
                database.on_commit.remove(follower)
            await events.stop()
            await indexer.stop()
            if own_db:
                await database.dispose()

    middleware = [Middleware(RequestIdMiddleware)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID"],
                allow_credentials=True,
                max_age=600,
            )
        )
    app = Starlette(
        routes=[
            Route("/graphql", BodyLimit(gate, settings.max_body_bytes), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", gate),
            Route("/webhooks/alertmanager", alertmanager, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.settings = settings
    app.state.indexer = indexer
    app.state.events = events
    app.state.listener = listener
    app.state.clock = time
    app.state.policy = policy
    app.state.response_cache = response_cache
    return app
