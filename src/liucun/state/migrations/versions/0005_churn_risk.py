"""churn-risk models and scores

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "churn_models",
        sa.Column("model_id", sa.String(32), primary_key=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("model", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_churn_models_app_trained", "churn_models", ["app_id", "trained_at"])
    op.create_table(
        "churn_scores",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("person_id", sa.String(200), primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("model_id", sa.String(32), nullable=False),
        sa.Column("risk", sa.Float, nullable=False),
        sa.Column("previous_risk", sa.Float, nullable=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("churn_scores")
    op.drop_index("ix_churn_models_app_trained", "churn_models")
    op.drop_table("churn_models")
