"""The loyalty programme at a glance, for the operator: points, check-ins, the ladder, coupons.

Definitions (docs/loyalty.md#overview), over app-local days `first`..`last`:
- points per day, from the journal (created_at cut at the app's local midnights): `issued`
  is what members earned (kind `earn`), `spent` what they spent, `expired` what lapsed,
  `reversed` what refunds took back, `adjusted` the net of operators' adjustments (credits to
  members minus debits);
- check-ins per day (make-ups counted on the day they made up, as the check-in table keys
  them) and how many of them were make-ups;
- the ladder of `last`'s month: members per progress (visit days or visits, as the playbook's
  `ladder.counts` says) and, per step, the members whose progress reached it;
- coupons issued in the span (by `issued_at`), and of those how many are redeemed now, still
  locked on an order, void, or unused past their last usable instant (`expired`).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.levels import level_distribution, utc_span
from liucun.loyalty.programme import Programme
from liucun.state.tables import checkins, coupons, points_journal, visit_days

MAX_DAYS = 92
POINT_KINDS = ("issued", "spent", "expired", "reversed", "adjusted")


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _points_of_day(conn: sa.Connection, prog: Programme, day: date) -> dict[str, int]:
    j = points_journal.c
    start, end = utc_span(prog, day, day)
    rows = conn.execute(
        sa.select(j.kind, j.credit, sa.func.sum(j.points))
        .where(j.app_id == prog.app_id, j.created_at >= start, j.created_at < end)
        .group_by(j.kind, j.credit)
    ).all()
    out = dict.fromkeys(POINT_KINDS, 0)
    for kind, credit, points in rows:
        n = int(points or 0)
        to_member = credit == "member"
        if kind == "earn":
            out["issued"] += n
        elif kind == "spend":
            out["spent"] += n
        elif kind == "expire":
            out["expired"] += n
        elif kind == "reverse":
            out["reversed"] += n
        elif kind == "adjust":
            out["adjusted"] += n if to_member else -n
    return out


def _checkins(conn: sa.Connection, prog: Programme, first: date, last: date) -> dict[date, Any]:
    c = checkins.c
    rows = conn.execute(
        sa.select(c.day, c.makeup, sa.func.count())
        .where(c.app_id == prog.app_id, c.day >= first, c.day <= last)
        .group_by(c.day, c.makeup)
    ).all()
    out: dict[date, dict[str, int]] = {}
    for day, makeup, n in rows:
        entry = out.setdefault(day, {"checkins": 0, "makeups": 0})
        entry["checkins"] += int(n)
        if makeup:
            entry["makeups"] += int(n)
    return out


def ladder_overview(conn: sa.Connection, prog: Programme, day: date) -> dict[str, Any]:
    """Members per ladder progress in `day`'s month and the members who reached each step."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    v = visit_days.c
    ladder = prog.rules.ladder
    measure = sa.func.count() if ladder.counts == "visit_days" else sa.func.sum(v.visits)
    per_member = (
        sa.select(measure.label("progress"))
        .where(v.app_id == prog.app_id, v.day >= first, v.day < following)
        .group_by(v.user_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(per_member.c.progress, sa.func.count()).group_by(per_member.c.progress)
    ).all()
    by_progress = Counter({int(p): int(n) for p, n in rows})
    return {
        "month": first.isoformat()[:7],
        "counts": ladder.counts,
        "members": sum(by_progress.values()),
        "progress": [{"progress": p, "members": by_progress[p]} for p in sorted(by_progress)],
        "steps": [
            {
                "visit": step.visit,
                "zh": step.zh,
                "en": step.en,
                "reached": sum(n for p, n in by_progress.items() if p >= step.visit),
            }
            for step in ladder.steps
        ],
    }


def coupon_funnel(
    conn: sa.Connection, prog: Programme, first: date, last: date, now: datetime
) -> dict[str, Any]:
    """Coupons issued in the span and what became of them, overall and per template."""
    c = coupons.c
    start, end = utc_span(prog, first, last)
    lapsed = sa.func.coalesce(sa.func.sum(sa.case((c.valid_until <= now, 1), else_=0)), 0)
    rows = conn.execute(
        sa.select(c.template, c.status, sa.func.count(), lapsed)
        .where(c.app_id == prog.app_id, c.issued_at >= start, c.issued_at < end)
        .group_by(c.template, c.status)
    ).all()
    stages = ("issued", "redeemed", "locked", "void", "expired", "unused")
    templates: dict[str, dict[str, int]] = {}
    for template, status, n, past_end in rows:
        t = templates.setdefault(template, dict.fromkeys(stages, 0))
        t["issued"] += int(n)
        if status == "issued":  # not used: past its last usable instant, or still usable
            t["expired"] += int(past_end)
            t["unused"] += int(n) - int(past_end)
        elif status in t:
            t[status] += int(n)
    total = {s: sum(t[s] for t in templates.values()) for s in stages}
    return {
        **total,
        "templates": [{"template": name, **templates[name]} for name in sorted(templates)],
    }


def loyalty_overview(
    engine: sa.Engine, prog: Programme, first: date, last: date, now: datetime
) -> dict[str, Any]:
    """Points, check-ins, ladder, coupons and levels of the programme (module docstring)."""
    if first > last:
        raise ValueError(f"`from` {first} is after `to` {last}")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days at a time; narrow `from`/`to`")
    with engine.connect() as conn:
        checked = _checkins(conn, prog, first, last)
        days = [
            {
                "day": d.isoformat(),
                **_points_of_day(conn, prog, d),
                **checked.get(d, {"checkins": 0, "makeups": 0}),
            }
            for d in _days(first, last)
        ]
        ladder = ladder_overview(conn, prog, last)
        funnel = coupon_funnel(conn, prog, first, last, now)
    totals = {k: sum(d[k] for d in days) for k in (*POINT_KINDS, "checkins", "makeups")}
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": days,
        "totals": totals,
        "ladder": ladder,
        "coupons": funnel,
        "levels": level_distribution(engine, prog),
    }
