"""Who is asking. Every service function that reads or writes data takes one."""

from __future__ import annotations

import dataclasses

from knowledge.accounts.roles import Role
from knowledge.errors import PermissionDeniedError


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    user_id: int | None
    username: str
    role: Role
    token_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None and self.username == "anonymous"

    def can(self, role: Role) -> bool:
        return self.role.includes(role)

    def require(self, role: Role, action: str) -> None:
        """Refuse ``action`` unless this principal holds ``role`` or a higher one."""
        if not self.can(role):
            raise PermissionDeniedError(
                f"{action} requires the {role.value} role; you are {self.role.value}"
            )


ANONYMOUS_VIEWER = Principal(user_id=None, username="anonymous", role=Role.VIEWER)
# Operators at the command line hold the database itself; the CLI acts as this.
SYSTEM = Principal(user_id=None, username="system", role=Role.ADMIN)
