"""Reading a playbook file: YAML to a validated `Playbook`, or every problem with its line.

A file names the playbook format it was written for (`version`); a top-level section it leaves
out takes the shipped default (`default.yaml`) whole. The merge stops at sections on purpose: if
keys inside a section were merged too, an operator who wrote `churn:` with two presets could not
tell from their own file which presets are in force, nor remove one. A section given is the
section in force, as written.
"""

from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from liucun.playbook.schema import PLAYBOOK_VERSION, Playbook

# A playbook is a few kilobytes; these bounds refuse a file built to exhaust the server
# (a huge text, or YAML aliases that expand into millions of values) before it is validated.
MAX_TEXT_CHARS = 1_000_000
MAX_EXPANDED_NODES = 100_000

SLUG_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *anchor`

Step = str | int


@dataclass(frozen=True)
class Problem:
    """One reason a playbook is refused: where (1-based line and column of the YAML node, when
    known), which setting (`churn.presets.tools.new_users`), and what to fix."""

    line: int | None
    column: int | None
    path: str
    message: str

    def render(self, source: str) -> str:
        """`source:LINE:COL: path: message`, the form editors and compilers use."""
        where = source
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlaybookError(ValueError):
    """A playbook that cannot be put in force; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem], source: str = "playbook") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.render(source) for p in problems))


def default_text() -> str:
    """The shipped default playbook, as written (comments included)."""
    return resources.files("liucun.playbook").joinpath("default.yaml").read_text("utf-8")


@cache
def default_playbook() -> Playbook:
    """The shipped default playbook, validated (once per process)."""
    return parse_playbook(default_text(), "default.yaml")


@cache
def _default_sections() -> dict[str, Any]:
    data = yaml.safe_load(default_text())
    assert isinstance(data, dict), "default.yaml is a mapping"
    return data


def decode_playbook(data: bytes, source: str = "playbook") -> str:
    """`data` as UTF-8 text (a byte-order mark is dropped); PlaybookError if it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PlaybookError(
            [Problem(line, None, "", f"not UTF-8 text (byte {exc.start}): save the file as UTF-8")],
            source,
        ) from None


def parse_playbook(text: str, source: str = "playbook") -> Playbook:
    """The playbook that `text` describes: its YAML read, sections it leaves out taken from the
    default, and validated against `Playbook`; PlaybookError with every problem otherwise.
    `source` names the text in the error (a file name)."""
    if len(text) > MAX_TEXT_CHARS:
        raise PlaybookError(
            [_whole(f"{len(text):,} characters; a playbook may have at most {MAX_TEXT_CHARS:,}")],
            source,
        )
    root, data = _read_yaml(text, source)
    given = set(data)
    problems = _version_problems(root, data)
    if any(p.path == "version" for p in problems):
        raise PlaybookError(problems, source)  # another format: its keys would mislead
    merged = {"version": PLAYBOOK_VERSION, **data}
    for section in Playbook.model_fields:
        if section == "version":
            continue
        if section not in given:
            merged[section] = _default_sections()[section]
        elif merged[section] is None:
            found = _entry(root, section)
            assert found is not None
            problems.append(
                _at(
                    found[0],
                    section,
                    "the section is empty: leave it out to take the shipped "
                    "default, or write its keys",
                )
            )
            merged[section] = _default_sections()[section]
    try:
        playbook = Playbook.model_validate(merged)
    except ValidationError as exc:
        problems += [_problem(root, err, given) for err in exc.errors()]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if problems:
        raise PlaybookError(problems, source)
    return playbook


def _read_yaml(text: str, source: str) -> tuple[MappingNode, dict[str, Any]]:
    """The YAML node tree (for line numbers) and the data of a non-empty top-level mapping."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # refuses characters YAML forbids right away
        root = loader.get_single_node()
        if root is None:
            raise PlaybookError(
                [
                    _whole(
                        "the file is empty: start from `liucun playbook show --default` "
                        f"(version: {PLAYBOOK_VERSION}, churn: …)"
                    )
                ],
                source,
            )
        if not isinstance(root, MappingNode):
            raise PlaybookError(
                [
                    _at(
                        root,
                        "",
                        f"the top level must be a mapping of sections "
                        f"({', '.join(Playbook.model_fields)}), not a {_kind(root)}",
                    )
                ],
                source,
            )
        problems = _key_problems(root, "") + _size_problems(root)
        if problems:
            raise PlaybookError(problems, source)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise PlaybookError([_yaml_problem(exc, text)], source) from None
    except RecursionError:  # the reader and the checks recurse once per level of nesting
        raise PlaybookError([_whole("values are nested too deeply")], source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or "cannot be read"
        if exc.context and message.startswith("but "):  # "expected …, but found …"
            message = f"{exc.context}, {message}"
        elif exc.context:
            message = f"{message} ({exc.context}"
            if exc.context_mark and exc.context_mark is not mark:
                message += f" at line {exc.context_mark.line + 1}"
            message += ")"
        if mark is not None:
            return Problem(mark.line + 1, mark.column + 1, "", f"invalid YAML: {message}")
        return _whole(f"invalid YAML: {message}")
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML forbids
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        reason = getattr(exc, "reason", "unacceptable character")
        return Problem(line, column, "", f"invalid YAML: {reason}")
    return _whole(f"invalid YAML: {exc}")


def _kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "list"
    if isinstance(node, MappingNode):
        return "mapping"
    return f"single value ({node.value!r})"


def _whole(message: str) -> Problem:
    """A problem of the file as a whole, at no line."""
    return Problem(None, None, "", message)


def _at(node: Node, path: str, message: str) -> Problem:
    return Problem(node.start_mark.line + 1, node.start_mark.column + 1, path, message)


def join_path(path: str, step: Step) -> str:
    """`path` one step deeper: `.key` into a mapping, `[index]` into a list."""
    if isinstance(step, int):
        return f"{path}[{step}]"
    return f"{path}.{step}" if path else str(step)


def _key_problems(node: Node, path: str, seen: set[int] | None = None) -> list[Problem]:
    """Keys that would mislead: one written twice in a mapping (YAML readers keep the last
    silently, so the first would be ignored without a word; a key beside a merge key `<<`
    overrides it on purpose and is allowed), and keys YAML reads as something other than a
    name (`1`, `on`, `null`)."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: checked where its anchor is
        return []
    seen.add(id(node))
    problems: list[Problem] = []
    if isinstance(node, MappingNode):
        first: dict[str, Node] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if name is None:
                problems.append(_at(key, path, f"a {_kind(key)} cannot be a key: keys are names"))
            elif key.tag not in (STR_TAG, MERGE_TAG):
                kind = key.tag.rsplit(":", 1)[-1]
                problems.append(
                    _at(
                        key,
                        join_path(path, name),
                        f"key {name!r} is read as {kind} by YAML, not as a name: quote it "
                        f"('{name}': …)",
                    )
                )
            elif name in first and key.tag == STR_TAG:
                line = first[name].start_mark.line + 1
                problems.append(
                    _at(
                        key,
                        join_path(path, name),
                        f"duplicate key {name!r} (first at line {line}): keep one",
                    )
                )
            else:
                first[name] = key
            problems += _key_problems(value, join_path(path, name or "?"), seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            problems += _key_problems(item, join_path(path, i), seen)
    return problems


def _size_problems(root: Node) -> list[Problem]:
    """Refuse aliases that refer to themselves or expand into too many values."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise _RecursiveAliasError(node)
        open_nodes.add(id(node))
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                break
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    try:
        total = size(root)
    except _RecursiveAliasError as exc:
        return [_at(exc.node, "", "an alias refers to the value that contains it")]
    if total > MAX_EXPANDED_NODES:
        return [
            _whole(
                f"the playbook expands to more than {MAX_EXPANDED_NODES:,} values (through "
                "aliases): write it out plainly"
            )
        ]
    return []


class _RecursiveAliasError(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


def _version_problems(root: MappingNode, data: dict[str, Any]) -> list[Problem]:
    found = _entry(root, "version")
    if found is None:
        return [
            _at(
                root,
                "",
                f"`version` is missing: add `version: {PLAYBOOK_VERSION}` (the playbook "
                f"format this liucun reads) at the top",
            )
        ]
    version = data["version"]
    if type(version) is not int or version != PLAYBOOK_VERSION:
        return [
            _at(
                found[0],
                "version",
                f"version {version!r} is not supported: this liucun reads "
                f"playbook version {PLAYBOOK_VERSION} (`version: "
                f"{PLAYBOOK_VERSION}`)",
            )
        ]
    return []


def _entry(node: Node, step: Step) -> tuple[Node, Node] | None:
    """The (key, value) nodes of `step` under `node`: a key of a mapping (the last one, as the
    reader keeps it) or an index of a list; None if the YAML has no such node."""
    if isinstance(node, MappingNode):
        found = None
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(step):
                found = (key, value)
        return found
    if isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        item = node.value[step]
        return item, item
    return None


def _problem(root: MappingNode, err: Any, given: set[str]) -> Problem:
    """A pydantic error placed on the deepest YAML node that its location reaches: the key of
    the value that is wrong, or of the mapping that lacks a key."""
    loc: tuple[Step, ...] = tuple(err["loc"])
    message = _message(err)
    if loc and loc[0] not in given:
        return Problem(None, None, _path(loc), f"{message} (in the shipped default section)")
    key: Node = root
    value: Node = root
    path = ""
    for i, step in enumerate(loc):
        if step == "[key]":  # the mapping key itself is invalid: `key` is its node already
            break
        found = _entry(value, step)
        if found is None:  # the YAML stops here (a missing key): name the rest in the path
            path = _path(loc[i:], path)
            break
        key, value = found
        path = join_path(path, step)
    else:
        if err["type"] == "value_error" and isinstance(value, MappingNode):
            # a rule that ties several keys (churned after silent) names its key first
            first_word = re.split(r"[\s(]", message, maxsplit=1)[0]
            named = _entry(value, first_word)
            if named is not None:
                key, path = named[0], join_path(path, first_word)
    return _at(key, path, message)


def _path(loc: tuple[Step, ...], path: str = "") -> str:
    for step in loc:
        if step == "[key]":
            continue
        path = join_path(path, step)
    return path


def _message(err: Any) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "missing":
        return f"key {loc[-1]!r} is missing"
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _model_at(loc[:-1]))
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == SLUG_PATTERN:
        return (
            f"{err['input']!r} is not a valid name: use lowercase letters, digits and '_', "
            "starting with a letter (at most 40)"
        )
    value = err.get("input")
    if kind in ("model_type", "dict_type"):
        return f"should be a mapping (`key: value` lines), not {_shown(value)}"
    if kind == "list_type":
        return f"should be a list (`- item` lines), not {_shown(value)}"
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    if value is None and kind.endswith("_type"):
        shown = " (got nothing)"
    return f"{err['msg']}{shown}"


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _unknown_key(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return f"unknown key {name!r}"
    known = list(model.model_fields)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {name!r}{hint} (keys here: {', '.join(known)})"


def _model_at(loc: tuple[Step, ...]) -> type[BaseModel] | None:
    """The playbook model that the data at `loc` is validated against, if any."""
    current: Any = Playbook
    for step in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(step))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """`X` from `Annotated[X, …]` and from `X | None`."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) != 1:
                return tp
            tp = options[0]
        else:
            return tp
