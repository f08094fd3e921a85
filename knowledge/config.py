"""Settings read from ``KNOWNFIX_*`` environment variables.

Every variable has a default that suits the embedded mode (SQLite and Whoosh under
``./var/``), so a fresh checkout runs without any configuration. A bad value fails
at start-up with a message naming the variable, never later in a request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from knowledge.db import SQLITE_WRITE_WAIT_MS, Database

if TYPE_CHECKING:
    from knowledge.incidents.policy import IncidentPolicy

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/knownfix.db"
POSTINGS_CACHE_BYTES = 256 * 1024 * 1024
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
# (variable, Settings field, smallest, largest). Depth is capped because parsing and
# validation recurse once per level; the others only bound work and memory.
LIMIT_VARIABLES = (
    ("KNOWNFIX_MAX_QUERY_DEPTH", "max_query_depth", 1, 100),
    ("KNOWNFIX_MAX_ALIASES", "max_aliases", 0, 10_000),
    ("KNOWNFIX_MAX_TOKENS", "max_tokens", 100, 1_000_000),
    ("KNOWNFIX_MAX_QUERY_COST", "max_query_cost", 1, 100_000_000),
    ("KNOWNFIX_MAX_BODY_BYTES", "max_body_bytes", 1_000, 100_000_000),
    # How long a write waits for the other processes' writers to an SQLite file.
    ("KNOWNFIX_SQLITE_WRITE_WAIT_MS", "sqlite_write_wait_ms", 100, 3_600_000),
)
# The response cache of read queries (api/response_cache.py): 0 bytes turns it off.
CACHE_VARIABLES = (
    ("KNOWNFIX_RESPONSE_CACHE_BYTES", "response_cache_bytes", 0, 100_000_000_000),
    ("KNOWNFIX_RESPONSE_CACHE_ENTRY_BYTES", "response_cache_entry_bytes", 0, 1_000_000_000),
    # Postings of the suggestion searches kept in memory (knowledge/search/arrays.py).
    ("KNOWNFIX_SEARCH_CACHE_BYTES", "search_cache_bytes", 0, 100_000_000_000),
)


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    index_dir: Path = Path("./var/index")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    env: Environment = Environment.DEVELOPMENT
    cors_origins: tuple[str, ...] = ()
    priority_matrix: str = ""
    sla: str = ""
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_query_cost: int = 100_000
    max_body_bytes: int = 1_000_000
    sqlite_write_wait_ms: int = SQLITE_WRITE_WAIT_MS
    response_cache_bytes: int = 64 * 1024 * 1024
    response_cache_entry_bytes: int = 1024 * 1024
    search_cache_bytes: int = POSTINGS_CACHE_BYTES
    introspection: bool | None = None  # None: on in development, off in production
    outbox_retention_days: int = 7  # 0: keep outbox rows for ever

    @property
    def response_cache_enabled(self) -> bool:
        return self.response_cache_bytes > 0 and self.response_cache_entry_bytes > 0

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def introspection_enabled(self) -> bool:
        return not self.is_production if self.introspection is None else self.introspection

    def incident_policy(self) -> IncidentPolicy:
        from knowledge.incidents.policy import IncidentPolicy, parse_matrix, parse_sla

        return IncidentPolicy(matrix=parse_matrix(self.priority_matrix), sla=parse_sla(self.sla))

    @property
    def outbox_retention(self) -> dt.timedelta | None:
        """How long outbox rows are kept; None: for ever."""
        days = self.outbox_retention_days
        return dt.timedelta(days=days) if days else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def database(self) -> Database:
        """The database these settings name, with their limits (not yet connected)."""
        return Database(self.database_url, write_wait=self.sqlite_write_wait_ms / 1000)

    @property
    def var_dir(self) -> Path:
        """Where embedded-mode state lives: the folder of the index (``./var`` by default)."""
        return self.index_dir.parent

    def replace(self, **changes: Any) -> Settings:
        """A copy with CLI flags applied, re-validated like the environment."""
        merged = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        _validate_port("--port", merged.port)
        for variable, field, low, high in LIMIT_VARIABLES + CACHE_VARIABLES:
            _validate_range(variable, getattr(merged, field), low, high)
        return merged

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        database_url = get("KNOWNFIX_DATABASE_URL") or DEFAULT_DATABASE_URL
        validate_database_url("KNOWNFIX_DATABASE_URL", database_url)

        port_text = get("KNOWNFIX_PORT")
        port = defaults.port
        if port_text is not None:
            if not port_text.isdigit():
                raise ConfigError("KNOWNFIX_PORT", f"expected a port number, got {port_text!r}")
            port = int(port_text)
            _validate_port("KNOWNFIX_PORT", port)

        log_level = (get("KNOWNFIX_LOG_LEVEL") or defaults.log_level).lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                "KNOWNFIX_LOG_LEVEL", f"expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
            )

        env_text = (get("KNOWNFIX_ENV") or Environment.DEVELOPMENT.value).lower()
        try:
            environment = Environment(env_text)
        except ValueError:
            raise ConfigError(
                "KNOWNFIX_ENV", f"expected development or production, got {env_text!r}"
            ) from None

        host = get("KNOWNFIX_HOST") or defaults.host
        if any(c.isspace() for c in host) or "/" in host:
            raise ConfigError("KNOWNFIX_HOST", f"expected a host name or address, got {host!r}")

        origins = tuple(
            o.strip() for o in (get("KNOWNFIX_CORS_ORIGINS") or "").split(",") if o.strip()
        )
        for origin in origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    "KNOWNFIX_CORS_ORIGINS",
                    f"expected comma-separated http(s) origins (no wildcard), got {origin!r}",
                )

        priority_matrix = get("KNOWNFIX_PRIORITY_MATRIX") or ""
        sla = get("KNOWNFIX_SLA") or ""
        from knowledge.incidents.policy import parse_matrix, parse_sla

        for variable, value, parse in (
            ("KNOWNFIX_PRIORITY_MATRIX", priority_matrix, parse_matrix),
            ("KNOWNFIX_SLA", sla, parse_sla),
        ):
            try:
                parse(value)
            except ValueError as error:
                raise ConfigError(variable, str(error)) from None

        limits: dict[str, int] = {}
        for variable, field, low, high in LIMIT_VARIABLES + CACHE_VARIABLES:
            text = get(variable)
            if text is None:
                continue
            if not text.isascii() or not text.isdigit():
                raise ConfigError(variable, f"expected a whole number, got {text!r}")
            limits[field] = int(text)
            _validate_range(variable, limits[field], low, high)

        introspection_text = get("KNOWNFIX_INTROSPECTION")
        introspection: bool | None = None
        if introspection_text is not None:
            word = introspection_text.lower()
            if word not in TRUE_WORDS + FALSE_WORDS:
                raise ConfigError(
                    "KNOWNFIX_INTROSPECTION", f"expected true or false, got {introspection_text!r}"
                )
            introspection = word in TRUE_WORDS

        retention_text = get("KNOWNFIX_OUTBOX_RETENTION_DAYS")
        retention_days = defaults.outbox_retention_days
        if retention_text is not None:
            if not retention_text.isascii() or not retention_text.isdigit():
                raise ConfigError(
                    "KNOWNFIX_OUTBOX_RETENTION_DAYS",
                    f"expected a whole number of days (0: keep for ever), got {retention_text!r}",
                )
            retention_days = int(retention_text)
            _validate_range("KNOWNFIX_OUTBOX_RETENTION_DAYS", retention_days, 0, 36_500)

        return cls(
            database_url=database_url,
            index_dir=Path(get("KNOWNFIX_INDEX_DIR") or defaults.index_dir),
            host=host,
            port=port,
            log_level=log_level,
            env=environment,
            cors_origins=origins,
            priority_matrix=priority_matrix,
            sla=sla,
            introspection=introspection,
            outbox_retention_days=retention_days,
            **limits,
        )


def _validate_port(variable: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(variable, f"expected a port between 1 and 65535, got {port}")


def _validate_range(variable: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(variable, f"expected a number between {low} and {high}, got {value}")


def validate_database_url(variable: str, url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(variable, f"not a database URL: {url!r}") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            variable,
            f"unsupported driver {parsed.drivername!r}; use one of {', '.join(SUPPORTED_DRIVERS)}",
        )
    if parsed.drivername.startswith("sqlite") and not parsed.database:
        raise ConfigError(
            variable, "SQLite needs a file path (in-memory databases lose everything)"
        )
