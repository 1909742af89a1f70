"""pending reactions: batches whose loyalty reactions have not run yet

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_reactions",
        sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("trusted", sa.Boolean, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_pending_reactions_due", "pending_reactions", ["next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_pending_reactions_due", "pending_reactions")
    op.drop_table("pending_reactions")
