"""``POST /webhooks/alertmanager``: Prometheus Alertmanager (payload version 4).

Authenticated by the alert source's own token (``knownfix alert-source create``).
A body that is not valid JSON, or not a valid payload, gets a 400 with the
reason and changes nothing.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth import bearer_secret
from api.errors import BUSY_RETRY_AFTER_SECONDS, DATABASE_BUSY_MESSAGE
from knowledge.alerts import service as alerts
from knowledge.db import DatabaseBusyError
from knowledge.errors import AuthenticationError, ValidationError
from knowledge.suggestions import feedback

MAX_BODY = 1_000_000


async def alertmanager(request: Request) -> Response:
    state = request.app.state
    try:
        async with state.db.read() as session:
            source = await alerts.authenticate_source(
                session=session, secret=bearer_secret(request.headers.get("authorization"))
            )
    except AuthenticationError as error:
        return JSONResponse({"error": error.message}, status_code=401)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return JSONResponse({"error": f"body larger than {MAX_BODY} bytes"}, status_code=413)
    try:
        parsed = alerts.parse_alertmanager(json.loads(body or b"null"))
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, huge ints
        return JSONResponse({"error": f"body is not valid JSON: {error}"}, status_code=400)
    except ValidationError as error:
        return JSONResponse({"error": error.message, "field": error.field}, status_code=400)
    try:
        async with state.db.transaction() as session:
            report = await alerts.ingest(
                session=session,
                source=await session.merge(source),
                policy=state.policy,
                now=state.clock.now(),
                alerts=parsed,
            )
    except ValidationError as error:  # rolled back: nothing of the delivery was kept
        return JSONResponse({"error": error.message, "field": error.field}, status_code=422)
    except DatabaseBusyError:  # nothing kept either: Alertmanager sends it again
        return JSONResponse(
            {"error": DATABASE_BUSY_MESSAGE},
            status_code=503,
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
        )
    for incident_id in report.opened_ids:  # an alert is a one-line report: suggest for it too
        await feedback.store_after_commit(
            db=state.db, index=state.indexer.index, incident_id=incident_id, now=state.clock.now()
        )
    return JSONResponse(
        {
            "opened": report.opened,
            "deduplicated": report.deduplicated,
            "recovered": report.recovered,
            "unmatched": report.unmatched,
        }
    )
