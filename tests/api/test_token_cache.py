"""The per-process token cache on its own: bounded, keyed by digest, race-safe."""

from __future__ import annotations

import datetime as dt

import pytest

from api.auth import authenticate
from api.token_cache import TokenCache
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.accounts.tokens import hash_token
from knowledge.clock import ManualClock
from knowledge.db import Database, utcnow
from knowledge.errors import AuthenticationError
from tests.support import Accounts


def principal(user_id: int) -> Principal:
    return Principal(
        user_id=user_id, username=f"user-{user_id}", role=Role.VIEWER, token_id=user_id
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(utcnow())


async def test_it_keeps_the_tokens_digest_never_the_secret(
    db: Database, accounts: Accounts, clock: ManualClock
) -> None:
    kim = await accounts.create(Role.RESPONDER)
    cache = TokenCache(clock)
    found = await authenticate(db, f"Bearer {kim.token}", allow_anonymous=False, cache=cache)
    assert found.user_id == kim.id
    assert len(cache) == 1
    assert cache.get(hash_token(kim.token)) == found
    assert cache.get(kim.token) is None


async def test_unknown_and_malformed_tokens_are_not_remembered(
    db: Database, clock: ManualClock
) -> None:
    cache = TokenCache(clock)
    for header in ("Bearer kfx_" + "B" * 43, "Bearer nonsense"):
        with pytest.raises(AuthenticationError):
            await authenticate(db, header, allow_anonymous=False, cache=cache)
    assert len(cache) == 0


def test_it_holds_at_most_max_entries_dropping_the_oldest(clock: ManualClock) -> None:
    cache = TokenCache(clock, max_entries=3)
    for n in range(5):
        cache.put(f"h{n}", principal(n), expires_at=None, generation=cache.generation)
    assert len(cache) == 3
    assert [cache.get(f"h{n}") for n in range(5)] == [None, None, *map(principal, (2, 3, 4))]


def test_an_entry_lapses_after_the_ttl(clock: ManualClock) -> None:
    cache = TokenCache(clock, ttl=dt.timedelta(seconds=30))
    cache.put("h", principal(1), expires_at=None, generation=cache.generation)
    clock.advance(seconds=29.9)
    assert cache.get("h") == principal(1)
    clock.advance(seconds=0.1)
    assert cache.get("h") is None
    assert len(cache) == 0


def test_a_clock_that_went_back_drops_the_entry(clock: ManualClock) -> None:
    cache = TokenCache(clock)
    cache.put("h", principal(1), expires_at=None, generation=cache.generation)
    clock.advance(seconds=-1)
    assert cache.get("h") is None


def test_an_expired_token_is_refused_not_looked_up_again(clock: ManualClock) -> None:
    cache = TokenCache(clock)
    expires = clock.now() + dt.timedelta(seconds=5)
    cache.put("h", principal(1), expires_at=expires, generation=cache.generation)
    clock.advance(seconds=5)
    with pytest.raises(AuthenticationError, match="token expired"):
        cache.get("h")


def test_forgetting_a_user_drops_all_their_tokens_only(clock: ManualClock) -> None:
    cache = TokenCache(clock)
    cache.put("a1", principal(1), expires_at=None, generation=cache.generation)
    cache.put("a2", principal(1), expires_at=None, generation=cache.generation)
    cache.put("b", principal(2), expires_at=None, generation=cache.generation)
    cache.forget_user(1)
    assert (cache.get("a1"), cache.get("a2"), cache.get("b")) == (None, None, principal(2))


def test_a_lookup_that_began_before_a_forget_cannot_store_its_stale_answer(
    clock: ManualClock,
) -> None:
    cache = TokenCache(clock)
    began = cache.generation  # a request starts reading the database...
    cache.forget_user(1)  # ...meanwhile a revocation commits...
    cache.put("h", principal(1), expires_at=None, generation=began)  # ...then it answers
    assert cache.get("h") is None
    cache.put("h", principal(1), expires_at=None, generation=cache.generation)
    assert cache.get("h") == principal(1)
