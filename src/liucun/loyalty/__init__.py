"""Loyalty: the points ledger, levels and benefits, member day, check-in, the monthly ladder,
coupons, the new-user pack, invites, group buys, help-unlocks, leaderboards and daily tasks."""
