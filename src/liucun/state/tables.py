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

# A trained churn-risk model: the fitted estimator (serialised) and how it was made.
churn_models = sa.Table(
    "churn_models",
    metadata,
    sa.Column("model_id", sa.String(32), primary_key=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
    # features as of this app-local day, labels from the `horizon_days` after it
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("horizon_days", sa.Integer, nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON list of feature names
    sa.Column("metrics", sa.Text, nullable=False),  # JSON: evaluation figures
    sa.Column("model", sa.LargeBinary, nullable=False),
    sa.Index("ix_churn_models_app_trained", "app_id", "trained_at"),
)

# Each person's latest churn-risk score; `previous_risk` is the score it replaced, so that
# "risk crossed a threshold" can be told from one row.
churn_scores = sa.Table(
    "churn_scores",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("person_id", sa.String(200), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("model_id", sa.String(32), nullable=False),
    sa.Column("risk", sa.Float, nullable=False),
    sa.Column("previous_risk", sa.Float, nullable=True),
    # JSON list of the features that push this person's risk up most:
    # [{"feature": ..., "zh": ..., "en": ..., "value": ..., "contribution": ...}, ...]
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
)

# --- alerts (issue 6; lifecycle/alerts) ---
