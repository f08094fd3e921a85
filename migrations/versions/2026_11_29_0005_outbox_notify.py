"""PostgreSQL announces new outbox rows with NOTIFY, so other processes need not wait a poll.

Every process follows the outbox (its index replica and its subscribers). A
statement-level AFTER INSERT trigger sends ``NOTIFY knownfix_outbox``: a trigger
rather than a ``pg_notify`` call in the service code, because it catches every
writer (imports, scripts, a future service that forgets the call). PostgreSQL
delivers a notification only when its transaction commits and folds identical
ones within a transaction into one, so listeners wake once per committed write
and never before the rows are visible. The payload is empty: listeners read the
outbox itself, which stays the only record (a missed notification costs one poll
interval, nothing more).

SQLite has no NOTIFY: there, the processes of one host poll the outbox.

Written by hand (autogenerate does not see triggers).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION knownfix_outbox_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('knownfix_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION knownfix_outbox_notify()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS knownfix_outbox_notify()")
