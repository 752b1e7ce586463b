"""One early-warning job per alert: a unique index on the title of the ``warning`` jobs.

The coordinator looked a job up by its title (``Early warning: observables of alert N``) and
created one when none was found, in two statements: a scheduler that lost its duty lease while
stalled and the new holder could both find none and both create one, and every unit would be
searched twice. The partial unique index makes the second insert fail; the coordinator then
takes the first one's job (vedette.server.warning_tasks). Jobs made twice before this
migration keep their rows: all but the newest (the one the coordinator used) are renamed.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision: str | None = "0018"
branch_labels = None
depends_on = None

_WHERE = "kind = 'warning'"


def upgrade() -> None:
    """Rename older duplicates, then create ``uq_retrohunts_warning_title``."""
    op.execute(
        "UPDATE retrohunts SET title = title || ' (duplicate ' || CAST(id AS VARCHAR(20)) || ')'"
        " WHERE kind = 'warning' AND id < (SELECT max(r.id) FROM retrohunts r"
        " WHERE r.kind = 'warning' AND r.title = retrohunts.title)"
    )
    op.create_index(
        "uq_retrohunts_warning_title",
        "retrohunts",
        ["title"],
        unique=True,
        sqlite_where=sa.text(_WHERE),
        postgresql_where=sa.text(_WHERE),
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("uq_retrohunts_warning_title", table_name="retrohunts")
