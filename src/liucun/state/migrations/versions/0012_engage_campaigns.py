"""engage: campaigns, holdout assignments, campaign actions and results

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(40), primary_key=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("flow", sa.String(40), nullable=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("holdout_share", sa.Float, nullable=False),
        sa.Column("conversion_event", sa.String(200), nullable=False),
        sa.Column("window_days", sa.Integer, nullable=False),
        sa.Column("starts_on", sa.Date, nullable=True),
        sa.Column("ends_on", sa.Date, nullable=True),
        sa.Column("budget_fen", sa.BigInteger, nullable=True),
        sa.Column("max_actions", sa.BigInteger, nullable=True),
        sa.Column("spent_fen", sa.BigInteger, nullable=False),
        sa.Column("actions", sa.BigInteger, nullable=False),
        sa.Column("last_run_day", sa.Date, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("app_id", "name", name="uq_campaigns_name"),
    )
    op.create_index("ix_campaigns_status", "campaigns", ["app_id", "status"])
    op.create_table(
        "campaign_assignments",
        sa.Column(
            "campaign_id",
            sa.String(40),
            sa.ForeignKey("campaigns.campaign_id"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("arm", sa.String(10), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_day", sa.Date, nullable=False),
    )
    op.create_index("ix_campaign_assignments_arm", "campaign_assignments", ["campaign_id", "arm"])
    op.create_table(
        "campaign_actions",
        sa.Column(
            "campaign_id",
            sa.String(40),
            sa.ForeignKey("campaigns.campaign_id"),
            primary_key=True,
        ),
        sa.Column("action_key", sa.String(200), primary_key=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(60), nullable=True),
        sa.Column("cost_fen", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_campaign_actions_user", "campaign_actions", ["app_id", "user_id"])
    op.create_index(
        "ix_campaign_actions_campaign_user", "campaign_actions", ["campaign_id", "user_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_actions_campaign_user", table_name="campaign_actions")
    op.drop_index("ix_campaign_actions_user", table_name="campaign_actions")
    op.drop_table("campaign_actions")
    op.drop_index("ix_campaign_assignments_arm", table_name="campaign_assignments")
    op.drop_table("campaign_assignments")
    op.drop_index("ix_campaigns_status", table_name="campaigns")
    op.drop_table("campaigns")
