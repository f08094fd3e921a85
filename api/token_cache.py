"""Who a bearer token stood for a few seconds ago, so that not every request looks it up.

Looking the token up (hash, SELECT of the token and its user, a read transaction) was
about three quarters of a trivial request's CPU (bench/README.md). This cache keeps the
answer per process, keyed by the token's SHA-256 (the digest the database stores; the
secret itself is never kept), for at most ``ttl``:

- a revocation, a role change or a deactivation made through *this* process drops the
  user's entries once it has committed (``forget_user``), and a lookup that read the
  database before that commit cannot put its stale answer back (``generation``);
- one made elsewhere (another worker or host, the CLI, SQL) is honoured within ``ttl``
  seconds: that is the staleness bound, 30 s by default;
- a token's own expiry is checked on every hit, so a cached token never outlives it.

Only successful lookups are kept: an unknown token is looked up again each time (a
token minted by another process works at once, and guessing cannot fill the cache).
``last_used_at`` is recorded on a lookup, so at most once per ``ttl``: it is only kept to
the nearest five minutes anyway (``tokens.LAST_USED_RESOLUTION``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from knowledge.accounts.principal import Principal
from knowledge.clock import Clock, SystemClock
from knowledge.errors import AuthenticationError

DEFAULT_TTL = dt.timedelta(seconds=30)
DEFAULT_MAX_ENTRIES = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    expires_at: dt.datetime | None  # the token's own expiry
    cached_at: dt.datetime


class TokenCache:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        ttl: dt.timedelta = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.clock = clock or SystemClock()
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        # Bumped by every forget: a lookup that started before cannot store its answer.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str) -> Principal | None:
        """The cached principal; ``None`` when the database must be asked. Raises
        ``AuthenticationError`` for a cached token that has expired since."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        now = self.clock.now()
        if entry.expires_at is not None and entry.expires_at <= now:
            del self._entries[token_hash]
            raise AuthenticationError("token expired")
        # A clock that went backwards makes the entry suspect too.
        if not entry.cached_at <= now < entry.cached_at + self.ttl:
            del self._entries[token_hash]
            return None
        return entry.principal

    def put(
        self,
        token_hash: str,
        principal: Principal,
        *,
        expires_at: dt.datetime | None,
        generation: int,
    ) -> None:
        """Remember a lookup that started when ``generation`` was current."""
        if generation != self.generation:
            return
        self._entries.pop(token_hash, None)
        while len(self._entries) >= self.max_entries:
            # The oldest insertion goes first: dicts keep insertion order.
            del self._entries[next(iter(self._entries))]
        self._entries[token_hash] = _Entry(principal, expires_at, self.clock.now())

    def forget_user(self, user_id: int) -> None:
        """Call after committing a change to a user or one of their tokens."""
        self.generation += 1
        for key in [k for k, e in self._entries.items() if e.principal.user_id == user_id]:
            del self._entries[key]
