from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.catalog.types import ServiceType
from api.context import Context
from api.relay import Node, node_type, to_global_id
from knowledge.known_errors.models import KnownError, KnownErrorStatus

if TYPE_CHECKING:
    from api.articles.types import ArticleType

KnownErrorStatusEnum = strawberry.enum(KnownErrorStatus, name="KnownErrorStatus")


@node_type
@strawberry.type(name="KnownError", description="A documented root cause with a workaround.")
class KnownErrorType(Node):
    row: strawberry.Private[KnownError]

    @classmethod
    def from_model(cls, row: KnownError) -> KnownErrorType:
        return cls(id=to_global_id("KnownError", row.id), row=row)

    @strawberry.field(description="The human key, e.g. KE-0001.")
    def key(self) -> str:
        return self.row.key

    @strawberry.field
    def title(self) -> str:
        return self.row.title

    @strawberry.field
    def symptoms(self) -> str:
        return self.row.symptoms

    @strawberry.field
    def root_cause(self) -> str:
        return self.row.root_cause

    @strawberry.field
    def workaround(self) -> str:
        return self.row.workaround

    @strawberry.field
    def permanent_fix(self) -> str:
        return self.row.permanent_fix

    @strawberry.field
    def status(self) -> KnownErrorStatusEnum:  # type: ignore[valid-type]
        return self.row.status

    @strawberry.field
    def category(self) -> str | None:
        return self.row.category

    @strawberry.field
    def error_signatures(self) -> list[str]:
        return [str(s) for s in self.row.error_signatures]

    @strawberry.field
    def version(self) -> int:
        return self.row.version

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> dt.datetime:
        return self.row.updated_at

    @strawberry.field
    async def services(self, info: strawberry.Info[Context]) -> list[ServiceType]:
        rows = await info.context.loaders.services_of_known_error.load(self.row.id)
        return [ServiceType.from_model(s) for s in rows]

    @strawberry.field(description="Articles documenting this known error that you may read.")
    async def articles(
        self, info: strawberry.Info[Context]
    ) -> list[Annotated[ArticleType, strawberry.lazy("api.articles.types")]]:
        from api.articles.types import ArticleType

        rows = await info.context.loaders.articles_of_known_error.load(self.row.id)
        return [ArticleType.from_model(a) for a in rows]
