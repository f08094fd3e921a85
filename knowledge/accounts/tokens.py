"""API tokens: random, shown once, stored as SHA-256.

Tokens carry 256 bits of entropy, so a fast unsalted digest is safe and allows an
indexed lookup (the approach GitHub and others use for API keys).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.models import ApiToken, User
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.db import utcnow
from knowledge.errors import AuthenticationError, NotFoundError, ValidationError
from knowledge.validation import aware

TOKEN_PREFIX = "kfx_"  # noqa: S105 - a marker, not a secret
TOKEN_PATTERN = re.compile(r"^kfx_[A-Za-z0-9_-]{43}$")
# Writing last_used_at on every request would turn reads into writes.
LAST_USED_RESOLUTION = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create(
    *,
    session: AsyncSession,
    principal: Principal,
    user: User,
    role: Role | None = None,
    name: str = "",
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """Issue a token for ``user``; only admins may issue tokens for others."""
    if principal.user_id != user.id:
        principal.require(Role.ADMIN, "Creating a token for another user")
    scope = role or user.role
    if not user.role.includes(scope):
        raise ValidationError(
            f"a token cannot carry {scope.value}: {user.username} is {user.role.value}",
            field="role",
        )
    if principal.user_id == user.id and not principal.role.includes(scope):
        raise ValidationError(
            f"your token is scoped to {principal.role.value}; it cannot mint {scope.value}",
            field="role",
        )
    if expires_at is not None:
        expires_at = aware(expires_at, field="expiresAt")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationError("the expiry must be in the future", field="expiresAt")
    name = name.strip() or f"{user.username} token"
    if len(name) > 200:
        raise ValidationError("a token name is at most 200 characters", field="name")
    secret = generate_secret()
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 4],
        token_hash=hash_token(secret),
        role=scope,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    return IssuedToken(token=token, secret=secret)


async def revoke(*, session: AsyncSession, principal: Principal, token_id: int) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user_id and not principal.can(Role.ADMIN)):
        # Someone else's token is reported as missing, not as forbidden: ids are not probes.
        raise NotFoundError("no such token", field="id")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
    return token


async def list_for_user(
    *, session: AsyncSession, principal: Principal, user_id: int
) -> list[ApiToken]:
    if principal.user_id != user_id:
        principal.require(Role.ADMIN, "Listing another user's tokens")
    rows = await session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    )
    return list(rows)


@dataclasses.dataclass(frozen=True, slots=True)
class Authentication:
    principal: Principal
    # True when last_used_at is older than LAST_USED_RESOLUTION: the caller should
    # call record_use() in a write transaction (authentication itself only reads).
    use_is_stale: bool
    # The token's own expiry, which a cache of this answer must not outlive.
    expires_at: dt.datetime | None = None


def check_format(secret: str) -> None:
    if not TOKEN_PATTERN.fullmatch(secret):
        raise AuthenticationError("malformed token: expected kfx_ followed by 43 characters")


async def authenticate(
    *, session: AsyncSession, secret: str, now: dt.datetime | None = None
) -> Authentication:
    """The principal a bearer token stands for, or an ``AuthenticationError`` saying why not.

    ``now`` is the time expiry is judged at (the app's clock); the wall clock by default.
    """
    check_format(secret)
    row = (
        await session.execute(
            sa.select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(secret))
        )
    ).one_or_none()
    if row is None:
        raise AuthenticationError("unknown token")
    token, user = row
    now = now or utcnow()
    if token.revoked_at is not None:
        raise AuthenticationError("token revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthenticationError("token expired")
    if not user.is_active:
        raise AuthenticationError("user deactivated")
    role = token.role if user.role.includes(token.role) else user.role
    return Authentication(
        principal=Principal(user_id=user.id, username=user.username, role=role, token_id=token.id),
        use_is_stale=token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION,
        expires_at=token.expires_at,
    )


async def record_use(*, session: AsyncSession, token_id: int) -> None:
    now = utcnow()
    await session.execute(
        sa.update(ApiToken)
        .where(
            ApiToken.id == token_id,
            sa.or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
    )
