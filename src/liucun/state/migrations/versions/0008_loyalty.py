"""loyalty: members, points journal and lots, rewards, levels, check-ins, coupons, social

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_signing_keys",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "loyalty_members",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("joined_day", sa.Date, nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("debt", sa.BigInteger, nullable=False),
        sa.Column("growth", sa.BigInteger, nullable=False),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("level_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level_reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invite_code", sa.String(16), nullable=False),
        sa.Column("paid_orders", sa.Integer, nullable=False),
        sa.UniqueConstraint("app_id", "invite_code", name="uq_loyalty_members_invite_code"),
    )
    op.create_table(
        "loyalty_operations",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "points_journal",
        sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("operation_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("debit", sa.String(16), nullable=False),
        sa.Column("credit", sa.String(16), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("lot_id", sa.Integer, nullable=True),
        sa.Column("rule", sa.String(60), nullable=True),
        sa.Column("playbook_revision", sa.Integer, nullable=True),
        sa.Column("event_id", sa.String(100), nullable=True),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_points_journal_member", "points_journal", ["app_id", "user_id", "entry_id"])
    op.create_index("ix_points_journal_app_time", "points_journal", ["app_id", "created_at"])
    op.create_index("ix_points_journal_order", "points_journal", ["app_id", "order_id"])
    op.create_table(
        "points_lots",
        sa.Column("lot_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_points_lots_member", "points_lots", ["app_id", "user_id", "remaining"])
    op.create_index("ix_points_lots_expiry", "points_lots", ["app_id", "expires_at"])
    op.create_table(
        "loyalty_budgets",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("budget", sa.String(100), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("used", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "loyalty_rewards",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("reward_key", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("coupon_id", sa.String(40), nullable=True),
        sa.Column("badge", sa.String(40), nullable=True),
        sa.Column("playbook_revision", sa.Integer, nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_loyalty_rewards_member", "loyalty_rewards", ["app_id", "user_id"])
    op.create_table(
        "growth_entries",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("entry_key", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("growth", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_growth_entries_member", "growth_entries", ["app_id", "user_id", "created_at"]
    )
    op.create_table(
        "level_changes",
        sa.Column("change_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("old_level", sa.String(40), nullable=False),
        sa.Column("new_level", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_level_changes_member", "level_changes", ["app_id", "user_id"])
    op.create_table(
        "checkins",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("streak", sa.Integer, nullable=False),
        sa.Column("makeup", sa.Boolean, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_checkins_app_day", "checkins", ["app_id", "day"])
    op.create_table(
        "visit_days",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("visits", sa.Integer, nullable=False),
    )
    op.create_table(
        "counted_events",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("event_id", sa.String(100), primary_key=True),
        sa.Column("counter", sa.String(60), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
    )
    op.create_index(
        "ix_counted_events_member", "counted_events", ["app_id", "user_id", "counter", "day"]
    )
    op.create_table(
        "coupon_stock",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("template", sa.String(40), primary_key=True),
        sa.Column("issued", sa.Integer, nullable=False),
        sa.Column("face_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "coupons",
        sa.Column("coupon_id", sa.String(40), primary_key=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("template", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value_fen", sa.BigInteger, nullable=True),
        sa.Column("min_spend_fen", sa.BigInteger, nullable=True),
        sa.Column("percent_off", sa.Float, nullable=True),
        sa.Column("max_discount_fen", sa.BigInteger, nullable=True),
        sa.Column("first_order_only", sa.Boolean, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("order_fen", sa.BigInteger, nullable=True),
        sa.Column("discount_fen", sa.BigInteger, nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("playbook_revision", sa.Integer, nullable=False),
        sa.UniqueConstraint("app_id", "code", name="uq_coupons_code"),
    )
    op.create_index("ix_coupons_expiry", "coupons", ["app_id", "status", "valid_until"])
    op.create_index("ix_coupons_member", "coupons", ["app_id", "user_id", "status"])
    op.create_table(
        "member_devices",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("device_id", sa.String(200), primary_key=True),
    )
    op.create_index("ix_member_devices_device", "member_devices", ["app_id", "device_id"])
    op.create_table(
        "invites",
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
        sa.Column("invitee", sa.String(200), primary_key=True),
        sa.Column("inviter", sa.String(200), nullable=False),
        sa.Column("device_id", sa.String(200), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewarded_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_invites_inviter", "invites", ["app_id", "inviter"])
    op.create_table(
        "social_goals",
        sa.Column("goal_id", sa.String(40), primary_key=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("offer", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("needed", sa.Integer, nullable=False),
        sa.Column("joined", sa.Integer, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("playbook_revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_social_goals_status", "social_goals", ["app_id", "status", "deadline"])
    op.create_table(
        "social_members",
        sa.Column(
            "goal_id", sa.String(40), sa.ForeignKey("social_goals.goal_id"), primary_key=True
        ),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("social_members")
    op.drop_table("social_goals")
    op.drop_table("invites")
    op.drop_table("member_devices")
    op.drop_table("coupons")
    op.drop_table("coupon_stock")
    op.drop_table("counted_events")
    op.drop_table("visit_days")
    op.drop_table("checkins")
    op.drop_table("level_changes")
    op.drop_table("growth_entries")
    op.drop_table("loyalty_rewards")
    op.drop_table("loyalty_budgets")
    op.drop_table("points_lots")
    op.drop_table("points_journal")
    op.drop_table("loyalty_operations")
    op.drop_table("loyalty_members")
    op.drop_table("app_signing_keys")
