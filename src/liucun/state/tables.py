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

# Every playbook text an operator put in force for an app, numbered 1, 2, … per app; the newest
# that still validates is in force (playbook/store.py), none: the shipped default.
playbook_revisions = sa.Table(
    "playbook_revisions",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),  # of the UTF-8 text
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)

# --- lifecycle labels (issue 6; lifecycle/labels) ---

# The history of each person's lifecycle label: one row per change, on the first labelled day
# that the new label held. The label on day D is the latest row with day <= D.
lifecycle_labels = sa.Table(
    "lifecycle_labels",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("person_id", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("previous", sa.String(16), nullable=True),
    # the depth signals that held for the person that day (comma-separated names)
    sa.Column("signals", sa.String(500), nullable=False),
    sa.Column("playbook_revision", sa.Integer, nullable=False),
    sa.Index("ix_lifecycle_labels_app_day", "app_id", "day"),
)

# The days labelled, under which playbook revision, and the count of persons per label.
lifecycle_days = sa.Table(
    "lifecycle_days",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("playbook_revision", sa.Integer, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),  # JSON {label: persons}
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
)

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

# Alerts the early-warning rules raised; one row per (app, kind, subject, period), so that a
# rule checked again, or by two processes at once, stores its alert once.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),  # app | user
    sa.Column("subject", sa.String(200), nullable=False),  # person id, '' for the app
    sa.Column("period", sa.String(100), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("figures", sa.Text, nullable=False),  # JSON object
    sa.Column("title_zh", sa.Text, nullable=False),
    sa.Column("title_en", sa.Text, nullable=False),
    sa.Column("action_zh", sa.Text, nullable=False),
    sa.Column("action_en", sa.Text, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),  # the day checked when it fired
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
    # the webhook's Idempotency-Key: the same on every attempt and every retrying run
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("delivery", sa.String(16), nullable=False),  # pending|delivered|failed|off
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.UniqueConstraint("app_id", "kind", "subject", "period", name="uq_alerts_once"),
    sa.Index("ix_alerts_app_delivery", "app_id", "delivery"),
)

# Every attempt to POST an alert to the webhook, with what came back.
alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.alert_id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # delivered | retry | failed
    sa.Index("ix_alert_deliveries_alert", "alert_id"),
)

# --- scheduled jobs (schedule/) ---

# One row per (app, job, app-local day) run: its primary key is the claim that lets exactly
# one of several servers run it.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("job", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # running, done, failed
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: what each step did
)
