"""lifecycle labels and their history

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lifecycle_labels",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("person_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("previous", sa.String(16), nullable=True),
        sa.Column("signals", sa.String(500), nullable=False),
        sa.Column("playbook_revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_lifecycle_labels_app_day", "lifecycle_labels", ["app_id", "day"])
    op.create_table(
        "lifecycle_days",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("playbook_revision", sa.Integer, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lifecycle_days")
    op.drop_index("ix_lifecycle_labels_app_day", "lifecycle_labels")
    op.drop_table("lifecycle_labels")
