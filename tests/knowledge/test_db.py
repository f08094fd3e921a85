"""Telling a database outage from a failing statement."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from knowledge.db import is_unreachable


def caused_by(cause: BaseException) -> Exception:
    try:
        try:
            raise cause
        except BaseException as error:
            raise RuntimeError("while serving a request") from error
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError(),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 99] ..."),
        DBAPIError("SELECT 1", None, Exception("closed"), connection_invalidated=True),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        caused_by(ConnectionRefusedError(errno.ECONNREFUSED, "refused")),
    ],
    ids=repr,
)
def test_an_unreachable_server_is_recognised(error: BaseException) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad input"),
        IntegrityError("INSERT", None, Exception("duplicate key")),
        OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")),
        OperationalError("SELECT", None, sqlite3.OperationalError("no such table: incident")),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),  # e.g. an index file
        PermissionError(errno.EACCES, "Permission denied"),
        caused_by(ValueError("bad input")),
    ],
    ids=repr,
)
def test_a_failing_statement_or_a_local_file_error_is_not_an_outage(error: BaseException) -> None:
    assert not is_unreachable(error)
