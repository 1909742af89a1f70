"""Scheduled jobs: the daily run of each app (labels, churn-risk scores, alerts) and who runs it."""
