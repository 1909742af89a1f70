"""saved funnels

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_funnels",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("steps", sa.String(2000), nullable=False),
        sa.Column("window", sa.String(16), nullable=False),
        sa.Column("step_order", sa.String(16), nullable=False),
        sa.Column("breakdown", sa.String(100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("saved_funnels")
