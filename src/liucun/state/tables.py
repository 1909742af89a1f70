"""State-store tables (SQLAlchemy Core). Alembic migrations in `migrations/` create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

apps = sa.Table(
    "apps",
    metadata,
    sa.Column("app_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    # The write key is public (it ships inside the mini-program), so it is stored as is.
    sa.Column("write_key", sa.String(64), nullable=False, unique=True),
    # Admin tokens are secrets: only their SHA-256 is kept.
    sa.Column("admin_token_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Funnels an operator saved under a name, such as the seeds' key path (browse → order → pay).
saved_funnels = sa.Table(
    "saved_funnels",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("steps", sa.String(2000), nullable=False),
    sa.Column("window", sa.String(16), nullable=False),
    sa.Column("step_order", sa.String(16), nullable=False),
    sa.Column("breakdown", sa.String(100), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# --- playbook revisions (issue 6; playbook/) ---

# --- lifecycle labels (issue 6; lifecycle/labels) ---

# --- churn-risk models and scores (issue 6; lifecycle/risk) ---

# --- alerts (issue 6; lifecycle/alerts) ---
