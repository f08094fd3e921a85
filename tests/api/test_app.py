"""The app's start-up as a server process has it."""

from __future__ import annotations

import asyncio
import gc

from api.app import create_app
from knowledge.config import Settings
from knowledge.db import Database
from knowledge.outbox.listener import OutboxListener
from knowledge.outbox.watcher import CommitWatcher
from tests.conftest import http_client


async def test_a_server_process_puts_what_start_up_built_out_of_the_collectors_sight(
    db: Database, settings: Settings
) -> None:
    # A full collection walked every object start-up built, in whichever request it
    # fell in; a server settles them once started. A test process starts app after
    # app, and would never free what one test left behind, so it does not.
    gc.unfreeze()
    plain = create_app(settings, db=db)
    async with plain.router.lifespan_context(plain):
        assert gc.get_freeze_count() == 0
    served = create_app(settings, db=db, settle_after_start=True)
    try:
        async with served.router.lifespan_context(served), http_client(served) as http:
            assert gc.get_freeze_count() > 0
            assert (await http.get("/readyz")).status_code == 200
    finally:
        gc.unfreeze()


async def test_other_processes_commits_wake_the_index_and_the_subscriptions(
    db: Database, settings: Settings
) -> None:
    # Workers of one server, or hosts on PostgreSQL, commit through their own
    # processes: NOTIFY tells the others on PostgreSQL, the data version on SQLite
    # (tests/knowledge/outbox has both at work).
    app = create_app(settings, db=db)
    heard = app.state.listener
    assert isinstance(heard, CommitWatcher if db.is_sqlite else OutboxListener)
    assert heard.wake == [app.state.indexer.notify, app.state.events.notify]
    async with app.router.lifespan_context(app):
        ready = heard.watching if isinstance(heard, CommitWatcher) else heard.listening
        await asyncio.wait_for(ready.wait(), 20)
    assert not ready.is_set(), "stopped with the app"
