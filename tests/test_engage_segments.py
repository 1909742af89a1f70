"""Profiles, tags and segments (docs/segments.md).

Segment evaluation is checked against a plain-Python reference written from the definitions:
hypothesis draws users, events (anonymous ones linked by identify too), attributes, tags,
labels, churn scores and loyalty members, and a rule; the reference walks the rule one user at
a time over the raw events. It runs on both event stores (DuckDB, the ClickHouse engine) and
both state stores (SQLite, PostgreSQL). Then: rule validation messages, refresh history (who
entered and left), the playbook defaults, the admin API and the CLI.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from liucun.engage.profiles import import_attributes
from liucun.engage.segment_rules import (
    RuleError,
    parse_rule,
    rule_from_text,
    rule_json,
)
from liucun.engage.segments import (
    evaluate_rule,
    member_spells,
    refresh_log,
    refresh_segment,
    save_segment,
    segment_members,
)
from liucun.engage.tags import add_tag, remove_tag, tag_log, user_tags
from liucun.lifecycle.winback import person_rfm, rfm_scores
from liucun.state.apps import App
from liucun.state.tables import (
    apps,
    churn_scores,
    engage_attributes,
    engage_profile_sync,
    engage_segment_members,
    engage_segment_refreshes,
    engage_segment_state,
    engage_segments,
    engage_tag_log,
    engage_tags,
    lifecycle_labels,
    loyalty_members,
)
from tests.reference_stores import APP, ENGINES, events_store

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
START = date(2026, 3, 1)  # app-local day 0 of the drawn events
DAYS = 40
NOW = datetime(2026, 5, 1, tzinfo=UTC)
USERS = [f"u{i}" for i in range(6)]
DEVICES = ["d0", "d1", "d2"]
EVENTS = ["app_open", "page_view", "order_paid", "share"]
CITIES = ["上海", "北京", "广州"]
TAGS = ["vip", "staff"]
LABELS = ["new", "active", "silent", "churned"]
LEVELS = ["bronze", "silver", "gold"]


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    event: str
    ts: datetime
    user: str | None = None
    anon: str | None = None
    sku: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def raw(self) -> dict[str, Any]:
        e: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "ts": self.ts.isoformat(),
        }
        if self.user is not None:
            e["user_id"] = self.user
        if self.anon is not None:
            e["anonymous_id"] = self.anon
        props: dict[str, Any] = {}
        if self.event == "page_view":
            e["page"] = "pages/home" if self.sku != "B" else "pages/cart"
        if self.event == "order_paid":
            e["amount"] = "19.90"
            props["order_id"] = f"o-{self.event_id}"
        if self.sku is not None:
            props["sku"] = self.sku
        if props:
            e["properties"] = props
        return e

    def day(self) -> date:
        return self.ts.astimezone(ZONE).date()


@st.composite
def events(draw: st.DrawFn) -> list[Ev]:
    out = []
    for _ in range(draw(st.integers(1, 30))):
        day = draw(st.integers(0, DAYS - 1))
        minute = draw(st.integers(0, 24 * 60 - 1))
        local = datetime.combine(START + timedelta(days=day), datetime.min.time(), ZONE)
        ts = (local + timedelta(minutes=minute)).astimezone(UTC)
        anonymous = draw(st.booleans()) and draw(st.booleans())
        who = draw(st.sampled_from(DEVICES if anonymous else USERS))
        name = draw(st.sampled_from(EVENTS))
        sku = draw(st.sampled_from([None, "A", "B"]))
        out.append(Ev(name, ts, None if anonymous else who, who if anonymous else None, sku))
    for device in DEVICES:  # some devices log in later (or earlier): their events are the user's
        if draw(st.booleans()):
            day = draw(st.integers(0, DAYS - 1))
            ts = datetime.combine(START + timedelta(days=day), datetime.min.time(), UTC)
            out.append(Ev("identify", ts, draw(st.sampled_from(USERS)), device))
    return out


# --------------------------------------------------------------------------- state


@dataclass
class World:
    events: list[Ev]
    attributes: dict[str, dict[str, Any]]
    tags: dict[str, set[str]]
    labels: list[tuple[str, date, str]]
    risks: dict[str, tuple[float, str]]
    members: dict[str, tuple[str, int]]
    as_of: date


@st.composite
def worlds(draw: st.DrawFn) -> World:
    attributes: dict[str, dict[str, Any]] = {}
    for user in draw(st.lists(st.sampled_from([*USERS, "imported"]), unique=True, max_size=4)):
        attributes[user] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "city": st.sampled_from(CITIES),
                    "age": st.integers(10, 60),
                    "vip": st.booleans(),
                    "interests": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
                },
            )
        )
        attributes[user] = attributes[user] or {"city": "上海"}
    tags = {t: set(draw(st.lists(st.sampled_from(USERS), max_size=3))) for t in TAGS}
    labels = [
        (draw(st.sampled_from(USERS)), START + timedelta(days=draw(st.integers(0, DAYS))), label)
        for label in draw(st.lists(st.sampled_from(LABELS), max_size=6))
    ]
    risks = {
        u: (draw(st.floats(0, 1).map(lambda x: round(x, 3))), draw(st.sampled_from(["f1", "f2"])))
        for u in draw(st.lists(st.sampled_from(USERS), unique=True, max_size=3))
    }
    members = {
        u: (draw(st.sampled_from(LEVELS)), draw(st.integers(0, 500)))
        for u in draw(st.lists(st.sampled_from(USERS), unique=True, max_size=3))
    }
    as_of = START + timedelta(days=draw(st.integers(0, DAYS + 5)))
    return World(draw(events()), attributes, tags, labels, risks, members, as_of)


def _ops(kind: str, scale: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "number":
        n = st.integers(0, 20).map(lambda x: x * scale)
        return st.one_of(
            st.fixed_dictionaries({"gte": n}),
            st.fixed_dictionaries({"lt": n}),
            st.fixed_dictionaries({"eq": n}),
            st.fixed_dictionaries({"ne": n}),
            st.fixed_dictionaries({"in": st.lists(n, min_size=1, max_size=3)}),
            st.fixed_dictionaries({"gt": n, "lte": n}),
            st.fixed_dictionaries({"exists": st.booleans()}),
        )
    word = st.sampled_from(CITIES + LABELS + LEVELS + ["f1", "a", "上"])
    return st.one_of(
        st.fixed_dictionaries({"eq": word}),
        st.fixed_dictionaries({"ne": word}),
        st.fixed_dictionaries({"in": st.lists(word, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"contains": word}),
        st.fixed_dictionaries({"exists": st.booleans()}),
    )


NUMBER_TRAITS = [
    "days_inactive",
    "age_days",
    "visits_7d",
    "visits_30d",
    "active_days_30d",
    "orders_total",
    "rfm_orders",
    "rfm_active_days",
    "r",
    "f",
    "m",
    "rfm_value",
    "points",
]
TEXT_TRAITS = ["lifecycle_label", "churn_reason", "level"]


def leaves() -> st.SearchStrategy[dict[str, Any]]:
    number_trait = st.sampled_from(NUMBER_TRAITS).flatmap(
        lambda t: _ops("number").map(lambda o: {"trait": t, **o})
    )
    text_trait = st.sampled_from(TEXT_TRAITS).flatmap(
        lambda t: _ops("text").map(lambda o: {"trait": t, **o})
    )
    risk = st.fixed_dictionaries({"trait": st.just("churn_risk"), "gte": st.floats(0, 1)})
    attribute = st.one_of(
        _ops("text").map(lambda o: {"attribute": "city", **o}),
        _ops("number", 3).map(lambda o: {"attribute": "age", **o}),
        st.fixed_dictionaries({"attribute": st.just("vip"), "eq": st.booleans()}),
        st.fixed_dictionaries(
            {"attribute": st.just("interests"), "contains": st.sampled_from("ab")}
        ),
        st.fixed_dictionaries({"attribute": st.just("nothing"), "exists": st.booleans()}),
    )
    event = st.fixed_dictionaries(
        {"event": st.sampled_from(EVENTS)},
        optional={
            "within_days": st.integers(1, 20),
            "at_least": st.integers(0, 3),
            "at_most": st.integers(3, 5),
            "where": st.one_of(
                st.fixed_dictionaries({"properties": st.just({"sku": "A"})}),
                st.fixed_dictionaries({"page": st.just("pages/home")}),
            ),
        },
    )
    label = st.one_of(
        st.sampled_from(LABELS).map(lambda x: {"label": x}),
        st.lists(st.sampled_from(LABELS), min_size=1, max_size=2).map(lambda x: {"label": x}),
    )
    tag = st.sampled_from(TAGS).map(lambda x: {"tag": x})
    return st.one_of(number_trait, text_trait, risk, attribute, event, label, tag)


rules = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
        inner.map(lambda c: {"not": c}),
    ),
    max_leaves=4,
)


# --------------------------------------------------------------------------- reference


def _links(world: World) -> dict[str, str]:
    links: dict[str, str] = {}
    for e in sorted(world.events, key=lambda e: e.ts):
        if e.event == "identify" and e.anon is not None and e.user is not None:
            links.setdefault(e.anon, e.user)
    return links


def _person(e: Ev, links: dict[str, str]) -> str:
    distinct = e.user if e.user is not None else e.anon
    assert distinct is not None
    return links.get(distinct, distinct)


def ref_universe(world: World) -> list[str]:
    seen = {e.user for e in world.events if e.user is not None and e.day() <= world.as_of}
    tagged = {u for users in world.tags.values() for u in users}
    return sorted(seen | set(world.attributes) | tagged)


def ref_traits(world: World, user: str, rfm: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    links = _links(world)
    mine = [e for e in world.events if _person(e, links) == user and e.day() <= world.as_of]
    days = [e.day() for e in mine]
    d = world.as_of

    def within(e: Ev, n: int) -> bool:
        return (d - e.day()).days < n

    label = None
    for person, day, value in sorted(world.labels, key=lambda x: x[1]):
        if person == user and day <= d:
            label = value
    risk = world.risks.get(user)
    member = world.members.get(user)
    r, f, m = rfm.get(user, (1, 1, 1))
    return {
        "days_inactive": (d - max(days)).days if days else None,
        "age_days": (d - min(days)).days if days else None,
        "visits_7d": sum(1 for e in mine if e.event == "app_open" and within(e, 7)),
        "visits_30d": sum(1 for e in mine if e.event == "app_open" and within(e, 30)),
        "active_days_30d": len({e.day() for e in mine if within(e, 30)}),
        "orders_total": sum(1 for e in mine if e.event == "order_paid"),
        "rfm_orders": sum(1 for e in mine if e.event == "order_paid" and within(e, 365)),
        "rfm_active_days": len({e.day() for e in mine if within(e, 365)}),
        "r": r,
        "f": f,
        "m": m,
        "rfm_value": r + f + m,
        "points": member[1] if member else 0,
        "lifecycle_label": label,
        "churn_reason": risk[1] if risk else None,
        "churn_risk": risk[0] if risk else None,
        "level": member[0] if member else None,
    }


def ref_ops(value: Any, ops: dict[str, Any]) -> bool:
    if "exists" in ops and ops["exists"] is False:
        return value is None
    if value is None:
        return False

    def same(a: Any, b: Any) -> bool:
        # a number is not true/false, as JSON keeps them apart
        return type(a) is type(b) or (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and not isinstance(a, bool)
            and not isinstance(b, bool)
        )

    for op, v in ops.items():
        if op == "eq" and not (same(value, v) and value == v):
            return False
        if op == "ne" and same(value, v) and value == v:
            return False
        if op == "in" and not any(same(value, x) and value == x for x in v):
            return False
        if op == "contains":
            if isinstance(value, str):
                if not (isinstance(v, str) and v in value):
                    return False
            elif isinstance(value, list):
                if not any(same(x, v) and x == v for x in value):
                    return False
            else:
                return False
        if op in ("gt", "gte", "lt", "lte"):
            if not same(value, v) or isinstance(value, bool | list | dict):
                return False
            holds = {"gt": value > v, "gte": value >= v, "lt": value < v, "lte": value <= v}[op]
            if not holds:
                return False
    return True


def ref_event_count(world: World, user: str, cond: dict[str, Any]) -> int:
    links = _links(world)
    n = 0
    for e in world.events:
        if _person(e, links) != user or e.event != cond["event"] or e.day() > world.as_of:
            continue
        if "within_days" in cond and (world.as_of - e.day()).days >= cond["within_days"]:
            continue
        where = cond.get("where", {})
        if "properties" in where and e.sku != where["properties"]["sku"]:
            continue
        if "page" in where and (e.event != "page_view" or e.sku == "B"):
            continue
        n += 1
    return n


def ref_holds(world: World, user: str, rule: dict[str, Any], traits: dict[str, Any]) -> bool:
    if "all" in rule:
        return all(ref_holds(world, user, c, traits) for c in rule["all"])
    if "any" in rule:
        return any(ref_holds(world, user, c, traits) for c in rule["any"])
    if "not" in rule:
        return not ref_holds(world, user, rule["not"], traits)
    ops = {k: v for k, v in rule.items() if k not in ("trait", "attribute")}
    if "trait" in rule:
        return ref_ops(traits[rule["trait"]], ops)
    if "attribute" in rule:
        return ref_ops(world.attributes.get(user, {}).get(rule["attribute"]), ops)
    if "label" in rule:
        wanted = rule["label"] if isinstance(rule["label"], list) else [rule["label"]]
        return traits["lifecycle_label"] in wanted
    if "tag" in rule:
        return user in world.tags[rule["tag"]]
    n = ref_event_count(world, user, rule)
    low = rule.get("at_least", 0 if "at_most" in rule else 1)
    return n >= low and ("at_most" not in rule or n <= rule["at_most"])


# --------------------------------------------------------------------------- fixtures


def _clear(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in (
            engage_attributes,
            engage_profile_sync,
            engage_tags,
            engage_tag_log,
            engage_segments,
            engage_segment_members,
            engage_segment_state,
            engage_segment_refreshes,
            lifecycle_labels,
            churn_scores,
            loyalty_members,
        ):
            conn.execute(table.delete().where(table.c.app_id == APP))


@pytest.fixture
def app1(engine: sa.Engine) -> App:
    """The state store's app whose id is the reference stores' app id."""
    with engine.begin() as conn:
        conn.execute(
            apps.insert().values(
                app_id=APP,
                name="app one",
                timezone=TZ,
                write_key="wk_" + uuid.uuid4().hex,
                admin_token_sha256=uuid.uuid4().hex,
                created_at=NOW,
            )
        )
    return App(APP, "app one", TZ, "wk")


def _seed(engine: sa.Engine, world: World) -> None:
    _clear(engine)
    rows = [{"user_id": u, "attributes": a} for u, a in world.attributes.items()]
    assert import_attributes(engine, APP, rows, NOW).rejected == []
    for tag, users in world.tags.items():
        for u in users:
            add_tag(engine, APP, u, tag, "tester", NOW, set())
    with engine.begin() as conn:
        seen: set[tuple[str, date]] = set()
        for person, day, label in world.labels:
            if (person, day) in seen:
                continue
            seen.add((person, day))
            conn.execute(
                lifecycle_labels.insert().values(
                    app_id=APP,
                    person_id=person,
                    day=day,
                    label=label,
                    previous=None,
                    signals="",
                    playbook_revision=0,
                )
            )
        for u, (risk, reason) in world.risks.items():
            conn.execute(
                churn_scores.insert().values(
                    app_id=APP,
                    person_id=u,
                    as_of=world.as_of,
                    model_id="m",
                    risk=risk,
                    previous_risk=None,
                    reasons=json.dumps([{"feature": reason, "zh": reason, "en": reason}]),
                    scored_at=NOW,
                )
            )
        for i, (u, (level, points)) in enumerate(world.members.items()):
            conn.execute(
                loyalty_members.insert().values(
                    app_id=APP,
                    user_id=u,
                    joined_at=NOW,
                    joined_day=NOW.date(),
                    balance=points,
                    debt=0,
                    growth=0,
                    level=level,
                    level_since=NOW,
                    level_reviewed_at=NOW,
                    invite_code=f"CODE{i}",
                    paid_orders=0,
                )
            )


BOUNDED = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


@pytest.mark.parametrize("store_engine", ENGINES)
@BOUNDED
@given(world=worlds(), rule=rules)
def test_evaluation_matches_reference(
    store_engine: str, engine: sa.Engine, app1: App, world: World, rule: dict[str, Any]
) -> None:
    note(f"rule: {rule}")
    _seed(engine, world)
    with events_store(store_engine, [world.events], TZ) as store:
        got = evaluate_rule(store, engine, app1, parse_rule(rule), world.as_of)
        rfm = rfm_scores(person_rfm(store, APP, world.as_of, 365), world.as_of)
    want = []
    for user in ref_universe(world):
        if ref_holds(world, user, rule, ref_traits(world, user, rfm)):
            want.append(user)
    assert got == want


@dataclass(frozen=True)
class PropEvent:
    user: str
    properties: dict[str, Any]
    ts: datetime = datetime(2026, 3, 1, 4, tzinfo=UTC)

    def raw(self) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"prop-{self.user}")),
            "event": "add_to_cart",
            "user_id": self.user,
            "ts": self.ts.isoformat(),
            "properties": self.properties,
        }


@pytest.mark.parametrize("store_engine", ENGINES)
def test_event_property_numbers_compare_as_numbers(
    store_engine: str, engine: sa.Engine, app1: App
) -> None:
    """A number in a rule matches every value the app sends that reads as it; a text value
    matches that text, a whole JSON number reading as ClickHouse writes it (3.0 as "3")."""
    _clear(engine)
    sent = {"int": 3, "float": 3.0, "text": "3", "padded": "3.00", "other": 4, "word": "three"}
    events = [PropEvent(user, {"qty": v}) for user, v in sent.items()]
    events.append(PropEvent("absent", {}))
    as_of = date(2026, 3, 2)

    def matching(value: Any) -> list[str]:
        rule = parse_rule({"event": "add_to_cart", "where": {"properties": {"qty": value}}})
        return sorted(evaluate_rule(store, engine, app1, rule, as_of))

    with events_store(store_engine, [events], TZ) as store:
        assert matching(3) == ["float", "int", "padded", "text"]
        assert matching("3") == ["float", "int", "text"]
        assert matching("three") == ["word"]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("rule", "problems"),
    [
        (
            {
                "all": [
                    {"trait": "days_inactive", "gte": 15},
                    {"event": "x", "at_least": 3, "at_most": 1},
                ]
            },
            {"all[1]": "at_least (3) is above at_most (1)"},
        ),
        ({"all": [{"trait": "nope", "gte": 1}]}, {"all[0].trait": "Input should be"}),
        ({"any": [{"foo": 1}]}, {"any[0]": "needs one of the keys all, any, not"}),
        ({"trait": "r", "event": "x", "gte": 1}, {"": "one condition per mapping"}),
        ({"not": {"tag": "vip", "extra": 1}}, {"not.extra": "unknown key 'extra'"}),
        ({"trait": "level", "gte": 3}, {"": "trait level is text"}),
        ({"trait": "visits_7d", "eq": "x"}, {"": "trait visits_7d is a number"}),
        ({"attribute": "city"}, {"": "give at least one operator"}),
        ({"attribute": "city", "exists": False, "eq": "x"}, {"": "`exists: false` stands alone"}),
        ({"event": "x", "within_days": 0}, {"within_days": "greater than or equal to 1"}),
        ({"label": "zombie"}, {"label": "Input should be"}),
        ({"event": "x", "where": {"properties": {"a": [1]}}}, {"where.properties.a": "text"}),
        ([1, 2], {"": "a condition is a mapping"}),
    ],
)
def test_invalid_rules_name_the_bad_node(rule: Any, problems: dict[str, str]) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    found = {p.path: p.message for p in caught.value.problems}
    for path, text in problems.items():
        assert path in found, found
        assert text in found[path], found


def test_rules_read_as_json_or_yaml_and_round_trip() -> None:
    yaml_text = (
        "all:\n  - {event: order_paid, at_least: 2, within_days: 30}\n"
        "  - not: {event: app_open, within_days: 15}\n"
    )
    json_text = (
        '{"all": [{"event": "order_paid", "at_least": 2, "within_days": 30},'
        ' {"not": {"event": "app_open", "within_days": 15}}]}'
    )
    assert rule_from_text(yaml_text) == rule_from_text(json_text)
    rule = rule_from_text(yaml_text)
    assert parse_rule(rule_json(rule)) == rule
    assert rule_json(parse_rule({"attribute": "city", "in": ["上海"]})) == {
        "attribute": "city",
        "in": ["上海"],
    }
    with pytest.raises(RuleError, match="neither JSON nor YAML"):
        rule_from_text("all: [\n")


def test_playbook_defaults_match_the_yaml() -> None:
    from liucun.playbook.load import default_playbook, parse_playbook
    from liucun.playbook.segments import SegmentRules

    shipped = default_playbook().engage.segments
    assert SegmentRules() == shipped
    assert {"silent_buyers", "new_users_7d", "churned_high_value"} <= set(shipped.named)
    bad = (
        "engage:\n  segments:\n    rule_tags:\n      a: {zh: a, en: a, rule: {tag: b}}\n"
        "      b: {zh: b, en: b, rule: {tag: vip}}\n"
    )
    with pytest.raises(ValueError, match="rule tag 'a' uses rule tag"):
        parse_playbook(bad)


def test_tables_match_the_migration(engine: sa.Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from liucun.state.tables import metadata

    mine = {
        t.name
        for t in metadata.sorted_tables
        if t.name.startswith("engage_")
        and t.name
        in {
            "engage_attributes",
            "engage_profile_sync",
            "engage_tags",
            "engage_tag_log",
            "engage_segments",
            "engage_segment_members",
            "engage_segment_state",
            "engage_segment_refreshes",
        }
    }
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in diff if any(name in repr(d) for name in mine)]
    assert ours == []


# --------------------------------------------------------------------------- refresh history


def _event(name: str, day: date, user: str) -> Ev:
    local = datetime.combine(day, datetime.min.time(), ZONE) + timedelta(hours=12)
    return Ev(name, local.astimezone(UTC), user)


def test_refresh_records_who_entered_and_left(engine: sa.Engine, app1: App) -> None:
    _clear(engine)
    d = START
    history = [
        _event("order_paid", d, "a"),
        _event("order_paid", d + timedelta(days=1), "b"),
        _event("app_open", d + timedelta(days=20), "b"),  # b comes back
    ]
    rule = parse_rule({"all": [{"trait": "days_inactive", "gte": 15}, {"event": "order_paid"}]})
    save_segment(engine, APP, "lapsed", rule, NOW, "test")
    times = [NOW + timedelta(hours=h) for h in range(4)]
    with events_store("duckdb", [history], TZ) as store:
        first = refresh_segment(store, engine, app1, "lapsed", d + timedelta(days=16), times[0])
        again = refresh_segment(store, engine, app1, "lapsed", d + timedelta(days=16), times[1])
        later = refresh_segment(store, engine, app1, "lapsed", d + timedelta(days=20), times[2])
        last = refresh_segment(store, engine, app1, "lapsed", d + timedelta(days=36), times[3])
    assert (first.size, first.entered, first.left) == (2, 2, 0)
    assert (again.size, again.entered, again.left) == (2, 0, 0)  # a retry changes nothing
    assert (later.size, later.entered, later.left) == (1, 0, 1)  # b visited on day 20
    assert (last.size, last.entered, last.left) == (2, 1, 0)  # b silent 16 days again
    assert segment_members(engine, APP, "lapsed") == ["a", "b"]
    spells = member_spells(engine, APP, "lapsed", "b")
    assert [(s["entered_at"], s["left_at"]) for s in spells] == [
        (times[3], None),
        (times[0], times[2]),
    ]
    log = refresh_log(engine, APP, "lapsed")
    assert [(r["size"], r["entered"], r["left"]) for r in log] == [
        (2, 1, 0),
        (1, 0, 1),
        (2, 0, 0),
        (2, 2, 0),
    ]


def test_rule_tags_follow_their_rule_and_manual_tags_log(engine: sa.Engine, app1: App) -> None:
    _clear(engine)
    assert add_tag(engine, APP, "a", "vip", "ops", NOW, {"high_value"}, "met at the fair")
    assert not add_tag(engine, APP, "a", "vip", "ops", NOW, {"high_value"})  # a retry
    assert remove_tag(engine, APP, "a", "vip", "ops2", NOW + timedelta(1), {"high_value"})
    assert not remove_tag(engine, APP, "a", "vip", "ops2", NOW, {"high_value"})
    assert [(r["action"], r["actor"]) for r in tag_log(engine, APP, "a")] == [
        ("remove", "ops2"),
        ("add", "ops"),
    ]
    from liucun.engage.segment_errors import SegmentError

    with pytest.raises(SegmentError) as refused:
        add_tag(engine, APP, "a", "high_value", "ops", NOW, {"high_value"})
    assert refused.value.code == "rule_tag"
    with pytest.raises(SegmentError) as bad:
        add_tag(engine, APP, "a", "no spaces", "ops", NOW, set())
    assert bad.value.status == 422

    buyers = [_event("order_paid", START + timedelta(days=i), "rich") for i in range(5)]
    buyers += [_event("app_open", START, f"p{i}") for i in range(6)]
    with events_store("duckdb", [buyers], TZ) as store:
        report = refresh_segment(store, engine, app1, "tag:high_value", START + timedelta(9), NOW)
    assert report.size >= 1
    assert "high_value" in {t["tag"] for t in user_tags(engine, APP, "rich")}
    assert all(t["source"] == "rule" for t in user_tags(engine, APP, "rich"))


# --------------------------------------------------------------------------- API and CLI


@pytest.fixture
def server(tmp_path: Path, state_url: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from liucun.api.app import create_app
    from liucun.config import Settings
    from liucun.events.batch import validate_events
    from liucun.state.apps import create_app as create_tenant

    settings_ = Settings(
        data_dir=tmp_path / "data", state_store=state_url, daily_at="off", ingest_workers=0
    )
    with TestClient(create_app(settings_)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        runtime.clock = lambda: NOW
        creds = create_tenant(runtime.state, "shop", TZ)
        rows = [
            _event("order_paid", START, "a"),
            _event("order_paid", START + timedelta(days=2), "a"),
            _event("app_open", START + timedelta(days=30), "b"),
        ]
        raw = [r.raw() for r in rows]
        raw[-1]["properties"] = {"$set": {"city": "上海"}}
        batch = validate_events(raw, creds.app_id, NOW)
        runtime.store.append(batch.table, {creds.app_id: TZ})
        client.headers["Authorization"] = f"Bearer {creds.admin_token}"
        yield client, creds


def test_api_round_trip(server: Any) -> None:
    client, creds = server
    base = f"/admin/v1/apps/{creds.app_id}"
    bad = client.put(f"{base}/segments/lapsed", json={"rule": {"all": [{"trait": "nope"}]}})
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert detail["code"] == "invalid_rule" and detail["problems"][0]["path"] == "all[0].trait"
    rule = "all:\n  - {trait: days_inactive, gte: 15}\n  - {event: order_paid, at_least: 2}\n"
    saved = client.put(f"{base}/segments/lapsed", json={"rule": rule, "description": "d"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"] == "saved"
    names = {s["name"] for s in client.get(f"{base}/segments").json()}
    assert {"lapsed", "silent_buyers", "new_users_7d", "churned_high_value"} <= names
    day = (START + timedelta(days=30)).isoformat()
    shown = client.post(f"{base}/segments/preview", json={"rule": rule, "as_of": day})
    assert shown.status_code == 200, shown.text
    assert shown.json()["count"] == 1 and shown.json()["sample"][0]["user_id"] == "a"
    assert shown.json()["users"] == 2
    done = client.post(f"{base}/segments/lapsed/refresh", params={"date": day})
    assert done.status_code == 200 and done.json()["entered"] == 1
    members = client.get(f"{base}/segments/lapsed/members").json()
    assert members["users"] == ["a"] and members["last_refresh"]["size"] == 1
    history = client.get(f"{base}/segments/lapsed/history").json()
    assert history["refreshes"][0]["entered"] == 1 and history["spells"][0]["user_id"] == "a"
    assert client.get(f"{base}/segments/nope/members").status_code == 404
    tagged = client.put(f"{base}/users/a/tags/vip", json={"by": "ops", "note": "fair"})
    assert tagged.json()["changed"] is True
    assert client.put(f"{base}/users/a/tags/vip").json()["changed"] is False
    assert client.put(f"{base}/users/a/tags/high_value").status_code == 409
    profile = client.get(f"{base}/users/b/profile", params={"date": day})
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["attributes"]["city"]["value"] == "上海" and body["traits"]["visits_7d"] == 1
    assert (
        client.get(f"{base}/users/a/profile", params={"date": day}).json()["tags"][0]["tag"]
        == "vip"
    )
    assert client.get(f"{base}/users/zz/profile").status_code == 404
    assert client.delete(f"{base}/users/a/tags/vip", params={"by": "ops"}).json()["changed"]
    imported = client.post(
        f"{base}/profiles/import",
        json={"users": [{"user_id": "c", "attributes": {"age": 30}}, {"nope": 1}]},
    )
    assert imported.json()["accepted"] == 1 and imported.json()["rejected"][0]["index"] == 1
    assert {"tag": "vip", "source": "manual", "users": 1} not in client.get(f"{base}/tags").json()


def test_api_deletes_a_saved_segment_unless_a_campaign_targets_it(server: Any) -> None:
    client, creds = server
    base = f"/admin/v1/apps/{creds.app_id}"
    day = (START + timedelta(days=30)).isoformat()
    rule = {"event": "order_paid", "at_least": 2}
    assert client.put(f"{base}/segments/buyers", json={"rule": rule}).status_code == 200
    assert client.post(f"{base}/segments/buyers/refresh", params={"date": day}).json()["size"] == 1
    made = client.post(
        f"{base}/campaigns",
        json={
            "spec": {
                "name": "thanks",
                "target": {"kind": "segment", "name": "buyers"},
                "action": {"banner": {"text": "hi"}},
            }
        },
    )
    assert made.status_code in (200, 201), made.text
    refused = client.delete(f"{base}/segments/buyers")
    assert refused.status_code == 409 and "thanks" in refused.json()["detail"]["message"]
    ended = client.post(f"{base}/campaigns/{made.json()['campaign_id']}/end")
    assert ended.status_code == 200, ended.text
    assert client.delete(f"{base}/segments/buyers").status_code == 204
    assert client.get(f"{base}/segments/buyers").status_code == 404
    # the memberships were closed at the deletion, not erased: past results still read them
    spells = member_spells(client.app.state.runtime.state, creds.app_id, "buyers")
    assert [(s["user_id"], s["left_at"]) for s in spells] == [("a", NOW)]
    again = client.delete(f"{base}/segments/buyers")
    assert again.status_code == 404 and again.json()["detail"]["code"] == "unknown_saved_segment"
    # a playbook segment is not deleted through the API
    assert client.delete(f"{base}/segments/silent_buyers").status_code == 404


def test_cli_round_trip(tmp_path: Path, state_url: str) -> None:
    from liucun.cli import app as cli_app
    from liucun.events.batch import validate_events
    from liucun.state.apps import create_app as create_tenant
    from liucun.state.db import open_state
    from liucun.warehouse.duckdb_store import DuckDBEventStore

    data = tmp_path / "data"
    env = {"LIUCUN_DATA_DIR": str(data), "LIUCUN_STATE_STORE": state_url, "LIUCUN_DAILY_AT": "off"}
    engine = open_state(state_url)
    creds = create_tenant(engine, "shop", TZ)
    engine.dispose()
    store = DuckDBEventStore(str(data / "events.duckdb"))
    rows = [_event("order_paid", START, "a").raw(), _event("app_open", START, "b").raw()]
    store.append(validate_events(rows, creds.app_id, NOW).table, {creds.app_id: TZ})
    store.close()

    def run(*args: str) -> Any:
        done = CliRunner().invoke(cli_app, list(args), env=env)
        assert done.exit_code == 0, done.output
        return orjson.loads(done.stdout) if "--json" in args else done.stdout

    day = (START + timedelta(days=20)).isoformat()
    bad = CliRunner().invoke(
        cli_app, ["segments", "save", "--app", "shop", "x", "--rule", "{trait: nope}"], env=env
    )
    assert bad.exit_code == 2 and "trait" in bad.output
    run("segments", "save", "--app", "shop", "buyers", "--rule", "{event: order_paid}", "--json")
    listed = run("segments", "list", "--app", "shop", "--json")
    assert "buyers" in {s["name"] for s in listed}
    shown = run("segments", "preview", "--app", "shop", "--name", "buyers", "--date", day, "--json")
    assert shown["count"] == 1
    refreshed = run("segments", "refresh", "--app", "shop", "buyers", "--date", day, "--json")
    assert refreshed[0]["entered"] == 1
    assert run("segments", "members", "--app", "shop", "buyers", "--json")["users"] == ["a"]
    run("tags", "add", "--app", "shop", "b", "vip", "--by", "ops")
    assert run("tags", "list", "--app", "shop", "--user", "b", "--json")["tags"][0]["tag"] == "vip"
    run("tags", "remove", "--app", "shop", "b", "vip")
    assert run("tags", "list", "--app", "shop", "--json") == []
    profile = run("profiles", "show", "--app", "shop", "a", "--date", day, "--json")
    assert profile["traits"]["orders_total"] == 1
    assert "buyers" in run("segments", "show", "--app", "shop", "buyers")
    assert "deleted buyers" in run("segments", "delete", "--app", "shop", "buyers")
    assert "buyers" not in {s["name"] for s in run("segments", "list", "--app", "shop", "--json")}
    gone = CliRunner().invoke(cli_app, ["segments", "delete", "--app", "shop", "buyers"], env=env)
    assert gone.exit_code == 1 and "no saved segment" in gone.output


def test_concurrent_refreshes_apply_one_after_the_other(engine: sa.Engine, app1: App) -> None:
    """Eight refreshes of one segment at once, each with its own members: every change is
    recorded once, no user has two open spells, and the members are the last one applied."""
    import threading

    from liucun.engage.segments import apply_membership

    _clear(engine)
    lists = [[f"u{j}" for j in range(i, i + 20)] for i in range(0, 40, 5)]
    errors: list[BaseException] = []

    def refresh(i: int) -> None:
        try:
            when = NOW + timedelta(seconds=i)
            apply_membership(engine, APP, "busy", lists[i], START, when, "{}", 0.0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=refresh, args=(i,)) for i in range(len(lists))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = refresh_log(engine, APP, "busy")
    spells = member_spells(engine, APP, "busy", limit=10_000)
    # every change recorded once: the log's entries and exits are the spells opened and closed
    assert len(log) == len(lists)
    assert sum(r["entered"] for r in log) == len(spells)
    assert sum(r["left"] for r in log) == sum(1 for s in spells if s["left_at"] is not None)
    assert sum(r["entered"] - r["left"] for r in log) == 20
    current = segment_members(engine, APP, "busy")
    assert len(current) == 20 and current in [sorted(x) for x in lists]
    open_spells = [s["user_id"] for s in spells if s["left_at"] is None]
    assert sorted(open_spells) == current
