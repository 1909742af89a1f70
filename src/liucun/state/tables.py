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

# --- loyalty (issue 7; loyalty/) ---
# Amounts of money are integers in fen (0.01 yuan); points are integers.

# Secrets an app's own backend signs user tokens with (HS256); several may be live during a
# rotation, each named by `key_id` (the token's `kid`).
app_signing_keys = sa.Table(
    "app_signing_keys",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
)

# One row per member (a user the loyalty programme has seen). Its row is the lock that every
# write for the member takes first, so that a member's writes happen one at a time;
# `balance` and `debt` are kept with the journal in the same transaction.
loyalty_members = sa.Table(
    "loyalty_members",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("joined_day", sa.Date, nullable=False),  # app-local
    sa.Column("balance", sa.BigInteger, nullable=False),  # points: credits − debits
    sa.Column("debt", sa.BigInteger, nullable=False),  # points reversed beyond the balance
    sa.Column("growth", sa.BigInteger, nullable=False),  # growth value, lifetime
    sa.Column("level", sa.String(40), nullable=False),
    sa.Column("level_since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("level_reviewed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("invite_code", sa.String(16), nullable=False),
    sa.Column("paid_orders", sa.Integer, nullable=False),
    sa.UniqueConstraint("app_id", "invite_code", name="uq_loyalty_members_invite_code"),
)

# Every request that changed loyalty state, by its idempotency key: the same key again answers
# with `result` and changes nothing; a different request under a used key is refused.
loyalty_operations = sa.Table(
    "loyalty_operations",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of the request
    sa.Column("result", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The points journal: immutable, double entry. Each row moves `points` (> 0) from the `debit`
# account to the `credit` account; accounts are `member` (the user's balance) and the
# system accounts earned, spent, expired, adjusted and reversed. One operation may write
# several rows (a spend drawing on several lots).
points_journal = sa.Table(
    "points_journal",
    metadata,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("operation_key", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # earn spend expire reverse adjust
    sa.Column("debit", sa.String(16), nullable=False),
    sa.Column("credit", sa.String(16), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("lot_id", sa.Integer, nullable=True),
    sa.Column("rule", sa.String(60), nullable=True),
    sa.Column("playbook_revision", sa.Integer, nullable=True),
    sa.Column("event_id", sa.String(100), nullable=True),
    sa.Column("order_id", sa.String(200), nullable=True),
    sa.Column("amount_fen", sa.BigInteger, nullable=True),  # the sum an award was made from
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_points_journal_member", "app_id", "user_id", "entry_id"),
    sa.Index("ix_points_journal_order", "app_id", "order_id"),
    sa.Index("ix_points_journal_app_time", "app_id", "created_at"),
)

# What is left of each earning: spends draw on the lots that expire first; a lot past
# `expires_at` can no longer be spent, and the expiry writes its `remaining` off.
points_lots = sa.Table(
    "points_lots",
    metadata,
    sa.Column("lot_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),  # null: never
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("remaining", sa.BigInteger, nullable=False),
    sa.Index("ix_points_lots_member", "app_id", "user_id", "remaining"),
    sa.Index("ix_points_lots_expiry", "app_id", "expires_at"),
)

# Running totals that caps are checked against, raised only by a conditional update that holds
# the cap (a budget per rule or coupon template and period; `used` in points or fen).
loyalty_budgets = sa.Table(
    "loyalty_budgets",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("budget", sa.String(100), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),  # 2026-11, 2026-11-20 or all
    sa.Column("used", sa.BigInteger, nullable=False),
)

# Every reward granted (a ladder step, a check-in threshold, a task, the new-user pack, an
# invite, a group, a help): once per `reward_key`, with what it gave.
loyalty_rewards = sa.Table(
    "loyalty_rewards",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("reward_key", sa.String(200), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("coupon_id", sa.String(40), nullable=True),
    sa.Column("badge", sa.String(40), nullable=True),
    sa.Column("playbook_revision", sa.Integer, nullable=False),
    sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_loyalty_rewards_member", "app_id", "user_id"),
)

# Growth value (成长值) entries, once per key; levels follow their sum.
growth_entries = sa.Table(
    "growth_entries",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("entry_key", sa.String(200), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),  # spend active_day share adjust
    sa.Column("growth", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_growth_entries_member", "app_id", "user_id", "created_at"),
)

level_changes = sa.Table(
    "level_changes",
    metadata,
    sa.Column("change_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("old_level", sa.String(40), nullable=False),
    sa.Column("new_level", sa.String(40), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # upgrade | review
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_level_changes_member", "app_id", "user_id"),
)

# One check-in per member per app-local day; `streak` is the run of days ending on it.
checkins = sa.Table(
    "checkins",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("streak", sa.Integer, nullable=False),
    sa.Column("makeup", sa.Boolean, nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_checkins_app_day", "app_id", "day"),
)

# App-local days a member visited (the monthly ladder counts them), with the visits that day.
visit_days = sa.Table(
    "visit_days",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("visits", sa.Integer, nullable=False),
)

# Counted events, once each (the event id), for daily tasks and monthly action counts.
counted_events = sa.Table(
    "counted_events",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("counter", sa.String(60), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("day", sa.Date, nullable=False),  # app-local day of the event
    sa.Index("ix_counted_events_member", "app_id", "user_id", "counter", "day"),
)

# Coupons issued so far per template: the conditional update on this row holds the total limit.
coupon_stock = sa.Table(
    "coupon_stock",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("template", sa.String(40), primary_key=True),
    sa.Column("issued", sa.Integer, nullable=False),
    sa.Column("face_fen", sa.BigInteger, nullable=False),  # value issued, for the budget
)

# Issued coupons; terms are copied from the template so that a playbook change does not
# alter coupons already in users' hands.
coupons = sa.Table(
    "coupons",
    metadata,
    sa.Column("coupon_id", sa.String(40), primary_key=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("template", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # no_threshold spend_save discount
    sa.Column("value_fen", sa.BigInteger, nullable=True),
    sa.Column("min_spend_fen", sa.BigInteger, nullable=True),
    sa.Column("percent_off", sa.Float, nullable=True),
    sa.Column("max_discount_fen", sa.BigInteger, nullable=True),
    sa.Column("first_order_only", sa.Boolean, nullable=False),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # issued locked redeemed void
    sa.Column("source", sa.String(200), nullable=False),  # the operation that issued it
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("order_id", sa.String(200), nullable=True),
    sa.Column("order_fen", sa.BigInteger, nullable=True),
    sa.Column("discount_fen", sa.BigInteger, nullable=True),
    sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("playbook_revision", sa.Integer, nullable=False),
    sa.UniqueConstraint("app_id", "code", name="uq_coupons_code"),
    sa.Index("ix_coupons_member", "app_id", "user_id", "status"),
    sa.Index("ix_coupons_expiry", "app_id", "status", "valid_until"),
)

# Devices a member was seen on (the invite check refuses an invitee on the inviter's device).
member_devices = sa.Table(
    "member_devices",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("device_id", sa.String(200), primary_key=True),
    sa.Index("ix_member_devices_device", "app_id", "device_id"),
)

# Who invited whom: one inviter per invitee; `rewarded_at` once both sides got their reward.
invites = sa.Table(
    "invites",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("invitee", sa.String(200), primary_key=True),
    sa.Column("inviter", sa.String(200), nullable=False),
    sa.Column("device_id", sa.String(200), nullable=True),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rewarded_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_invites_inviter", "app_id", "inviter"),
)

# Group buys (拼团) and help-unlocks (助力): a goal of N people by a deadline.
social_goals = sa.Table(
    "social_goals",
    metadata,
    sa.Column("goal_id", sa.String(40), primary_key=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # group | help
    sa.Column("offer", sa.String(40), nullable=False),  # the playbook's offer or benefit
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("needed", sa.Integer, nullable=False),
    sa.Column("joined", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # open formed failed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("playbook_revision", sa.Integer, nullable=False),
    sa.Index("ix_social_goals_status", "app_id", "status", "deadline"),
)

social_members = sa.Table(
    "social_members",
    metadata,
    sa.Column("goal_id", sa.String(40), sa.ForeignKey("social_goals.goal_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
)

# --- reactions waiting to run (ingest hands batches to loyalty through this queue) ---

# A stored batch's events that loyalty rules react to, committed before ingest answers and
# drained in the background (loyalty/pending.py). `next_try_at` is when a drainer may claim
# it: now for a new batch, a lease while one runs it, a back-off after a failure.
pending_reactions = sa.Table(
    "pending_reactions",
    metadata,
    sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=True),
    # no foreign key: on SQLite the queue is in a file of its own (loyalty/pending.py)
    sa.Column("app_id", sa.String(32), nullable=False),
    sa.Column("trusted", sa.Boolean, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # JSON list, as loyalty_events reads them
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_pending_reactions_due", "next_try_at"),
)

# --- engage: campaigns, holdout assignments, campaign actions (issue 8; engage/campaigns.py) ---

# A campaign: its spec (target, action, schedule; playbook/campaigns.py CampaignSpec) as JSON,
# its status (draft active paused ended) and the running totals its budget is checked against,
# raised only by a conditional UPDATE that holds the budget (engage/campaigns.py).
campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("campaign_id", sa.String(40), primary_key=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("flow", sa.String(40), nullable=True),  # the playbook flow it was made from
    sa.Column("spec", sa.Text, nullable=False),  # JSON
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("holdout_share", sa.Float, nullable=False),
    sa.Column("conversion_event", sa.String(200), nullable=False),
    sa.Column("window_days", sa.Integer, nullable=False),
    sa.Column("starts_on", sa.Date, nullable=True),  # app-local, inclusive
    sa.Column("ends_on", sa.Date, nullable=True),  # app-local, inclusive
    sa.Column("budget_fen", sa.BigInteger, nullable=True),
    sa.Column("max_actions", sa.BigInteger, nullable=True),
    sa.Column("spent_fen", sa.BigInteger, nullable=False),
    sa.Column("actions", sa.BigInteger, nullable=False),
    sa.Column("last_run_day", sa.Date, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("app_id", "name", name="uq_campaigns_name"),
    sa.Index("ix_campaigns_status", "app_id", "status"),
)

# Each user's arm in a campaign, fixed the first time the campaign found the user eligible
# (global-control users are never assigned). Results compare the arms.
campaign_assignments = sa.Table(
    "campaign_assignments",
    metadata,
    sa.Column(
        "campaign_id", sa.String(40), sa.ForeignKey("campaigns.campaign_id"), primary_key=True
    ),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("arm", sa.String(10), nullable=False),  # treatment | holdout
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("assigned_day", sa.Date, nullable=False),  # app-local
    sa.Index("ix_campaign_assignments_arm", "campaign_id", "arm"),
)

# What a campaign did for a treatment user, once per `action_key` (the user, or the user and
# day for campaigns that repeat): done, refused (a loyalty limit, with the code) or the
# message's decision (queued held skipped); `cost_fen` is what it took from the budget.
campaign_actions = sa.Table(
    "campaign_actions",
    metadata,
    sa.Column(
        "campaign_id", sa.String(40), sa.ForeignKey("campaigns.campaign_id"), primary_key=True
    ),
    sa.Column("action_key", sa.String(200), primary_key=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("day", sa.Date, nullable=False),  # app-local
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("reason", sa.String(60), nullable=True),
    sa.Column("cost_fen", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: what each part of the action gave
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_campaign_actions_user", "app_id", "user_id"),
    sa.Index("ix_campaign_actions_campaign_user", "campaign_id", "user_id"),
)

# --- engage: consent, frequency caps, messages, channels (issue 8; engage/ consent, caps,
# --- sending, delivery, channels; migration 0011) ---

# The consent ledger: every answer a user gave to a subscribe prompt (wx/my
# .requestSubscribeMessage), one row per template, never changed.
engage_consents = sa.Table(
    "engage_consents",
    metadata,
    sa.Column("consent_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # wechat | alipay
    sa.Column("template_id", sa.String(128), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),  # accept | reject | ban | filter
    sa.Column("keep_choice", sa.Boolean, nullable=False),  # "always keep this choice" ticked
    sa.Column("subscription", sa.String(16), nullable=False),  # one_time | long_term
    sa.Column("request_key", sa.String(200), nullable=False),  # the request's Idempotency-Key
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_engage_consents_user", "app_id", "user_id", "consent_id"),
)

# What the ledger adds up to per user, channel and template: one-time send `credits` (one per
# accept, stacking), a long-term subscription, the latest stance. Its row is what a send
# decision locks and takes a credit from, so credits hold under concurrency.
engage_subscriptions = sa.Table(
    "engage_subscriptions",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("template_id", sa.String(128), primary_key=True),
    sa.Column("credits", sa.Integer, nullable=False),
    sa.Column("long_term", sa.Boolean, nullable=False),
    # accepted | rejected | always_rejected | banned | revoked (the platform answered 43101)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),  # accepts recorded in all
    sa.Column("recipient", sa.String(200), nullable=True),  # openid / Alipay user id
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Each consent request by its Idempotency-Key: the same key again answers `result`.
engage_consent_requests = sa.Table(
    "engage_consent_requests",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("request_key", sa.String(200), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("result", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Messages counted against each user's frequency caps, per app-local day (`YYYY-MM-DD`) and
# month (`YYYY-MM`), over all campaigns; raised only while the user's rows are locked.
engage_cap_counts = sa.Table(
    "engage_cap_counts",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("used", sa.Integer, nullable=False),
)

# Every send decision, once per message key: queued (due at `send_after`), held (quiet hours,
# due when they end), skipped (with `reason`), then sending, sent, refused (the platform says
# the user has no credit or unsubscribed) or failed (with `reason`).
engage_messages = sa.Table(
    "engage_messages",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
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
    sa.Column("data", sa.Text, nullable=True),  # JSON: the template fields, filled in
    sa.Column("credit", sa.String(10), nullable=True),  # one_time | long_term | none
    sa.Column("cap_day", sa.String(10), nullable=True),  # the cap periods it counts in
    sa.Column("cap_month", sa.String(10), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("send_after", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Index("ix_engage_messages_due", "app_id", "status", "send_after"),
    sa.Index("ix_engage_messages_user", "app_id", "user_id"),
    sa.Index("ix_engage_messages_campaign", "app_id", "campaign_id"),
)

# The delivery log: every attempt to hand a message to its channel, with what came back.
engage_deliveries = sa.Table(
    "engage_deliveries",
    metadata,
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("message_key", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(12), nullable=False),  # sent retry refused failed
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.Column("code", sa.String(80), nullable=True),  # WeChat errcode; Alipay code/sub_code
    sa.Column("latency_ms", sa.Integer, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Index("ix_engage_deliveries_message", "app_id", "message_key"),
)

# An app's account on each channel: `settings` (JSON, shown) and `secrets` (JSON, never
# shown: the WeChat app secret, the Alipay private key, the webhook secret); the cached WeChat
# access token that every server shares (fetching a new one ends the old one's life).
engage_channel_accounts = sa.Table(
    "engage_channel_accounts",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("secrets", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("access_token", sa.String(1000), nullable=True),
    sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
)

# --- engage: profiles, tags, segments (issue 8; engage/profiles, tags, segments) ---

# Profile attributes of identified users, one row per (user, name): the latest value sent in a
# `$set` (events) or imported. `text`/`number` hold the value for set-based comparisons;
# `value` is its JSON. `updated_at` is the value's time (the event's, or the import's): an
# older value never replaces a newer one.
engage_attributes = sa.Table(
    "engage_attributes",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # text number bool list object
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("number", sa.Float, nullable=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
    sa.Column("source", sa.String(16), nullable=False),  # event | import
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_engage_attributes_name", "app_id", "name"),
)

# How far `$set` events have been read into the attributes (by receive time).
engage_profile_sync = sa.Table(
    "engage_profile_sync",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("received_to", sa.DateTime(timezone=True), nullable=False),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
)

# The tags users carry now: manual ones (added by an operator) and rule tags (the job keeps
# them equal to their rule's members).
engage_tags = sa.Table(
    "engage_tags",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(8), nullable=False),  # manual | rule
    sa.Column("added_by", sa.String(200), nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_engage_tags_user", "app_id", "user_id"),
)

# Every manual tag added or removed: who, when and why.
engage_tag_log = sa.Table(
    "engage_tag_log",
    metadata,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("tag", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),  # add | remove
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("note", sa.String(500), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_engage_tag_log_user", "app_id", "user_id"),
)

# Segments an operator saved (the playbook's named segments are read from the playbook; a
# saved one of the same name takes its place).
engage_segments = sa.Table(
    "engage_segments",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("rule", sa.Text, nullable=False),  # canonical JSON
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Membership spells: a user entered a segment (or a rule tag, as `tag:NAME`) at `entered_at`
# and left at `left_at` (null: still a member). Current members are the open spells.
engage_segment_members = sa.Table(
    "engage_segment_members",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("segment", sa.String(80), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("entered_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
    # the open spells of a segment, and one user's open spell, straight from the index
    sa.Index("ix_engage_segment_members_open", "app_id", "segment", "left_at", "user_id"),
)

# One row per segment: the lock a refresh takes, and what the last refresh found.
engage_segment_state = sa.Table(
    "engage_segment_state",
    metadata,
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), primary_key=True),
    sa.Column("segment", sa.String(80), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=True),
    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
)

# The refresh log: each refresh's day, size, and how many entered and left.
engage_segment_refreshes = sa.Table(
    "engage_segment_refreshes",
    metadata,
    sa.Column("refresh_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app_id", sa.String(32), sa.ForeignKey("apps.app_id"), nullable=False),
    sa.Column("segment", sa.String(80), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rule", sa.Text, nullable=False),  # the rule evaluated (canonical JSON)
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("entered", sa.Integer, nullable=False),
    sa.Column("left", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Index("ix_engage_segment_refreshes_segment", "app_id", "segment", "refreshed_at"),
)
