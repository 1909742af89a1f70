"""Lifecycle and churn: labels, churn risk, BG/NBD, early warning, win-back lists."""
