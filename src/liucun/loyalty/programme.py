"""An app's loyalty programme as one request sees it: the app, its time zone, the loyalty rules
of the playbook in force and that playbook's revision (which every award records), and the
names of the coupons campaigns give (their templates live in the playbook's engage section)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from liucun.playbook.campaigns import campaign_coupon_templates
from liucun.playbook.loyalty import LoyaltyRules
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App


@dataclass(frozen=True)
class Programme:
    app_id: str
    tz: ZoneInfo
    rules: LoyaltyRules
    revision: int  # 0: the shipped default playbook
    # template → (zh, en) of the coupons campaigns give, so a member's coupon list names them
    campaign_coupons: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def day(self, moment: datetime) -> date:
        """The app-local calendar day of `moment` (an aware UTC time)."""
        return moment.astimezone(self.tz).date()

    def month(self, moment: datetime) -> str:
        """The app-local calendar month of `moment`, as `YYYY-MM`."""
        return moment.astimezone(self.tz).strftime("%Y-%m")

    def start_of(self, day: date) -> datetime:
        """The instant app-local `day` begins (midnight there), as an aware time."""
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)

    def month_bounds(self, moment: datetime) -> tuple[date, date]:
        """The first and last app-local days of `moment`'s month."""
        first = self.day(moment).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following - timedelta(days=1)


def programme_of(engine: sa.Engine, app: App) -> Programme:
    """`app`'s programme under the playbook in force now."""
    in_force = playbook_in_force(engine, app.app_id)
    playbook = in_force.playbook
    extra = campaign_coupon_templates(playbook.engage.campaigns, playbook.winback)
    return Programme(
        app.app_id,
        ZoneInfo(app.timezone),
        playbook.loyalty,
        in_force.revision,
        {t.name: (t.zh, t.en) for t in extra},
    )
