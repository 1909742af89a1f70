"""Computed traits of every identified user as of an app-local day, as columns (NumPy/Arrow)
over the app's users, for set-based segment evaluation.

Users (the segment universe) are the identified users known by day D: the `user_id`s of the
app's events up to the end of D, users whose creation time was imported (created by D), and
users with profile attributes or tags. A user's activity is their person's (docs/events.md
#identity): anonymous events linked to them count.

Traits (docs/segments.md#traits), as of D:
- `days_inactive`: D − the last day with any event (none when no event by D);
- `age_days`: D − the first day: the imported creation day when it is not after D, else the
  day of the first event (lifecycle's first day; 0 on that day);
- `visits_7d`, `visits_30d`: `app_open` events in the last 7 / 30 days up to D; `active_days_30d`
  the days with any event among them;
- `orders_total`, `amount_total`: `order_paid` events and their amount, ever up to D;
- `rfm_*`, `r`, `f`, `m`, `rfm_value`: the win-back list's RFM (lifecycle/winback.py), over
  the playbook's `winback.rfm_days`: quintiles among every person active in the window, R, F
  and M 1 each for a person not active in it;
- `lifecycle_label`: the label on D (lifecycle_labels); `churn_risk` and `churn_reason`: the
  latest churn score and its first reason's feature; `level` and `points`: the loyalty member's
  level and balance (no level, 0 points for a user who is not a member).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from liucun.engage.profiles import attribute_users
from liucun.engage.segment_rules import TRAITS
from liucun.lifecycle.winback import quintile_scores
from liucun.state.tables import churn_scores, engage_tags, loyalty_members
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.queries import person_days_sql
from liucun.warehouse.store import EventStore

Mask = npt.NDArray[np.bool_]
Numbers = npt.NDArray[np.float64]


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants at which app-local `day` starts and the next day starts."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


@dataclass(frozen=True)
class Universe:
    """The users a rule is evaluated over: sorted, with their person keys."""

    users: pa.Array  # string, sorted, unique
    keys: npt.NDArray[np.int64]
    _order: npt.NDArray[np.int64]  # argsort of keys

    @classmethod
    def of(cls, users: pa.Array, keys: pa.Array | None = None) -> Universe:
        """The universe of `users` (repeats and nulls dropped); `keys` are their person keys
        when known (each user's `id_key`), computed otherwise."""
        table = pa.table(
            {"user": users, "key": keys if keys is not None else pa.nulls(len(users), pa.int64())}
        )
        table = table.filter(pc.is_valid(table.column("user")))
        order = [("user", "ascending"), ("key", "ascending", "at_end")]
        table = table.take(pc.sort_indices(table, order))
        user = table.column("user").combine_chunks()
        first = np.ones(len(user), dtype=bool)
        if len(user) > 1:
            first[1:] = np.asarray(pc.not_equal(user[1:], user[:-1]).to_numpy(zero_copy_only=False))
        table = table.filter(pa.array(first))
        user = table.column("user").combine_chunks()
        known = table.column("key").combine_chunks()
        missing = np.flatnonzero(np.asarray(pc.is_null(known).to_numpy(zero_copy_only=False)))
        key_array = np.array(known.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        if len(missing):
            computed = id_keys(user.take(pa.array(missing)))
            key_array[missing] = np.asarray(computed.to_numpy(zero_copy_only=False))
        return cls(user, key_array, np.argsort(key_array, kind="stable"))

    def __len__(self) -> int:
        return len(self.users)

    def index_of(self, ids: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
        """Each id's position among the users, -1 where it is not one."""
        found = pc.index_in(ids, value_set=self.users)
        return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)

    def index_of_keys(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each person key's user position, -1 where the person is no user."""
        if len(self) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        sorted_keys = self.keys[self._order]
        at = np.minimum(np.searchsorted(sorted_keys, keys), len(self) - 1)
        hit = sorted_keys[at] == keys
        return np.where(hit, self._order[at], -1)

    def mask_of(self, ids: pa.Array | pa.ChunkedArray) -> Mask:
        """True for the users among `ids`."""
        mask = np.zeros(len(self), dtype=bool)
        at = self.index_of(ids)
        mask[at[at >= 0]] = True
        return mask


def load_universe(
    store: EventStore, engine: sa.Engine, app_id: str, as_of: date, tz: str
) -> Universe:
    """The app's identified users known by the end of `as_of` (module docstring)."""
    d = store.dialect
    _, end = day_bounds(as_of, tz)
    params = {"app": app_id, "end": end}
    # an event sent under a user id has that id as its distinct id: its key is the user's
    seen = store.query(
        f"SELECT DISTINCT user_id, distinct_key AS user_key FROM events "
        f"WHERE app_id = {d.param('app')} AND user_id IS NOT NULL AND ts < {d.param('end')}",
        params,
    )
    created = store.query(
        f"SELECT DISTINCT user_id, user_key FROM user_created WHERE app_id = {d.param('app')} "
        f"AND created_at < {d.param('end')}",
        params,
    )
    state = attribute_users(engine, app_id) + _tagged_users(engine, app_id)
    users = [seen.column("user_id"), created.column("user_id"), pa.array(state, pa.string())]
    keys = [
        seen.column("user_key"),
        created.column("user_key"),
        pa.nulls(len(state), pa.int64()),
    ]
    return Universe.of(_flat(users, pa.string()), _flat(keys, pa.int64()))


def _flat(parts: list[Any], kind: pa.DataType) -> pa.Array:
    chunks: list[pa.Array] = []
    for part in parts:
        chunks += part.chunks if isinstance(part, pa.ChunkedArray) else [part]
    return pa.concat_arrays([c.cast(kind) for c in chunks]) if chunks else pa.array([], kind)


def _tagged_users(engine: sa.Engine, app_id: str) -> list[str]:
    t = engage_tags
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(t.c.user_id).where(t.c.app_id == app_id).distinct()).scalars()
        )


def _activity_sql(store: EventStore, tz: str) -> str:
    d = store.dialect
    p = d.param

    def since(param: str, value: str = "1") -> str:
        return f"sum(CASE WHEN pd.day >= {p(param)} THEN {value} ELSE 0 END)"

    return f"""
    WITH pd AS (
        SELECT * FROM ({person_days_sql(d, p("app"))}) x WHERE day <= {p("as_of")}
    )
    SELECT pd.person_id AS person_key, min(pd.day) AS first_day, max(pd.day) AS last_day,
           {since("d7", "pd.visits")} AS visits_7d, {since("d30", "pd.visits")} AS visits_30d,
           {since("d30")} AS active_days_30d,
           sum(pd.orders) AS orders_total, sum(pd.amount) AS amount_total,
           {since("rfm_from")} AS rfm_active_days, {since("rfm_from", "pd.orders")} AS rfm_orders,
           {since("rfm_from", "pd.amount")} AS rfm_amount
    FROM pd GROUP BY pd.person_id"""


def _created_sql(store: EventStore, tz: str) -> str:
    d = store.dialect
    day = d.local_date("created_at", d.quote(tz))
    return (
        f"SELECT user_key, min({day}) AS created_day FROM user_created "
        f"WHERE app_id = {d.param('app')} GROUP BY user_key"
    )


def fetch_columns(
    target: sa.Engine | sa.Connection, sql: str, params: dict[str, Any], width: int
) -> list[list[Any]]:
    """The columns of a state-store query's rows, read through the driver's own cursor:
    hundreds of thousands of rows, where SQLAlchemy's row objects cost several times the
    query. `sql` names each parameter once, as `{name}`; on a connection, the query runs in
    its transaction."""
    if isinstance(target, sa.Engine):
        with target.connect() as conn:
            return fetch_columns(conn, sql, params, width)
    names = sorted(params, key=lambda n: sql.index("{" + n + "}"))
    args: Any
    if target.dialect.paramstyle == "qmark":  # SQLite; SQLAlchemy keeps its dates as ISO text
        text = sql.format(**{n: "?" for n in names})
        args = tuple(v.isoformat() if isinstance(v, date) else v for v in map(params.get, names))
    else:  # psycopg's pyformat
        text = sql.format(**{n: f"%({n})s" for n in names})
        args = params
    cursor = target.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(text, args)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if width == 1:
        return [[r[0] for r in rows]]
    if not rows:
        return [[] for _ in range(width)]
    return [list(c) for c in zip(*rows, strict=True)]


def _day_numbers(column: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    """Days since 1970-01-01, NaN where null."""
    days = column.cast(pa.date32()).cast(pa.int32())
    return np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.float64)


def _numbers(column: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _epoch_day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


@dataclass
class Traits:
    """Trait columns over a universe, computed on first use (module docstring)."""

    store: EventStore
    engine: sa.Engine
    app_id: str
    tz: str
    as_of: date
    rfm_days: int
    universe: Universe
    _columns: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> Numbers | pa.Array:
        """A number trait as floats (NaN: none), a text trait as an Arrow string array."""
        if name not in self._columns:
            if name in ("lifecycle_label",):
                self._columns[name] = self._labels()
            elif name in ("churn_risk", "churn_reason"):
                self._columns.update(self._churn())
            elif name in ("level", "points"):
                self._columns.update(self._loyalty())
            elif name in TRAITS:
                self._columns.update(self._activity())
            else:
                raise KeyError(f"no trait {name!r}")
        value: Numbers | pa.Array = self._columns[name]
        return value

    def numbers(self, name: str) -> Numbers:
        value = self.column(name)
        assert isinstance(value, np.ndarray), name
        return value

    def text(self, name: str) -> pa.Array:
        value = self.column(name)
        assert isinstance(value, pa.Array), name
        return value

    def _place(self, at: npt.NDArray[np.int64], values: Any, fill: float) -> Numbers:
        out = np.full(len(self.universe), fill, dtype=np.float64)
        keep = at >= 0
        out[at[keep]] = np.asarray(values, dtype=np.float64)[keep]
        return out

    def _activity(self) -> dict[str, Numbers]:
        as_of = self.as_of
        params = {
            "app": self.app_id,
            "as_of": as_of,
            "d7": as_of - timedelta(days=6),
            "d30": as_of - timedelta(days=29),
            "rfm_from": as_of - timedelta(days=self.rfm_days - 1),
        }
        rows = self.store.query(_activity_sql(self.store, self.tz), params)
        keys = rows.column("person_key").to_numpy().astype(np.int64)
        at = self.universe.index_of_keys(keys)
        today = _epoch_day(as_of)
        last = _day_numbers(rows.column("last_day"))
        out = {
            name: self._place(at, _numbers(rows.column(name)), 0.0)
            for name in (
                "visits_7d",
                "visits_30d",
                "active_days_30d",
                "orders_total",
                "amount_total",
                "rfm_active_days",
                "rfm_orders",
                "rfm_amount",
            )
        }
        out["days_inactive"] = self._place(at, today - last, np.nan)
        out["age_days"] = self._ages(at, _day_numbers(rows.column("first_day")), today)
        out.update(self._rfm(at, today - last, rows))
        return out

    def _ages(
        self, at: npt.NDArray[np.int64], first: Numbers, today: int
    ) -> npt.NDArray[np.float64]:
        first_day = self._place(at, first, np.nan)
        created = self.store.query(_created_sql(self.store, self.tz), {"app": self.app_id})
        created_at = self.universe.index_of_keys(
            created.column("user_key").to_numpy().astype(np.int64)
        )
        created_day = self._place(created_at, _day_numbers(created.column("created_day")), np.nan)
        use_created = ~np.isnan(created_day) & (created_day <= today)
        return today - np.where(use_created, created_day, first_day)

    def _rfm(self, at: npt.NDArray[np.int64], since: Numbers, rows: pa.Table) -> dict[str, Numbers]:
        # scored among every person (anonymous ones too), as the win-back list scores them
        days = _numbers(rows.column("rfm_active_days"))
        money = _numbers(rows.column("rfm_amount"))
        active = days > 0
        r = np.where(active, 6 - quintile_scores(since, since[active]), 1)
        f = np.where(active, quintile_scores(days, days[active]), 1)
        m = np.where(active, quintile_scores(money, money[active]), 1)
        return {
            "r": self._place(at, r, 1.0),
            "f": self._place(at, f, 1.0),
            "m": self._place(at, m, 1.0),
            "rfm_value": self._place(at, r + f + m, 3.0),
        }

    def _labels(self) -> pa.Array:
        # every transition up to the day, the latest of each person kept by Arrow: the state
        # store only filters (a latest-per-person join there takes several times as long)
        persons, days, labels = fetch_columns(
            self.engine,
            "SELECT person_id, day, label FROM lifecycle_labels WHERE app_id = {app} "
            "AND day <= {day}",
            {"app": self.app_id, "day": self.as_of},
            3,
        )
        day_text = pa.array(days)
        if not pa.types.is_string(day_text.type):  # PostgreSQL gives dates, SQLite text
            day_text = day_text.cast(pa.string())
        table = pa.table({"p": pa.array(persons, pa.string()), "d": day_text})
        table = table.append_column("l", pa.array(labels, pa.string()))
        table = table.take(pc.sort_indices(table, [("p", "ascending"), ("d", "ascending")]))
        person = table.column("p").combine_chunks()
        last = np.ones(len(person), dtype=bool)
        if len(person) > 1:
            different = pc.not_equal(person[:-1], person[1:])
            last[:-1] = np.asarray(different.to_numpy(zero_copy_only=False))
        table = table.filter(pa.array(last))
        return self._text(table.column("p"), table.column("l").to_pylist())

    def label_mask(self, labels: list[str]) -> Mask:
        """The users whose label on the as-of day is one of `labels`: the state store picks
        each person's latest label and sends only the matching persons."""
        wanted = ", ".join(f"{{label{i}}}" for i in range(len(labels)))
        if self.engine.dialect.name == "sqlite":
            # SQLite gives a bare column the value of the row that max() picked
            latest = (
                "SELECT person_id, label, max(day) FROM lifecycle_labels "
                "WHERE app_id = {app} AND day <= {day} GROUP BY person_id"
            )
        else:
            latest = (
                "SELECT DISTINCT ON (person_id) person_id, label FROM lifecycle_labels "
                "WHERE app_id = {app} AND day <= {day} ORDER BY person_id, day DESC"
            )
        params: dict[str, Any] = {"app": self.app_id, "day": self.as_of}
        params.update({f"label{i}": label for i, label in enumerate(labels)})
        (persons,) = fetch_columns(
            self.engine,
            f"SELECT person_id FROM ({latest}) latest WHERE label IN ({wanted})",
            params,
            1,
        )
        return self.universe.mask_of(pa.array(persons, pa.string()))

    def _text(self, users: Any, values: list[Any]) -> pa.Array:
        ids = (
            users if isinstance(users, pa.Array | pa.ChunkedArray) else pa.array(users, pa.string())
        )
        at = self.universe.index_of(ids)
        keep = at >= 0
        out = np.full(len(self.universe), None, dtype=object)
        out[at[keep]] = np.asarray(values, dtype=object)[keep]
        return pa.array(out, pa.string())

    def _churn(self) -> dict[str, Any]:
        t = churn_scores
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.person_id, t.c.risk, t.c.reasons).where(t.c.app_id == self.app_id)
            ).all()
        users = [r[0] for r in rows]
        at = self.universe.index_of(pa.array(users, pa.string()))
        return {
            "churn_risk": self._place(at, [r[1] for r in rows], np.nan),
            "churn_reason": self._text(users, [_first_reason(r[2]) for r in rows]),
        }

    def _loyalty(self) -> dict[str, Any]:
        t = loyalty_members
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.user_id, t.c.level, t.c.balance).where(t.c.app_id == self.app_id)
            ).all()
        users = [r[0] for r in rows]
        at = self.universe.index_of(pa.array(users, pa.string()))
        return {
            "level": self._text(users, [r[1] for r in rows]),
            "points": self._place(at, [r[2] for r in rows], 0.0),
        }

    def of_user(self, i: int) -> dict[str, Any]:
        """Every trait of the user at position `i` (None where it has no value)."""
        out: dict[str, Any] = {}
        for name, (kind, _, _) in TRAITS.items():
            if kind == "text":
                out[name] = self.text(name)[i].as_py()
            else:
                value = float(self.numbers(name)[i])
                out[name] = None if np.isnan(value) else _plain(name, value)
        return out


def _plain(name: str, value: float) -> float | int:
    if name in ("churn_risk", "amount_total", "rfm_amount"):
        return round(value, 6) if name == "churn_risk" else round(value, 2)
    return int(value)


def _first_reason(reasons: str | None) -> str | None:
    try:
        items = json.loads(reasons) if reasons else []
    except ValueError:
        return None
    if items and isinstance(items[0], dict) and items[0].get("feature") is not None:
        return str(items[0]["feature"])
    return None
