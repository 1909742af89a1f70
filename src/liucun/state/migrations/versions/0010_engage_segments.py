"""engage: profiles, tags, segments and their membership history

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TABLES = (
    "engage_segment_refreshes",
    "engage_segment_state",
    "engage_segment_members",
    "engage_segments",
    "engage_tag_log",
    "engage_tags",
    "engage_profile_sync",
    "engage_attributes",
)


def _app_key() -> sa.Column[str]:
    return sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "engage_attributes",
        _app_key(),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("number", sa.Float, nullable=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_engage_attributes_name", "engage_attributes", ["app_id", "name"])
    op.create_table(
        "engage_profile_sync",
        _app_key(),
        sa.Column("received_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "engage_tags",
        _app_key(),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_engage_tags_user", "engage_tags", ["app_id", "user_id"])
    op.create_table(
        "engage_tag_log",
        sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_engage_tag_log_user", "engage_tag_log", ["app_id", "user_id"])
    op.create_table(
        "engage_segments",
        _app_key(),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "engage_segment_members",
        _app_key(),
        sa.Column("segment", sa.String(80), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_engage_segment_members_open",
        "engage_segment_members",
        ["app_id", "segment", "left_at", "user_id"],
    )
    op.create_table(
        "engage_segment_state",
        _app_key(),
        sa.Column("segment", sa.String(80), primary_key=True),
        sa.Column("as_of", sa.Date, nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size", sa.Integer, nullable=False),
    )
    op.create_table(
        "engage_segment_refreshes",
        sa.Column("refresh_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
        sa.Column("segment", sa.String(80), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("entered", sa.Integer, nullable=False),
        sa.Column("left", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_engage_segment_refreshes_segment",
        "engage_segment_refreshes",
        ["app_id", "segment", "refreshed_at"],
    )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
