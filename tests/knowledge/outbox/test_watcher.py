"""Other processes' commits wake this one through the data version (SQLite's way).

"Another process" is another ``Database`` on the same database: its own engine and
its own connection for the data version, as a second worker would have.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from knowledge import migrate
from knowledge.db import Database
from knowledge.outbox.watcher import CommitWatcher
from tests.conftest import TEST_DATABASE_URL
from tests.knowledge.outbox.test_listener import DEADLINE, LEMUR, NEWT, Woken
from tests.knowledge.search.support import publish


async def test_a_commit_by_another_process_wakes_the_followers(db: Database) -> None:
    woken = Woken()
    watcher = CommitWatcher(db, [woken], interval=0.01)
    other = Database(db.url)
    await watcher.start()
    try:
        await asyncio.wait_for(watcher.watching.wait(), DEADLINE)
        await woken.next()  # once at the start, for what was committed before it
        assert not woken.event.is_set()

        await publish(other, LEMUR)
        await woken.next()
        await publish(other, NEWT)
        await woken.next()
    finally:
        await watcher.stop()
        await other.dispose()


async def test_a_follower_whose_wake_up_fails_does_not_deafen_the_others(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("this follower is broken")

    woken = Woken()
    watcher = CommitWatcher(db, [broken, woken], interval=0.01)
    other = Database(db.url)
    await watcher.start()
    try:
        with caplog.at_level(logging.ERROR, logger="knownfix.outbox"):
            await woken.next()
            await publish(other, LEMUR)
            await woken.next()
        assert any("this follower is broken" in r.exc_text for r in caplog.records if r.exc_text)
    finally:
        await watcher.stop()
        await other.dispose()


@pytest.mark.skipif(TEST_DATABASE_URL != "", reason="an SQLite file that is not there yet")
async def test_a_database_it_cannot_read_is_reported_once_and_watched_once_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'later.db'}")
    woken = Woken()
    watcher = CommitWatcher(db, [woken], interval=0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="knownfix.outbox"):
            await watcher.start()
            async with asyncio.timeout(DEADLINE):
                while not warnings(caplog):  # noqa: ASYNC110 - log records, no event
                    await asyncio.sleep(0.01)
            await migrate.upgrade(db.engine)  # the file appears
            await asyncio.wait_for(watcher.watching.wait(), DEADLINE)
            await woken.next()  # once it can read, for whatever it missed
            await publish(db, LEMUR)
            await woken.next()
        assert len(warnings(caplog)) == 1, "one warning for the whole outage"
        assert "the outbox is polled meanwhile" in warnings(caplog)[0]
    finally:
        await watcher.stop()
        await db.dispose()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "data version" in r.getMessage()]
