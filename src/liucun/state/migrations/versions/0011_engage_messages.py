"""engage: consent ledger, send credits, frequency caps, messages and deliveries

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _app() -> sa.Column[str]:
    return sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "engage_consents",
        sa.Column("consent_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("template_id", sa.String(128), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("keep_choice", sa.Boolean, nullable=False),
        sa.Column("subscription", sa.String(16), nullable=False),
        sa.Column("request_key", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_engage_consents_user", "engage_consents", ["app_id", "user_id", "consent_id"]
    )
    op.create_table(
        "engage_subscriptions",
        _app(),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("template_id", sa.String(128), primary_key=True),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("long_term", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("recipient", sa.String(200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "engage_consent_requests",
        _app(),
        sa.Column("request_key", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "engage_cap_counts",
        _app(),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("used", sa.Integer, nullable=False),
    )
    op.create_table(
        "engage_messages",
        _app(),
        sa.Column("message_key", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("scenario", sa.String(40), nullable=False),
        sa.Column("campaign_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("template_id", sa.String(128), nullable=True),
        sa.Column("recipient", sa.String(200), nullable=True),
        sa.Column("page", sa.String(500), nullable=True),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("credit", sa.String(10), nullable=True),
        sa.Column("cap_day", sa.String(10), nullable=True),
        sa.Column("cap_month", sa.String(10), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
    )
    op.create_index("ix_engage_messages_due", "engage_messages", ["app_id", "status", "send_after"])
    op.create_index("ix_engage_messages_user", "engage_messages", ["app_id", "user_id"])
    op.create_index("ix_engage_messages_campaign", "engage_messages", ["app_id", "campaign_id"])
    op.create_table(
        "engage_deliveries",
        sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("message_key", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("code", sa.String(80), nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
    )
    op.create_index("ix_engage_deliveries_message", "engage_deliveries", ["app_id", "message_key"])
    op.create_table(
        "engage_channel_accounts",
        _app(),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("secrets", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("access_token", sa.String(1000), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("engage_channel_accounts")
    op.drop_index("ix_engage_deliveries_message", "engage_deliveries")
    op.drop_table("engage_deliveries")
    for index in (
        "ix_engage_messages_campaign",
        "ix_engage_messages_user",
        "ix_engage_messages_due",
    ):
        op.drop_index(index, "engage_messages")
    op.drop_table("engage_messages")
    op.drop_table("engage_cap_counts")
    op.drop_table("engage_consent_requests")
    op.drop_table("engage_subscriptions")
    op.drop_index("ix_engage_consents_user", "engage_consents")
    op.drop_table("engage_consents")
