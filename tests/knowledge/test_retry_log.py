"""A loop retrying every second through an outage says so in a few lines, not thousands,
and still shows the traceback of anything that is not an outage."""

from __future__ import annotations

import logging

import pytest

from knowledge.retry_log import RetryLog

REFUSED = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def retries(clock: Clock) -> RetryLog:
    return RetryLog(logging.getLogger("knownfix.test"), "indexing", repeat_every=60, clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, bool]]:
    return [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]


def test_an_outage_is_one_line_then_one_a_minute_then_one_when_it_ends(
    retries: RetryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "knownfix.test")
    for _ in range(150):  # two and a half minutes of retrying every second
        retries.failed(REFUSED)
        clock.now += 1
    retries.succeeded()
    assert lines(caplog) == [
        (
            "WARNING",
            "indexing: the database is unreachable (ConnectionRefusedError: [Errno 111] "
            "Connect call failed ('127.0.0.1', 5432)); retrying until it answers",
            False,
        ),
        (
            "WARNING",
            "indexing: the database is still unreachable after 60 s (ConnectionRefusedError: "
            "[Errno 111] Connect call failed ('127.0.0.1', 5432))",
            False,
        ),
        (
            "WARNING",
            "indexing: the database is still unreachable after 120 s (ConnectionRefusedError: "
            "[Errno 111] Connect call failed ('127.0.0.1', 5432))",
            False,
        ),
        ("INFO", "indexing: the database answers again after 150 s; resumed", False),
    ]
    assert retries.failures == 0


def test_the_next_outage_is_announced_again(
    retries: RetryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "knownfix.test")
    retries.failed(REFUSED)
    retries.succeeded()
    clock.now += 5
    retries.failed(REFUSED)
    assert [level for level, _, _ in lines(caplog)] == ["WARNING", "INFO", "WARNING"]


def test_success_without_an_outage_says_nothing(
    retries: RetryLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "knownfix.test")
    retries.succeeded()
    assert caplog.records == []


def test_an_unexpected_error_keeps_its_traceback_every_time(
    retries: RetryLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "knownfix.test")
    for _ in range(3):
        try:
            raise ValueError("a bug")
        except ValueError as error:
            retries.failed(error)
    assert lines(caplog) == [("ERROR", "indexing failed; will retry", True)] * 3
    assert retries.failures == 3
