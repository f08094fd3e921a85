"""Configuration: safe embedded defaults, and bad values named at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.config import ConfigError, Environment, Settings


def test_defaults_suit_the_embedded_mode() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite+aiosqlite:///./var/knownfix.db"
    assert settings.index_dir == Path("./var/index")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.env is Environment.DEVELOPMENT
    assert settings.log_level == "info"
    assert settings.cors_origins == ()


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "KNOWNFIX_DATABASE_URL": "postgresql+asyncpg://kf@db.internal:5432/knownfix",
            "KNOWNFIX_INDEX_DIR": "/srv/knownfix/index",
            "KNOWNFIX_HOST": "10.0.0.5",
            "KNOWNFIX_PORT": "9000",
            "KNOWNFIX_LOG_LEVEL": "WARNING",
            "KNOWNFIX_ENV": "production",
            "KNOWNFIX_CORS_ORIGINS": "https://desk.example.com, http://localhost:5173",
        }
    )
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.index_dir == Path("/srv/knownfix/index")
    assert (settings.host, settings.port, settings.log_level) == ("10.0.0.5", 9000, "warning")
    assert settings.is_production
    assert settings.cors_origins == ("https://desk.example.com", "http://localhost:5173")


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("KNOWNFIX_PORT", "eighty", "expected a port number"),
        ("KNOWNFIX_PORT", "70000", "between 1 and 65535"),
        ("KNOWNFIX_PORT", "0", "between 1 and 65535"),
        ("KNOWNFIX_PORT", "-1", "expected a port number"),
        ("KNOWNFIX_ENV", "staging", "development or production"),
        ("KNOWNFIX_LOG_LEVEL", "chatty", "expected one of debug"),
        ("KNOWNFIX_DATABASE_URL", "not a url", "not a database URL"),
        ("KNOWNFIX_DATABASE_URL", "mysql+aiomysql://root@localhost/kf", "unsupported driver"),
        ("KNOWNFIX_DATABASE_URL", "postgresql://localhost/kf", "unsupported driver"),
        ("KNOWNFIX_DATABASE_URL", "sqlite+aiosqlite://", "needs a file path"),
        ("KNOWNFIX_HOST", "two words", "host name or address"),
        ("KNOWNFIX_CORS_ORIGINS", "*", "no wildcard"),
        ("KNOWNFIX_CORS_ORIGINS", "desk.example.com", "http(s) origins"),
        ("KNOWNFIX_RESPONSE_CACHE_BYTES", "64MB", "expected a whole number"),
        ("KNOWNFIX_RESPONSE_CACHE_ENTRY_BYTES", "-1", "expected a whole number"),
        ("KNOWNFIX_SEARCH_CACHE_BYTES", "1e9", "expected a whole number"),
        ("KNOWNFIX_SQLITE_WRITE_WAIT_MS", "30s", "expected a whole number"),
        ("KNOWNFIX_SQLITE_WRITE_WAIT_MS", "0", "between 100 and 3600000"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}: ")
    assert complaint in str(raised.value)


def test_blank_values_fall_back_to_defaults() -> None:
    assert Settings.from_env({"KNOWNFIX_PORT": "  ", "KNOWNFIX_ENV": ""}) == Settings()


def test_command_line_flags_override_and_are_checked_too() -> None:
    settings = Settings.from_env({"KNOWNFIX_PORT": "9000"}).replace(port=8001, host=None)
    assert (settings.port, settings.host) == (8001, "127.0.0.1")
    with pytest.raises(ConfigError, match="--port"):
        settings.replace(port=0)


def test_the_response_cache_is_on_by_default_and_zero_bytes_turn_it_off() -> None:
    assert Settings.from_env({}).response_cache_enabled
    off = Settings.from_env({"KNOWNFIX_RESPONSE_CACHE_BYTES": "0"})
    assert not off.response_cache_enabled
    small = Settings.from_env({"KNOWNFIX_RESPONSE_CACHE_ENTRY_BYTES": "4096"})
    assert (small.response_cache_enabled, small.response_cache_entry_bytes) == (True, 4096)


def test_the_search_cache_size_is_a_setting() -> None:
    assert Settings.from_env({}).search_cache_bytes == 256 * 1024 * 1024
    assert Settings.from_env({"KNOWNFIX_SEARCH_CACHE_BYTES": "0"}).search_cache_bytes == 0


def test_how_long_an_sqlite_write_waits_for_other_processes_is_a_setting() -> None:
    # A host whose processes queue many writes at once can wait longer than 30 s
    # before a write gives up as busy; an interactive one can give up sooner.
    assert Settings.from_env({}).database().write_wait == 30.0
    settings = Settings.from_env({"KNOWNFIX_SQLITE_WRITE_WAIT_MS": "2500"})
    assert settings.sqlite_write_wait_ms == 2500
    assert settings.database().write_wait == 2.5
