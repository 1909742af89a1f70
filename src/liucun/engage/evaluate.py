"""Evaluating a segment rule over all of an app's users at once.

Each condition becomes a boolean mask over the universe (`traits.Universe`); `all`, `any` and
`not` combine masks. An event condition is one SQL aggregate on the event store (the store's
dialect: DuckDB or ClickHouse) counting each person's matching events in the window; traits
and attributes are columns compared with NumPy/Arrow. Nothing loops over users in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from liucun.engage.profiles import attribute_columns, sync_attributes
from liucun.engage.segment_rules import (
    TRAITS,
    AllCondition,
    AnyCondition,
    AttributeCondition,
    EventCondition,
    LabelCondition,
    NotCondition,
    Ops,
    Rule,
    TagCondition,
    TraitCondition,
    rule_text,
    walk,
)
from liucun.engage.traits import Mask, Numbers, Traits, Universe, day_bounds, load_universe
from liucun.state.tables import engage_tags
from liucun.warehouse.queries import event_person, event_person_join
from liucun.warehouse.store import EventStore

_NUMERIC = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}
_TEXTUAL = {"gt": pc.greater, "gte": pc.greater_equal, "lt": pc.less, "lte": pc.less_equal}


def _number_mask(values: Numbers, ops: dict[str, Any]) -> Mask:
    present = ~np.isnan(values)
    if ops.get("exists") is False:
        return ~present
    mask = present.copy()
    with np.errstate(invalid="ignore"):
        for op, v in ops.items():
            if op == "in":
                mask &= np.isin(values, np.array(v, dtype=np.float64))
            elif op == "eq":
                mask &= values == v
            elif op == "ne":
                mask &= values != v
            elif op in _NUMERIC:
                mask &= _NUMERIC[op](values, v)
    return mask


def _text_mask(values: pa.Array, ops: dict[str, Any]) -> Mask:
    present = np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)
    if ops.get("exists") is False:
        return ~present
    mask = present.copy()

    def holds(result: Any) -> Mask:
        return np.asarray(result.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)

    for op, v in ops.items():
        if op == "eq":
            mask &= holds(pc.equal(values, v))
        elif op == "ne":
            mask &= holds(pc.not_equal(values, v))
        elif op == "in":
            mask &= holds(pc.is_in(values, value_set=pa.array([str(x) for x in v], pa.string())))
        elif op == "contains":
            mask &= holds(pc.match_substring(values, str(v)))
        elif op in _TEXTUAL:
            mask &= holds(_TEXTUAL[op](values, str(v)))
    return mask


def _attribute_mask(n: int, at: np.ndarray, table: pa.Table, ops: dict[str, Any]) -> Mask:
    """The users whose attribute value satisfies `ops` (docs/segments.md#attributes)."""
    keep = at >= 0
    at, table = at[keep], table.filter(pa.array(keep))
    kind = np.asarray(table.column("kind").to_numpy(zero_copy_only=False), dtype=object)
    text = table.column("text").combine_chunks()
    number = np.asarray(
        table.column("number").fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    present = kind != "null"
    if ops.get("exists") is False:
        mask = np.ones(n, dtype=bool)
        mask[at[present]] = False
        return mask
    rows = present.copy()
    for op, v in ops.items():
        if op != "exists":
            rows &= _attribute_op(op, v, kind, text, number, table)
    mask = np.zeros(n, dtype=bool)
    mask[at[rows]] = True
    return mask


def _equal(v: Any, kind: np.ndarray, text: pa.Array, number: np.ndarray) -> Mask:
    if isinstance(v, bool):
        return (kind == "bool") & _holds(pc.equal(text, "true" if v else "false"))
    if isinstance(v, int | float):
        return (kind == "number") & (number == v)
    return (kind == "text") & _holds(pc.equal(text, v))


def _holds(result: Any) -> Mask:
    return np.asarray(result.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _attribute_op(
    op: str, v: Any, kind: np.ndarray, text: pa.Array, number: np.ndarray, table: pa.Table
) -> Mask:
    if op == "eq":
        return _equal(v, kind, text, number)
    if op == "ne":
        return ~_equal(v, kind, text, number)
    if op == "in":
        out = np.zeros(len(kind), dtype=bool)
        for item in v:
            out |= _equal(item, kind, text, number)
        return out
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(v, str):
            return (kind == "text") & _holds(_TEXTUAL[op](text, v))
        with np.errstate(invalid="ignore"):
            return (kind == "number") & _NUMERIC[op](number, v)
    # contains: a substring of text, an element of a list
    out = np.zeros(len(kind), dtype=bool)
    if isinstance(v, str):
        out |= (kind == "text") & _holds(pc.match_substring(text, v))
    lists = np.flatnonzero(kind == "list")
    if len(lists):
        values = table.column("value").take(pa.array(lists)).to_pylist()
        for i, raw in zip(lists.tolist(), values, strict=True):
            items = orjson.loads(raw)
            out[i] = any(type(x) is type(v) and x == v for x in items)
    return out


def _event_sql(store: EventStore, cond: EventCondition) -> tuple[str, dict[str, Any]]:
    """(person_key, n): each person's events matching `cond` in its window."""
    d = store.dialect
    params: dict[str, Any] = {"event": cond.event}
    where = [
        f"e.app_id = {d.param('app')}",
        f"e.event = {d.param('event')}",
        f"e.ts < {d.param('end')}",
    ]
    if cond.within_days is not None:
        where.append(f"e.ts >= {d.param('start')}")
    if cond.where is not None and cond.where.page is not None:
        where.append(f"e.page = {d.param('page')}")
        params["page"] = cond.where.page
    if cond.where is not None and cond.where.properties:
        for i, (key, value) in enumerate(sorted(cond.where.properties.items())):
            text = d.json_text("e.properties", key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                # a number matches the values that read as it: 3, 3.0 and "3" alike
                where.append(f"{d.try_double(text)} = {d.param(f'prop{i}')}")
                params[f"prop{i}"] = float(value)
                continue
            where.append(f"{text} = {d.param(f'prop{i}')}")
            params[f"prop{i}"] = (
                ("true" if value else "false") if isinstance(value, bool) else value
            )
    sql = f"""
    SELECT {event_person()} AS person_key, count(*) AS n
    FROM events e {event_person_join(d, d.param("app"))}
    WHERE {" AND ".join(where)}
    GROUP BY {event_person()}"""
    return sql, params


@dataclass
class Evaluator:
    """Masks of a rule's conditions over the app's users as of `as_of` (memoised per rule node)."""

    store: EventStore
    engine: sa.Engine
    app_id: str
    tz: str
    as_of: date
    rfm_days: int
    traits: Traits = field(init=False)
    _memo: dict[str, Mask] = field(default_factory=dict)

    def __post_init__(self) -> None:
        universe = load_universe(self.store, self.engine, self.app_id, self.as_of, self.tz)
        self.traits = Traits(
            self.store, self.engine, self.app_id, self.tz, self.as_of, self.rfm_days, universe
        )

    @property
    def universe(self) -> Universe:
        return self.traits.universe

    def forget(self) -> None:
        """Evaluate conditions afresh (the users and traits stay): tags have changed."""
        self._memo.clear()

    def mask(self, rule: Rule) -> Mask:
        key = rule_text(rule)
        if key not in self._memo:
            self._memo[key] = self._compute(rule)
        return self._memo[key]

    def _compute(self, rule: Rule) -> Mask:
        n = len(self.universe)
        if isinstance(rule, AllCondition):
            out = np.ones(n, dtype=bool)
            for c in rule.all:
                out &= self.mask(c)
            return out
        if isinstance(rule, AnyCondition):
            out = np.zeros(n, dtype=bool)
            for c in rule.any:
                out |= self.mask(c)
            return out
        if isinstance(rule, NotCondition):
            return ~self.mask(rule.not_)
        if isinstance(rule, TraitCondition):
            return self._trait(rule)
        if isinstance(rule, LabelCondition):
            return self.traits.label_mask(rule.labels)
        if isinstance(rule, TagCondition):
            return self._tag(rule.tag)
        if isinstance(rule, AttributeCondition):
            table = attribute_columns(self.engine, self.app_id, rule.attribute)
            at = self.universe.index_of(table.column("user_id"))
            return _attribute_mask(n, at, table, _ops(rule))
        assert isinstance(rule, EventCondition)
        return self._event(rule)

    def _trait(self, rule: TraitCondition) -> Mask:
        if TRAITS[rule.trait][0] == "text":
            return _text_mask(self.traits.text(rule.trait), _ops(rule))
        return _number_mask(self.traits.numbers(rule.trait), _ops(rule))

    def _tag(self, tag: str) -> Mask:
        t = engage_tags
        with self.engine.connect() as conn:
            users = conn.execute(
                sa.select(t.c.user_id).where(t.c.app_id == self.app_id, t.c.tag == tag)
            ).scalars()
            return self.universe.mask_of(pa.array(list(users), pa.string()))

    def _event(self, cond: EventCondition) -> Mask:
        sql, params = _event_sql(self.store, cond)
        first = self.as_of - timedelta(days=(cond.within_days or 1) - 1)
        params.update(app=self.app_id, start=day_bounds(first, self.tz)[0])
        params["end"] = day_bounds(self.as_of, self.tz)[1]
        rows = self.store.query(sql, params)
        at = self.universe.index_of_keys(rows.column("person_key").to_numpy().astype(np.int64))
        counts = np.zeros(len(self.universe), dtype=np.int64)
        keep = at >= 0
        counts[at[keep]] = rows.column("n").to_numpy().astype(np.int64)[keep]
        low, high = cond.bounds
        mask = counts >= low
        if high is not None:
            mask &= counts <= high
        return mask


def _ops(rule: Ops) -> dict[str, Any]:
    return rule.ops()


def uses_attributes(rule: Rule) -> bool:
    return any(isinstance(c, AttributeCondition) for c in walk(rule))


def evaluator(
    store: EventStore, engine: sa.Engine, app_id: str, tz: str, as_of: date, rfm_days: int
) -> Evaluator:
    return Evaluator(store, engine, app_id, tz, as_of, rfm_days)


def matching_users(ev: Evaluator, rule: Rule, sync_now: Any = None) -> list[str]:
    """The sorted user ids the rule selects."""
    if sync_now is not None and uses_attributes(rule):
        sync_attributes(ev.store, ev.engine, ev.app_id, sync_now)
    mask = ev.mask(rule)
    selected: list[str] = ev.universe.users.filter(pa.array(mask)).to_pylist()
    return selected
