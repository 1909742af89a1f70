"""The playbook file: validation with the right line, revisions in the state store (both
engines, concurrent applies), the structural diff, `liucun playbook …` and the admin API.

Line numbers are checked on small files built here, so the offending line of each case is known
from the text itself; expected values come from the YAML as written, not from the code.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liucun.api.app import create_app
from liucun.cli import app as cli_app
from liucun.config import Settings
from liucun.playbook.load import (
    PlaybookError,
    Problem,
    default_playbook,
    default_text,
    parse_playbook,
)
from liucun.playbook.store import (
    Change,
    apply_playbook,
    playbook_changes,
    playbook_history,
    playbook_in_force,
    record_playbook,
    unified_diff,
)
from liucun.state.apps import AppCredentials
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state
from liucun.state.tables import playbook_revisions

SMALL = """\
version: 1
churn:
  industry: tools
  presets:
    tools:
      zh: 工具
      en: Tools
      new_users: {silent_after_days: 3, churned_after_days: 7}
      established:
        silent_after_days: 14
        churned_after_days: 30
"""


def with_line(number: int, new: str, text: str = SMALL) -> str:
    """`text` with its line `number` (1-based) replaced by `new` (which may hold several)."""
    lines = text.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


def small(new_user_days: int) -> str:
    """A valid playbook that differs from SMALL in one setting."""
    return SMALL.replace(
        "  industry: tools\n", f"  industry: tools\n  new_user_days: {new_user_days}\n"
    )


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "f.yaml")
    return caught.value.problems


def only(text: str) -> Problem:
    found = problems_of(text)
    assert len(found) == 1, found
    return found[0]


# --- reading and validating -------------------------------------------------------------


def test_the_shipped_default_validates_with_the_figures_it_writes() -> None:
    raw = yaml.safe_load(default_text())
    playbook = default_playbook()
    assert playbook.version == raw["version"] == 1
    assert playbook.churn.industry == raw["churn"]["industry"] == "ecommerce"
    assert set(playbook.churn.presets) == set(raw["churn"]["presets"])
    for name, preset in raw["churn"]["presets"].items():
        model = playbook.churn.presets[name]
        for group in ("new_users", "established"):
            assert getattr(model, group).silent_after_days == preset[group]["silent_after_days"]
            assert getattr(model, group).churned_after_days == preset[group]["churned_after_days"]
        assert [s.name for s in model.depth_signals] == [s["name"] for s in preset["depth_signals"]]
    assert playbook_changes(playbook, parse_playbook(default_text())) == []


def test_a_section_left_out_takes_the_default_and_a_section_given_is_taken_whole() -> None:
    assert parse_playbook("version: 1\n") == default_playbook()
    playbook = parse_playbook(SMALL)
    # churn was given: exactly its one preset, none of the default's six merged in
    assert list(playbook.churn.presets) == ["tools"]
    assert playbook.churn.preset.established.silent_after_days == 14
    # keys the model defaults inside a given section
    assert playbook.churn.new_user_days == 7 and playbook.churn.preset.depth_signals == []
    default = default_playbook()
    assert (playbook.risk, playbook.alerts, playbook.winback) == (
        default.risk,
        default.alerts,
        default.winback,
    )


def test_invalid_yaml_points_at_the_character() -> None:
    line = "  industry: tools: x"
    p = only(with_line(3, line))
    assert (p.line, p.column) == (3, line.index(": x") + 1)
    assert "invalid YAML" in p.message and "mapping values are not allowed" in p.message
    tab = only(SMALL + "\tfoo: 1\n")
    assert (tab.line, tab.column) == (12, 1) and "'\\t'" in tab.message
    second = only(SMALL + "---\nversion: 1\n")
    assert second.line == 12 and "single document" in second.message


def test_an_unknown_key_names_the_keys_that_are_known() -> None:
    found = problems_of(with_line(10, "        silent_after_dayz: 14"))
    typo = next(p for p in found if p.line == 10)
    assert typo.path == "churn.presets.tools.established.silent_after_dayz"
    assert typo.column == 9
    assert "unknown key 'silent_after_dayz'" in typo.message
    assert "did you mean 'silent_after_days'" in typo.message
    # and the key it should have been is missing from the mapping on line 9
    missing = next(p for p in found if p.line == 9)
    assert missing.path == "churn.presets.tools.established.silent_after_days"
    assert "missing" in missing.message
    assert len(found) == 2

    section = only(SMALL + "chrun: {}\n")
    assert (section.line, section.path) == (12, "chrun")
    assert "did you mean 'churn'" in section.message


def test_a_wrong_type_is_refused_on_its_line() -> None:
    p = only(with_line(11, "        churned_after_days: thirty"))
    assert (p.line, p.column, p.path) == (
        11,
        9,
        "churn.presets.tools.established.churned_after_days",
    )
    assert "integer" in p.message and "'thirty'" in p.message
    listed = only("version: 1\nchurn:\n  industry: tools\n  presets: [tools]\n")
    assert (listed.line, listed.path) == (4, "churn.presets")
    assert "should be a mapping" in listed.message


def test_churned_at_or_before_silent_is_refused_where_churned_is_written() -> None:
    block = only(with_line(11, "        churned_after_days: 14"))
    assert (block.line, block.column) == (11, 9)
    assert block.path == "churn.presets.tools.established.churned_after_days"
    assert "churned_after_days (14) must be above silent_after_days (14)" in block.message
    flow = "      new_users: {silent_after_days: 3, churned_after_days: 2}"
    inline = only(with_line(8, flow))
    assert (inline.line, inline.column) == (8, flow.index("churned") + 1)
    assert inline.path == "churn.presets.tools.new_users.churned_after_days"


def test_an_industry_without_a_preset_is_refused_on_the_industry_line() -> None:
    p = only(with_line(3, "  industry: retail"))
    assert (p.line, p.column, p.path) == (3, 3, "churn.industry")
    assert "'retail' has no preset" in p.message and "tools" in p.message


def test_a_duplicate_key_is_refused_instead_of_silently_keeping_the_last() -> None:
    p = only(with_line(11, "        silent_after_days: 20"))
    assert (p.line, p.path) == (11, "churn.presets.tools.established.silent_after_days")
    assert "duplicate key 'silent_after_days' (first at line 10)" in p.message
    top = only(SMALL + "version: 1\n")
    assert (top.line, top.path) == (12, "version")
    # YAML reads `on` as true: a preset named so would silently be the key True
    flag = only(with_line(5, "    on:"))
    assert (flag.line, flag.path) == (5, "churn.presets.on") and "read as bool" in flag.message
    # a key beside a merge key (`<<`) overrides the merged one on purpose: allowed
    merged = with_line(8, "      new_users: &recency {silent_after_days: 3, churned_after_days: 7}")
    merged = with_line(9, "      established: {<<: *recency, churned_after_days: 30}", merged)
    merged = "\n".join(merged.splitlines()[:9]) + "\n"
    established = parse_playbook(merged).churn.preset.established
    assert (established.silent_after_days, established.churned_after_days) == (3, 30)


def test_a_missing_or_unsupported_version_names_the_supported_one() -> None:
    missing = only(SMALL.removeprefix("version: 1\n"))
    assert (missing.line, missing.column) == (1, 1)  # the top mapping, now starting at churn
    assert "`version` is missing" in missing.message and "version: 1" in missing.message
    for written in ("2", "'1'", "true"):
        p = only(with_line(1, f"version: {written}"))
        assert (p.line, p.path) == (1, "version")
        assert "not supported" in p.message and "playbook version 1" in p.message


def test_an_empty_file_or_one_that_is_not_a_mapping_is_refused() -> None:
    for text in ("", "\n", "# only a comment\n"):
        p = only(text)
        assert p.line is None and "empty" in p.message
    listed = only("- version\n- churn\n")
    assert listed.line == 1 and "mapping of sections" in listed.message and "list" in listed.message
    section = only(SMALL + "risk:\n")
    assert (section.line, section.path) == (12, "risk") and "section is empty" in section.message


def test_a_missing_key_points_at_the_mapping_that_should_hold_it() -> None:
    p = only(with_line(7, "      # en: Tools"))
    assert (p.line, p.column) == (5, 5)  # `tools:`
    assert p.path == "churn.presets.tools.en" and "key 'en' is missing" in p.message


def test_errors_inside_lists_point_at_the_item() -> None:
    text = SMALL + (
        "      depth_signals:\n"  # 12
        "        - name: quiet\n"  # 13
        "          zh: 安静\n"  # 14
        "          en: quiet\n"  # 15
        "          shift: 2\n"  # 16
        "          when:\n"  # 17
        "            - {event: open, at_least: 1}\n"  # 18
        "            - {event: open, at_most: 1, at_least: 3}\n"  # 19
    )
    found = problems_of(text)
    assert [(p.line, p.path) for p in found] == [
        (16, "churn.presets.tools.depth_signals[0].shift"),
        (19, "churn.presets.tools.depth_signals[0].when[1].at_least"),
    ]
    assert "at_least (3) is above at_most (1)" in found[1].message


def test_every_problem_is_listed_as_file_line_column_path_message() -> None:
    flow = "      new_users: {silent_after_days: 0, churned_after_days: 7}"
    text = with_line(11, "        churned_after_days: x", with_line(8, flow))
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "my.yaml")
    first, second = str(caught.value).splitlines()
    assert first.startswith(
        f"my.yaml:8:{flow.index('silent') + 1}: churn.presets.tools.new_users.silent_after_days: "
    )
    assert "greater than or equal to 1" in first
    assert second.startswith("my.yaml:11:9: churn.presets.tools.established.churned_after_days: ")
    assert second.endswith("(got 'x')")


def test_aliases_that_recurse_or_explode_are_refused() -> None:
    assert "alias refers to the value that contains it" in only("a: &a [*a]\n").message
    lines = ["version: 1", "l0: &l0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"]
    for i in range(1, 7):  # 10^7 values once expanded
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    assert "expands to more than" in only("\n".join(lines) + "\n").message
    assert "nested too deeply" in only("a: " + "[" * 2000 + "]" * 2000 + "\n").message


# --- the structural diff ----------------------------------------------------------------


def edited_default(*edits: tuple[str, str]) -> str:
    """The shipped default with each `old` text (which must occur once) replaced by `new`."""
    text = default_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_the_diff_lists_exactly_the_settings_changed() -> None:
    text = edited_default(
        ("  industry: ecommerce\n", "  industry: food\n"),
        (
            "established: {silent_after_days: 15, churned_after_days: 30}",
            "established: {silent_after_days: 20, churned_after_days: 30}",
        ),
        (
            "{event: order_paid, within_days: 21, at_most: 0}",
            "{event: order_paid, within_days: 28, at_most: 0}",
        ),
        # a comment and a default spelled out change no setting
        ("  resurrected_days: 7\n", "  resurrected_days: 7   # as before\n"),
    )
    changes = playbook_changes(default_playbook(), parse_playbook(text))
    assert sorted(changes, key=lambda c: c.path) == [
        Change("churn.industry", "ecommerce", "food"),
        Change("churn.presets.ecommerce.established.silent_after_days", 15, 20),
        Change("churn.presets.food.depth_signals[stopped_ordering].when[1].within_days", 21, 28),
    ]
    diff = unified_diff(default_text(), text, "default.yaml", "mine.yaml")
    assert diff.startswith("--- default.yaml\n+++ mine.yaml\n")
    assert "-      established: {silent_after_days: 15, churned_after_days: 30}\n" in diff
    assert "+      established: {silent_after_days: 20, churned_after_days: 30}\n" in diff
    assert "+  resurrected_days: 7   # as before\n" in diff


def test_the_diff_reports_added_and_removed_items_whole() -> None:
    old = parse_playbook(SMALL)
    signal = {
        "name": "quiet",
        "zh": "安静",
        "en": "quiet",
        "shift": 1,
        "when": [{"event": "open", "within_days": 7, "at_most": 0}],
    }
    grown = SMALL + (
        "      depth_signals:\n"
        "        - {name: quiet, zh: 安静, en: quiet, shift: 1,\n"
        "           when: [{event: open, within_days: 7, at_most: 0}]}\n"
        "    food:\n"
        "      zh: 餐饮\n"
        "      en: Food\n"
        "      new_users: {silent_after_days: 3, churned_after_days: 14}\n"
        "      established: {silent_after_days: 14, churned_after_days: 30}\n"
    )
    new = parse_playbook(grown)
    added = playbook_changes(old, new)
    assert [(c.path, c.kind, c.old) for c in added] == [
        ("churn.presets.tools.depth_signals[quiet]", "added", None),
        ("churn.presets.food", "added", None),
    ]
    assert {k: v for k, v in added[0].new.items() if k != "when"} == {
        **{k: v for k, v in signal.items() if k != "when"},
        "applies_to": "all",
    }
    assert added[0].new["when"][0] == {"page": None, "at_least": None, **signal["when"][0]}
    assert added[1].new["established"] == {"silent_after_days": 14, "churned_after_days": 30}
    removed = playbook_changes(new, old)
    assert [(c.path, c.kind, c.new) for c in removed] == [
        ("churn.presets.tools.depth_signals[quiet]", "removed", None),
        ("churn.presets.food", "removed", None),
    ]


# --- revisions in the state store (SQLite and PostgreSQL) ---------------------------------


@pytest.fixture
def state(state_url: str) -> Iterator[sa.Engine]:
    engine = open_state(state_url)
    yield engine
    engine.dispose()


@pytest.fixture
def shop(state: sa.Engine) -> AppCredentials:
    return create_tenant(state, "shop", "Asia/Shanghai")


def test_apply_history_and_the_revision_in_force(state: sa.Engine, shop: AppCredentials) -> None:
    first = playbook_in_force(state, shop.app_id)
    assert (first.revision, first.text, first.created_at, first.warning) == (
        0,
        default_text(),
        None,
        None,
    )
    assert first.playbook == default_playbook()

    assert apply_playbook(state, shop.app_id, SMALL, note="tools only") == 1
    now = playbook_in_force(state, shop.app_id)
    assert (now.revision, now.text, now.playbook.churn.industry) == (1, SMALL, "tools")
    assert now.created_at is not None and now.created_at.utcoffset() is not None

    # a retried apply of the text in force stores nothing
    assert record_playbook(state, shop.app_id, SMALL).created is False
    assert apply_playbook(state, shop.app_id, SMALL) == 1
    # a broken file is refused, nothing stored, the last good revision stays
    with pytest.raises(PlaybookError):
        apply_playbook(state, shop.app_id, with_line(3, "  industry: retail"))
    assert playbook_in_force(state, shop.app_id).revision == 1

    assert apply_playbook(state, shop.app_id, small(10)) == 2
    # going back to an earlier text is a new revision: it is not the one in force
    assert apply_playbook(state, shop.app_id, SMALL, note="back") == 3
    history = playbook_history(state, shop.app_id)
    assert [(r.revision, r.note) for r in history] == [(3, "back"), (2, None), (1, "tools only")]
    assert history[1].sha256 == hashlib.sha256(small(10).encode()).hexdigest()
    assert history[0].created_at >= history[1].created_at >= history[2].created_at
    # another app's playbook is its own
    other = create_tenant(state, "other", "Asia/Shanghai")
    assert playbook_in_force(state, other.app_id).revision == 0
    assert apply_playbook(state, other.app_id, small(12)) == 1


def test_a_stored_revision_that_no_longer_validates_falls_back(
    state: sa.Engine, shop: AppCredentials
) -> None:
    apply_playbook(state, shop.app_id, SMALL)
    apply_playbook(state, shop.app_id, small(10))

    def store_raw(app_id: str, revision: int, text: str) -> None:
        # as if the schema had changed since this text was applied
        with state.begin() as conn:
            conn.execute(
                sa.insert(playbook_revisions).values(
                    app_id=app_id,
                    revision=revision,
                    text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(),
                    created_at=sa.func.now(),
                )
            )

    store_raw(shop.app_id, 3, SMALL + "retired_section: {}\n")
    store_raw(shop.app_id, 4, "version: 0\n")
    found = playbook_in_force(state, shop.app_id)
    assert (found.revision, found.text, found.playbook.churn.new_user_days) == (2, small(10), 10)
    assert found.warning is not None
    assert "revision 4 no longer validates" in found.warning
    assert "revision 2 is in force" in found.warning

    other = create_tenant(state, "other", "Asia/Shanghai")
    store_raw(other.app_id, 1, "churn: {}\n")
    fallback = playbook_in_force(state, other.app_id)
    assert fallback.revision == 0 and fallback.playbook == default_playbook()
    assert fallback.warning is not None and "shipped default is in force" in fallback.warning


def test_an_unknown_app_is_an_error_not_a_retry_loop(state: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        apply_playbook(state, "app_nope", SMALL)


def run_together(calls: list[Any]) -> list[Any]:
    """Run the calls in threads that start at the same moment; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # reported below, with the others' results
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_applies_get_distinct_revisions(state: sa.Engine, shop: AppCredentials) -> None:
    texts = [small(10 + i) for i in range(6)]
    revisions = run_together([lambda t=t: apply_playbook(state, shop.app_id, t) for t in texts])
    assert sorted(revisions) == [1, 2, 3, 4, 5, 6], revisions
    stored = {r.revision: r.sha256 for r in playbook_history(state, shop.app_id)}
    for text, revision in zip(texts, revisions, strict=True):
        assert stored[revision] == hashlib.sha256(text.encode()).hexdigest()

    # the same text sent by several servers at once is stored once
    same = run_together([lambda: apply_playbook(state, shop.app_id, SMALL)] * 4)
    assert same == [7, 7, 7, 7]
    assert len(playbook_history(state, shop.app_id)) == 7


# --- `liucun playbook …` ------------------------------------------------------------------


class Cli:
    """`liucun` run in-process with a private data dir (SQLite state store)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in [n for n in os.environ if n.startswith("LIUCUN_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("LIUCUN_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.chdir(tmp_path)  # no stray liucun.toml
        self.tmp = tmp_path
        self.runner = CliRunner()

    def __call__(self, *args: str | Path) -> Any:
        return self.runner.invoke(cli_app, [str(a) for a in args])

    def file(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path


def flat(text: str) -> str:
    """Rich wraps long messages: compare them with the line breaks undone."""
    return " ".join(text.split())


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(tmp_path, monkeypatch)


def test_cli_validate(run: Cli) -> None:
    good = run("playbook", "validate", run.file("default.yaml", default_text()))
    assert good.exit_code == 0, good.output
    assert good.stdout.count("\n") == 1
    assert "valid" in good.stdout and "ecommerce" in good.stdout and "stopped_buying" in good.stdout
    summary = json.loads(run("playbook", "validate", "default.yaml", "--json").stdout)
    assert summary == {
        "valid": True,
        "version": 1,
        "industry": "ecommerce",
        "presets": ["ecommerce", "education", "tools", "billpay", "finance", "food"],
        "depth_signals": ["stopped_buying"],
    }

    bad = run.file("bad.yaml", with_line(3, "  industry: retail"))
    refused = run("playbook", "validate", bad)
    assert refused.exit_code == 1
    assert f"{bad}:3:3: churn.industry: industry 'retail' has no preset" in refused.stderr
    assert "invalid" in flat(refused.stderr)
    as_json = run("playbook", "validate", bad, "--json")
    assert as_json.exit_code == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert [(p["line"], p["column"], p["path"]) for p in problems] == [(3, 3, "churn.industry")]

    assert run("playbook", "validate", run.tmp / "nope.yaml").exit_code == 2
    not_utf8 = run.tmp / "latin1.yaml"
    not_utf8.write_bytes(b"version: 1\n# caf\xe9\n")
    latin = run("playbook", "validate", not_utf8)
    assert latin.exit_code == 1 and f"{not_utf8}:2: not UTF-8" in latin.stderr


def test_cli_apply_show_history_and_diff(run: Cli) -> None:
    engine = open_state(f"sqlite:///{run.tmp / 'data' / 'state.sqlite'}")
    create_tenant(engine, "shop", "Asia/Shanghai")
    engine.dispose()

    shown = run("playbook", "show")
    assert shown.exit_code == 0 and shown.stdout == default_text()
    assert "revision 0" in shown.stderr

    mine = run.file("mine.yaml", SMALL)
    applied = run("playbook", "apply", mine, "--app", "shop", "--note", "tools only")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.startswith("revision 1 in force")
    again = run("playbook", "apply", mine, "--app", "shop")
    assert (
        again.exit_code == 0
        and "revision 1 in force" in again.stdout
        and "unchanged" in again.stdout
    )

    broken = run.file("broken.yaml", with_line(11, "        churned_after_days: 3"))
    refused = run("playbook", "apply", broken, "--app", "shop")
    assert refused.exit_code == 1
    assert f"{broken}:11:9: churn.presets.tools.established.churned_after_days:" in refused.stderr
    assert "revision 1 stays in force" in flat(refused.stderr)
    assert run("playbook", "apply", run.tmp / "nope.yaml", "--app", "shop").exit_code == 2
    assert run("playbook", "apply", mine, "--app", "nope").exit_code == 1
    assert run("playbook", "apply", mine, "--app", "shop", "--note", "x" * 501).exit_code == 2

    in_force = run("playbook", "show", "--app", "shop")
    assert in_force.exit_code == 0 and in_force.stdout == SMALL
    assert "revision 1 in force" in in_force.stderr
    assert run("playbook", "show", "--app", "shop", "--default").stdout == default_text()
    assert run("playbook", "show", "--app", "shop", "--revision", "1").stdout == SMALL
    assert run("playbook", "show", "--app", "shop", "--revision", "9").exit_code == 2
    assert run("playbook", "show", "--revision", "1").exit_code == 2

    # the diff: against the app's revision 1, then against the default
    next_text = small(10)
    diffed = run("playbook", "diff", run.file("next.yaml", next_text), "--app", "shop", "--json")
    assert diffed.exit_code == 0, diffed.output
    body = json.loads(diffed.stdout)
    assert body["base_revision"] == 1
    assert body["changes"] == [
        {"path": "churn.new_user_days", "old": 7, "new": 10, "kind": "changed"}
    ]
    assert "+  new_user_days: 10\n" in body["unified_diff"]
    table = run("playbook", "diff", "next.yaml", "--app", "shop")
    assert table.exit_code == 0 and "churn.new_user_days" in table.stdout
    assert "+  new_user_days: 10" in table.stdout
    against_default = run("playbook", "diff", "next.yaml", "--json")
    paths = {c["path"] for c in json.loads(against_default.stdout)["changes"]}
    assert {"churn.industry", "churn.new_user_days", "churn.presets.ecommerce"} <= paths
    assert run("playbook", "diff", broken, "--app", "shop").exit_code == 1

    run("playbook", "apply", "next.yaml", "--app", "shop")
    history = run("playbook", "history", "--app", "shop", "--json")
    assert history.exit_code == 0
    rows = json.loads(history.stdout)
    assert [(r["revision"], r["note"], r["in_force"]) for r in rows] == [
        (2, None, True),
        (1, "tools only", False),
    ]
    assert rows[1]["sha256"] == hashlib.sha256(SMALL.encode()).hexdigest()
    listed = run("playbook", "history", "--app", "shop")
    assert listed.exit_code == 0 and "tools only" in listed.stdout


# --- the admin API ------------------------------------------------------------------------

SERVER_ADMIN = "server-admin-token-for-playbook-tests"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(
            settings.model_copy(
                update={"admin_token": SERVER_ADMIN, "max_body_bytes": 20_000, "ingest_workers": 0}
            )
        )
    ) as c:
        yield c


@pytest.fixture
def tenant(settings: Settings, client: TestClient) -> AppCredentials:
    engine = open_state(settings.state_store_url)
    try:
        return create_tenant(engine, "shop", "Asia/Shanghai")
    finally:
        engine.dispose()


def test_http_playbook(client: TestClient, tenant: AppCredentials) -> None:
    auth = {"Authorization": f"Bearer {tenant.admin_token}"}
    yaml_body = {**auth, "Content-Type": "text/yaml"}
    base = "/admin/v1/apps/shop/playbook"

    r = client.get(base, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["revision"], got["text"], got["warning"]) == (0, default_text(), None)
    assert got["playbook"]["churn"]["presets"]["ecommerce"]["established"] == {
        "silent_after_days": 15,
        "churned_after_days": 30,
    }

    r = client.put(base, content=SMALL.encode(), headers=yaml_body)
    assert (r.status_code, r.json()) == (201, {"revision": 1}), r.text
    r = client.put(f"/admin/v1/apps/{tenant.app_id}/playbook", content=SMALL, headers=yaml_body)
    assert (r.status_code, r.json()) == (200, {"revision": 1})
    r = client.put(base, json={"text": small(10), "note": "longer"}, headers=auth)
    assert (r.status_code, r.json()) == (201, {"revision": 2})
    plain = {**auth, "Content-Type": "text/plain; charset=utf-8"}
    r = client.put(base, params={"note": "three"}, content=small(11), headers=plain)
    assert (r.status_code, r.json()) == (201, {"revision": 3})

    r = client.put(base, content=with_line(3, "  industry: retail"), headers=yaml_body)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "line": 3,
            "column": 3,
            "path": "churn.industry",
            "message": "industry 'retail' has no preset; presets: tools",
        }
    ]
    r = client.get(base, headers=auth)
    assert (r.json()["revision"], r.json()["text"]) == (3, small(11))

    r = client.post(f"{base}/validate", content=small(12), headers=yaml_body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "valid": True,
        "changes": [{"path": "churn.new_user_days", "old": 11, "new": 12, "kind": "changed"}],
    }
    r = client.post(f"{base}/validate", json={"text": "version: 3\n"}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "version"
    r = client.post(f"{base}/validate", json={"txt": SMALL}, headers=auth)
    assert r.status_code == 422
    r = client.post(
        f"{base}/validate", content=SMALL, headers={**auth, "Content-Type": "image/png"}
    )
    assert r.status_code == 415
    r = client.put(base, content=b"#" * 30_000, headers=yaml_body)
    assert r.status_code == 413
    r = client.put(base, json={"text": small(13), "note": "x" * 501}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "note"

    r = client.get(f"{base}/revisions", headers=auth)
    assert r.status_code == 200
    assert [(x["revision"], x["note"]) for x in r.json()] == [
        (3, "three"),
        (2, "longer"),
        (1, None),
    ]
    assert r.json()[2]["sha256"] == hashlib.sha256(SMALL.encode()).hexdigest()

    assert client.get(base).status_code == 401
    assert client.put(base, content=SMALL, headers={"Content-Type": "text/yaml"}).status_code == 401
    server = {"Authorization": f"Bearer {SERVER_ADMIN}"}
    assert client.get("/admin/v1/apps/nope/playbook", headers=server).status_code == 404
    assert client.get("/admin/v1/apps/nope/playbook/revisions", headers=server).status_code == 404
    other = {"Authorization": f"Bearer {tenant.admin_token}", "Content-Type": "text/yaml"}
    assert (
        client.put("/admin/v1/apps/nope/playbook", content=SMALL, headers=other).status_code == 403
    )


def test_section_defaults_in_code_match_the_shipped_file() -> None:
    # the models' own defaults (used when a section is built in code) must not drift from
    # the default.yaml operators read
    from liucun.playbook.alerts import AlertRules
    from liucun.playbook.loyalty import LoyaltyRules
    from liucun.playbook.risk import RiskSettings
    from liucun.playbook.winback import WinbackRules

    shipped = default_playbook()
    assert WinbackRules() == shipped.winback
    assert RiskSettings() == shipped.risk
    assert AlertRules() == shipped.alerts
    assert LoyaltyRules() == shipped.loyalty
