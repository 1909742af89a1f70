"""The segment rule language: who is in a segment, written as JSON or YAML (docs/segments.md).

A rule is one condition; a condition is a mapping with exactly one of these keys:

- `all: [c, …]`, `any: [c, …]`, `not: c` — every, at least one, or not the condition(s);
- `attribute: NAME` with operators — a profile attribute (set by `$set` on events or imported);
- `trait: NAME` with operators — a computed trait (`TRAITS`: recency, visits, RFM, churn
  risk, loyalty level, points …);
- `label: LABEL` or `label: [LABEL, …]` — the lifecycle label on the as-of day;
- `tag: NAME` — the user carries the tag (manual or rule tag);
- `event: NAME` with `within_days`, `at_least`, `at_most`, `where` — how often the user did
  the event in the last `within_days` app-local days up to and including the as-of day (ever,
  when absent); holds when the count is within [`at_least`, `at_most`] (`at_least: 1` when
  neither is given).

Operators (`eq`, `ne`, `in`, `gt`, `gte`, `lt`, `lte`, `contains`, `exists`) may be combined in
one condition; all must hold. Every operator but `exists: false` holds only for users who have a
value. Unknown keys are refused, and each problem names the path of its node (`all[1].event`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from liucun.lifecycle.label_names import LABELS

KINDS = ("all", "any", "not", "attribute", "trait", "label", "tag", "event")
MAX_RULE_BYTES = 64 * 1024
MAX_DEPTH = 8
MAX_CONDITIONS = 100
MAX_LIST = 1000

# Computed traits: name → (kind, zh, en). Numbers compare as numbers, text as text.
TRAITS: dict[str, tuple[Literal["number", "text"], str, str]] = {
    "days_inactive": ("number", "未活跃天数", "days since the last active day (0: active today)"),
    "age_days": ("number", "用户天龄", "days since the user's first day (0: first day)"),
    "visits_7d": ("number", "近 7 天访问次数", "visits (app_open) in the last 7 days"),
    "visits_30d": ("number", "近 30 天访问次数", "visits (app_open) in the last 30 days"),
    "active_days_30d": ("number", "近 30 天活跃天数", "active days in the last 30 days"),
    "orders_total": ("number", "累计订单数", "paid orders ever"),
    "amount_total": ("number", "累计消费金额", "amount paid ever, in yuan"),
    "rfm_orders": ("number", "RFM 窗口订单数", "paid orders in the RFM window"),
    "rfm_amount": ("number", "RFM 窗口消费金额", "amount paid in the RFM window, in yuan"),
    "rfm_active_days": ("number", "RFM 窗口活跃天数", "active days in the RFM window"),
    "r": ("number", "R 分", "recency score 1–5"),
    "f": ("number", "F 分", "frequency score 1–5"),
    "m": ("number", "M 分", "monetary score 1–5"),
    "rfm_value": ("number", "RFM 价值", "R + F + M (3–15)"),
    "churn_risk": ("number", "流失风险", "churn-risk score 0–1 (none when not scored)"),
    "points": ("number", "积分余额", "points balance (0 when not a member)"),
    "lifecycle_label": ("text", "生命周期标签", "lifecycle label on the as-of day"),
    "churn_reason": ("text", "流失主因", "the feature that raises the churn risk most"),
    "level": ("text", "会员等级", "loyalty level (none when not a member)"),
}
TraitName = Literal[
    "days_inactive",
    "age_days",
    "visits_7d",
    "visits_30d",
    "active_days_30d",
    "orders_total",
    "amount_total",
    "rfm_orders",
    "rfm_amount",
    "rfm_active_days",
    "r",
    "f",
    "m",
    "rfm_value",
    "churn_risk",
    "points",
    "lifecycle_label",
    "churn_reason",
    "level",
]
LabelName = Literal["new", "active", "resurrected", "silent", "churned"]
assert set(LabelName.__args__) == set(LABELS)  # type: ignore[attr-defined]

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool
Bound = StrictInt | StrictFloat | StrictStr
AttributeName = Annotated[str, Field(min_length=1, max_length=64)]
TagName = Annotated[str, Field(pattern=r"^[\w\-.:]{1,64}$")]
EventName = Annotated[str, Field(min_length=1, max_length=200)]
PropertyValue = StrictStr | StrictInt | StrictBool
OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "exists")


class Node(BaseModel):
    """A rule node: unknown keys refused, immutable, shown without the keys left out."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: Any) -> Any:
        return {k: v for k, v in handler(self).items() if v is not None}


class Ops(Node):
    """Comparisons of one value; every one given must hold."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1, max_length=MAX_LIST)
    gt: Bound | None = None
    gte: Bound | None = None
    lt: Bound | None = None
    lte: Bound | None = None
    contains: Scalar | None = None
    exists: StrictBool | None = None

    def ops(self) -> dict[str, Any]:
        """The operators given, by their names in the rule."""
        values = {name: getattr(self, "in_" if name == "in" else name) for name in OPS}
        return {k: v for k, v in values.items() if v is not None}

    @model_validator(mode="after")
    def _some(self) -> Ops:
        given = self.ops()
        if not given:
            raise ValueError(f"give at least one operator: {', '.join(OPS)}")
        if given.get("exists") is False and len(given) > 1:
            raise ValueError("`exists: false` stands alone: no value is there to compare")
        return self


class AttributeCondition(Ops):
    attribute: AttributeName


class TraitCondition(Ops):
    trait: TraitName

    @model_validator(mode="after")
    def _fits_the_trait(self) -> TraitCondition:
        kind = TRAITS[self.trait][0]
        for op, value in self.ops().items():
            if op == "exists":
                continue
            values = value if op == "in" else [value]
            if kind == "number":
                if op == "contains":
                    raise ValueError(f"trait {self.trait} is a number: `contains` is for text")
                if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
                    raise ValueError(f"trait {self.trait} is a number: compare it with numbers")
            elif any(not isinstance(v, str) for v in values):
                raise ValueError(f"trait {self.trait} is text: compare it with text")
        return self


class LabelCondition(Node):
    label: LabelName | list[LabelName] = Field(description="One label or a list (any of them).")

    @property
    def labels(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else list(self.label)


class TagCondition(Node):
    tag: TagName


class EventFilter(Node):
    """Which events count: on this page, with these property values (a number compares as a
    number, anything else as text)."""

    page: str | None = Field(default=None, min_length=1, max_length=1000)
    properties: dict[Annotated[str, Field(min_length=1, max_length=64)], PropertyValue] | None = (
        Field(default=None, min_length=1, max_length=10)
    )


class EventCondition(Node):
    event: EventName
    within_days: int | None = Field(default=None, ge=1, le=3660)
    at_least: int | None = Field(default=None, ge=0, le=1_000_000)
    at_most: int | None = Field(default=None, ge=0, le=1_000_000)
    where: EventFilter | None = None

    @model_validator(mode="after")
    def _ordered(self) -> EventCondition:
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"at_least ({self.at_least}) is above at_most ({self.at_most})")
        return self

    @property
    def bounds(self) -> tuple[int, int | None]:
        """[low, high] of the count (high None: no upper bound); did it once by default."""
        if self.at_least is None and self.at_most is None:
            return 1, None
        return self.at_least or 0, self.at_most


class AllCondition(Node):
    all: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)


class AnyCondition(Node):
    any: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)


class NotCondition(Node):
    not_: Condition = Field(alias="not")


_CLASSES: dict[str, type[Node]] = {
    "all": AllCondition,
    "any": AnyCondition,
    "not": NotCondition,
    "attribute": AttributeCondition,
    "trait": TraitCondition,
    "label": LabelCondition,
    "tag": TagCondition,
    "event": EventCondition,
}
_KIND_OF = {cls: kind for kind, cls in _CLASSES.items()}


def _kind(value: Any) -> str | None:
    """The kind of a condition: its one kind key (None when it has none or several)."""
    if isinstance(value, Node):
        return _KIND_OF.get(type(value))
    if isinstance(value, dict):
        kinds = [k for k in KINDS if k in value]
        return kinds[0] if len(kinds) == 1 else None
    return None


NODE_ERROR = "rule_node"
Condition = Annotated[
    Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")]
    | Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[TraitCondition, Tag("trait")]
    | Annotated[LabelCondition, Tag("label")]
    | Annotated[TagCondition, Tag("tag")]
    | Annotated[EventCondition, Tag("event")],
    Discriminator(
        _kind,
        custom_error_type=NODE_ERROR,
        custom_error_message="a condition is a mapping with exactly one of the keys "
        + ", ".join(KINDS),
    ),
]
for _cls in (AllCondition, AnyCondition, NotCondition):
    _cls.model_rebuild()
RULE = TypeAdapter(Condition)
Rule = (
    AllCondition
    | AnyCondition
    | NotCondition
    | AttributeCondition
    | TraitCondition
    | LabelCondition
    | TagCondition
    | EventCondition
)


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class RuleProblem:
    path: str  # e.g. `all[1].event.within_days`; "" for the rule as a whole
    message: str

    def render(self) -> str:
        return f"{self.path or 'rule'}: {self.message}"


class RuleError(ValueError):
    """A rule that does not validate; `problems` name each bad node by its path."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("; ".join(p.render() for p in problems))
        self.problems = problems

    def as_json(self) -> list[dict[str, str]]:
        return [{"path": p.path, "message": p.message} for p in self.problems]


def _join(path: str, step: str | int) -> str:
    if isinstance(step, int):
        return f"{path}[{step}]"
    return f"{path}.{step}" if path else step


_UNION_MEMBERS = {"str", "int", "float", "bool"}


def _path(loc: tuple[str | int, ...]) -> str:
    """The rule path of a pydantic error location, without the union tags in it."""
    path, at_node, i = "", True, 0
    while i < len(loc):
        step = loc[i]
        i += 1
        if at_node:  # a condition's location starts with its kind (the union tag)
            at_node = False
            continue
        path = _join(path, step)
        if step in ("all", "any") and i < len(loc) and isinstance(loc[i], int):
            path, i, at_node = _join(path, loc[i]), i + 1, True
        elif step == "not":
            at_node = True
        else:  # a leaf's own fields: the union members of a value are no path
            for rest in loc[i:]:
                if isinstance(rest, int) or (rest not in _UNION_MEMBERS and "[" not in rest):
                    path = _join(path, rest)
            break
    return path


def _node_message(value: Any) -> str:
    if not isinstance(value, dict):
        return f"a condition is a mapping (e.g. {{trait: days_inactive, gte: 15}}), not {value!r}"
    kinds = [k for k in KINDS if k in value]
    if len(kinds) > 1:
        return (
            f"one condition per mapping, but this one has {', '.join(kinds)}: "
            "put them in `all: [...]` or `any: [...]`"
        )
    keys = ", ".join(map(str, value)) or "none"
    return f"a condition needs one of the keys {', '.join(KINDS)} (keys given: {keys})"


def _message(err: Any) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == NODE_ERROR:
        return _node_message(err["input"])
    if kind == "missing":
        return f"key {loc[-1]!r} is missing"
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if loc and loc[-1] in _UNION_MEMBERS:
        return f"should be text, a number or true/false (got {value!r})"
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    return f"{err['msg']}{shown}"


def problems_of(exc: ValidationError) -> list[RuleProblem]:
    """One problem per bad path (a value tried against several types gives one)."""
    out: dict[str, RuleProblem] = {}
    for err in exc.errors(include_url=False):
        path = _path(tuple(err["loc"]))
        out.setdefault(path, RuleProblem(path, _message(err)))
    return list(out.values())


def walk(rule: Rule) -> Iterator[Rule]:
    """Every condition of the rule, the rule first."""
    yield rule
    if isinstance(rule, AllCondition | AnyCondition):
        for child in rule.all if isinstance(rule, AllCondition) else rule.any:
            yield from walk(child)
    elif isinstance(rule, NotCondition):
        yield from walk(rule.not_)


def _depth(rule: Rule) -> int:
    if isinstance(rule, AllCondition | AnyCondition):
        children = rule.all if isinstance(rule, AllCondition) else rule.any
        return 1 + max(_depth(c) for c in children)
    if isinstance(rule, NotCondition):
        return 1 + _depth(rule.not_)
    return 1


def parse_rule(data: Any) -> Rule:
    """The rule `data` (parsed JSON or YAML) describes; RuleError listing every problem."""
    try:
        rule: Rule = RULE.validate_python(data)
    except ValidationError as exc:
        raise RuleError(problems_of(exc)) from None
    if _depth(rule) > MAX_DEPTH:
        raise RuleError([RuleProblem("", f"nested deeper than {MAX_DEPTH} levels")])
    conditions = sum(1 for _ in walk(rule))
    if conditions > MAX_CONDITIONS:
        raise RuleError([RuleProblem("", f"{conditions} conditions; at most {MAX_CONDITIONS}")])
    return rule


def rule_from_text(text: str | bytes) -> Rule:
    """A rule written as JSON or YAML text."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_RULE_BYTES:
        raise RuleError([RuleProblem("", f"a rule is at most {MAX_RULE_BYTES} bytes")])
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RuleError([RuleProblem("", f"neither JSON nor YAML: {exc}")]) from None
    return parse_rule(data)


def rule_json(rule: Rule) -> dict[str, Any]:
    """The rule as plain JSON data (what `parse_rule` reads back)."""
    data: dict[str, Any] = RULE.dump_python(rule, mode="json")
    return data


def rule_text(rule: Rule) -> str:
    """The rule as canonical JSON text (keys sorted): equal rules give equal text."""
    return orjson.dumps(rule_json(rule), option=orjson.OPT_SORT_KEYS).decode()
