"""Roles are ordered: each one can do everything the roles below it can."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    VIEWER = "viewer"
    REPORTER = "reporter"
    RESPONDER = "responder"
    KNOWLEDGE_MANAGER = "knowledge_manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """Whether a holder of this role may do what ``other`` may do."""
        return self.rank >= other.rank

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower().replace("-", "_"))
        except ValueError:
            allowed = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {value!r}; expected one of {allowed}") from None


_RANKS = {role: rank for rank, role in enumerate(Role)}
