"""Invites, group buys and help-unlocks: every refusal by its code; both sides of an invite
rewarded once (the same key again, another key, the first order twice); the inviter's monthly
limit, also with thirty invitees accepting at once; a group of 3 that twenty users race to join
forms with exactly 3 members, each rewarded once; a friend helping ten times at once counts
once; goals past their deadline fail and list the members to refund; coupon rewards, one sold
out; the HTTP routes. Every test runs on SQLite and on PostgreSQL.

Asia/Shanghai is UTC+8: 16:00Z is local midnight of the next date.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.invites import (
    accept_invite,
    invite_status,
    on_first_order,
    record_device,
)
from liucun.loyalty.ledger import journal_balance
from liucun.loyalty.members import find_member, lock_member, update_member
from liucun.loyalty.programme import Programme, programme_of
from liucun.loyalty.social import (
    close_expired_goals,
    goal_status,
    join_goal,
    start_goal,
)
from liucun.loyalty.tokens import mint_user_token
from liucun.playbook.loyalty import LoyaltyRules
from liucun.playbook.store import apply_playbook
from liucun.state.apps import create_app, find_app
from liucun.state.db import write_transaction
from liucun.state.tables import coupons, loyalty_rewards, social_goals, social_members
from tests.loyalty_helpers import loyalty_server

TZ = "Asia/Shanghai"
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 local, Friday 20 November 2026

POINT_REWARDS: dict[str, Any] = {
    "new_user_pack": {"enabled": False},  # members are made all the time here: no welcome
    "invites": {
        "reward_on": "first_visit",
        "inviter": {"points": 50},
        "invitee": {"points": 30},
        "invitee_max_days": 1,
        "monthly_limit": 3,
    },
    "group_buys": [
        {"name": "group_3", "zh": "三人团", "en": "Group of 3", "people": 3, "hours": 24,
         "reward": {"points": 20}},
    ],
    "help_unlocks": [
        {"name": "help_3", "zh": "三人助力", "en": "3 helpers", "people": 3, "hours": 24,
         "reward": {"points": 15}},
    ],
}  # fmt: skip


def new_programme(engine: sa.Engine, loyalty: dict[str, Any] | None = None) -> Programme:
    """A new app in Asia/Shanghai whose playbook sets the `loyalty` keys given."""
    creds = create_app(engine, f"shop-{secrets.token_hex(6)}", TZ)
    if loyalty is not None:
        text = yaml.safe_dump({"version": 1, "loyalty": loyalty}, allow_unicode=True)
        apply_playbook(engine, creds.app_id, text)
    return programme_of(engine, find_app(engine, creds.app_id))


def with_invites(**invites: Any) -> dict[str, Any]:
    return {**POINT_REWARDS, "invites": {**POINT_REWARDS["invites"], **invites}}


@pytest.fixture
def prog(engine: sa.Engine) -> Programme:
    return new_programme(engine, POINT_REWARDS)


def member_at(engine: sa.Engine, prog: Programme, user: str, now: datetime = T0) -> str:
    """Make `user` a member (joined at `now`); its invite code."""
    with write_transaction(engine) as conn:
        return lock_member(conn, prog, user, now).invite_code


def balance(engine: sa.Engine, prog: Programme, user: str) -> int:
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user)
        assert member is None or member.balance == journal_balance(conn, prog.app_id, user)
        return member.balance if member else 0


def rewards_of(engine: sa.Engine, prog: Programme, user: str) -> list[str]:
    r = loyalty_rewards.c
    with engine.connect() as conn:
        query = sa.select(r.reward_key).where(r.app_id == prog.app_id, r.user_id == user)
        return sorted(conn.execute(query).scalars())


def refusal(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(LoyaltyError) as refused:
        call()
    return refused.value.code, refused.value.status


def race(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[str]]:
    """Run the calls at once on threads; their results and refusal codes."""
    results: list[Any] = []
    codes: list[str] = []
    start = threading.Barrier(len(calls))
    lock = threading.Lock()

    def run(call: Callable[[], Any]) -> None:
        start.wait()
        try:
            got = call()
            with lock:
                results.append(got)
        except LoyaltyError as exc:
            with lock:
                codes.append(exc.code)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, codes


# --------------------------------------------------------------------------- invites


def test_invite_refusals(engine: sa.Engine, prog: Programme) -> None:
    code = member_at(engine, prog, "inviter")
    other_code = member_at(engine, prog, "other")

    def accept(user: str, code: str, device: str | None = None, key: str | None = None) -> Any:
        return accept_invite(engine, prog, user, code, device, T0, key or secrets.token_hex(8))

    assert refusal(lambda: accept("newbie", "NOSUCH99")) == ("unknown_invite_code", 404)
    assert refusal(lambda: accept("inviter", code)) == ("self_invite", 409)
    # the inviter used device dev-1; a newcomer on dev-1 is the same person
    with write_transaction(engine) as conn:
        record_device(conn, prog, lock_member(conn, prog, "inviter", T0), "dev-1")
    assert refusal(lambda: accept("twin", code, "dev-1")) == ("same_device", 409)
    # a device seen for the invitee earlier (X-Device-Id) counts as well
    with write_transaction(engine) as conn:
        record_device(conn, prog, lock_member(conn, prog, "twin2", T0), "dev-1")
    assert refusal(lambda: accept("twin2", code, "dev-9")) == ("same_device", 409)
    # an old user: joined 2 local days before (the limit is 1)
    member_at(engine, prog, "old", T0 - timedelta(days=2))
    assert refusal(lambda: accept("old", code)) == ("not_a_new_user", 409)
    # joined yesterday local time, just before midnight: 1 day, accepted
    member_at(engine, prog, "yesterday", datetime(2026, 11, 18, 16, 0, tzinfo=UTC))
    assert accept("yesterday", code.lower(), "dev-2").result["inviter"] == "inviter"
    # someone who paid an order already is not new either
    with write_transaction(engine) as conn:
        update_member(conn, lock_member(conn, prog, "buyer", T0), paid_orders=1)
    assert refusal(lambda: accept("buyer", code)) == ("not_a_new_user", 409)
    # bound once: another code later is refused
    assert refusal(lambda: accept("yesterday", other_code)) == ("already_invited", 409)
    # the inviter cannot accept its own invitee's code
    invitee_code = member_at(engine, prog, "yesterday")
    assert refusal(lambda: accept("inviter", invitee_code)) == ("mutual_invite", 409)
    off = new_programme(engine, with_invites(enabled=False))
    off_code = member_at(engine, off, "a")
    refused = refusal(lambda: accept_invite(engine, off, "b", off_code, None, T0, "k"))
    assert refused == ("invites_disabled", 403)
    # nothing refused changed anything: only the accepted invite was rewarded
    assert balance(engine, prog, "inviter") == 50
    assert [balance(engine, prog, u) for u in ("twin", "twin2", "old", "buyer")] == [0] * 4


def test_both_sides_rewarded_once_on_first_visit(engine: sa.Engine, prog: Programme) -> None:
    code = member_at(engine, prog, "inviter")
    first = accept_invite(engine, prog, "newbie", code, "dev-n", T0, "accept-1")
    assert not first.replayed
    assert first.result["rewards"]["inviter"]["status"] == "granted"
    assert first.result["rewards"]["invitee"]["reward"]["points"] == 30
    again = accept_invite(engine, prog, "newbie", code, "dev-n", T0, "accept-1")
    assert again.replayed and again.result["rewards"] == first.result["rewards"]
    assert refusal(
        lambda: accept_invite(engine, prog, "newbie", code, "dev-n", T0, "accept-2")
    ) == ("already_invited", 409)
    # the same key for another request is refused
    assert refusal(
        lambda: accept_invite(engine, prog, "newbie", code, "dev-other", T0, "accept-1")
    ) == ("idempotency_key_reused", 409)
    assert (balance(engine, prog, "inviter"), balance(engine, prog, "newbie")) == (50, 30)
    assert rewards_of(engine, prog, "inviter") == ["invite:newbie:inviter"]
    assert rewards_of(engine, prog, "newbie") == ["invite:newbie:invitee"]
    status = invite_status(engine, prog, "inviter", T0)
    assert status["code"] == code and status["rewarded_this_month"] == 1
    assert [
        (i["user_id"], i["inviter_rewarded"], i["invitee_rewarded"]) for i in status["invitees"]
    ] == [("newbie", True, True)]
    mine = invite_status(engine, prog, "newbie", T0)
    assert mine["invited_by"]["user_id"] == "inviter" and mine["invited_by"]["rewarded"]


def test_first_order_rewards_both_sides_once(engine: sa.Engine) -> None:
    prog = new_programme(engine, with_invites(reward_on="first_order"))
    # an inviter whose id sorts after the invitee's, and one whose id sorts before
    for inviter, invitee in [("zed", "amy"), ("abe", "zoe")]:
        code = member_at(engine, prog, inviter)
        accepted = accept_invite(engine, prog, invitee, code, None, T0, f"acc-{invitee}")
        assert accepted.result["rewards"] is None
        assert balance(engine, prog, inviter) == balance(engine, prog, invitee) == 0
        for attempt in range(2):  # the reactions may see the order twice
            with write_transaction(engine) as conn:
                member = lock_member(conn, prog, invitee, T0 + timedelta(hours=1))
                got = on_first_order(conn, prog, member, T0 + timedelta(hours=1))
            if attempt == 0:
                assert got is not None and got["inviter"]["status"] == "granted"
            else:
                assert got is None  # rewarded already
        assert (balance(engine, prog, inviter), balance(engine, prog, invitee)) == (50, 30)
    # someone never invited: nothing
    with write_transaction(engine) as conn:
        assert on_first_order(conn, prog, lock_member(conn, prog, "solo", T0), T0) is None


def test_the_inviter_is_rewarded_at_most_monthly_limit_times_a_month(engine: sa.Engine) -> None:
    prog = new_programme(engine, with_invites(monthly_limit=2))
    code = member_at(engine, prog, "inviter")
    statuses = []
    for i in range(3):
        accepted = accept_invite(engine, prog, f"n{i}", code, None, T0, f"k{i}")
        statuses.append(accepted.result["rewards"]["inviter"]["status"])
        assert balance(engine, prog, f"n{i}") == 30  # the invitee is always rewarded
    assert statuses == ["granted", "granted", "monthly_limit"]
    assert balance(engine, prog, "inviter") == 100
    # December 1st, local: a new month (16:00Z on 30 November)
    december = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    accepted = accept_invite(engine, prog, "n3", code, None, december, "k3")
    assert accepted.result["rewards"]["inviter"]["status"] == "granted"
    assert invite_status(engine, prog, "inviter", december)["rewarded_this_month"] == 1
    assert invite_status(engine, prog, "inviter", T0)["invitees_total"] == 4


def test_thirty_invitees_at_once_reward_the_inviter_monthly_limit_times(
    engine: sa.Engine,
) -> None:
    prog = new_programme(engine, with_invites(monthly_limit=5))
    code = member_at(engine, prog, "m-inviter")
    # ids on both sides of the inviter's in sorted order: locks are taken in that order
    users = [f"{p}-{i}" for i in range(15) for p in ("a", "z")]
    results, codes = race(
        [
            lambda u=u: accept_invite(engine, prog, u, code, f"dev-{u}", T0, f"key-{u}")
            for u in users
        ]
    )
    assert codes == [] and len(results) == 30
    sides = Counter(r.result["rewards"]["inviter"]["status"] for r in results)
    assert sides == {"granted": 5, "monthly_limit": 25}
    assert balance(engine, prog, "m-inviter") == 5 * 50
    assert all(balance(engine, prog, u) == 30 for u in users)


def test_one_invitee_racing_ten_codes_binds_once(engine: sa.Engine, prog: Programme) -> None:
    codes = [member_at(engine, prog, f"inv-{i}") for i in range(10)]
    results, refused = race(
        [
            lambda c=c, i=i: accept_invite(engine, prog, "newbie", c, None, T0, f"k-{i}")
            for i, c in enumerate(codes)
        ]
    )
    assert len(results) == 1 and Counter(refused) == {"already_invited": 9}
    assert balance(engine, prog, "newbie") == 30
    assert sum(balance(engine, prog, f"inv-{i}") for i in range(10)) == 50


# --------------------------------------------------------------------------- groups, helps


def start(engine: sa.Engine, prog: Programme, kind: str, owner: str, now: datetime = T0) -> str:
    offer = "group_3" if kind == "group" else "help_3"
    outcome = start_goal(engine, prog, kind, offer, owner, now, f"start-{secrets.token_hex(8)}")
    return str(outcome.result["goal_id"])


def test_a_group_of_three_raced_by_twenty_forms_with_exactly_three(
    engine: sa.Engine, prog: Programme
) -> None:
    goal = start(engine, prog, "group", "owner")
    status = goal_status(engine, prog, goal, T0)
    assert (status["needed"], status["joined"], status["status"]) == (3, 1, "open")
    joiners = [f"j{i:02d}" for i in range(20)]
    results, codes = race(
        [lambda u=u: join_goal(engine, prog, goal, u, T0, f"join-{u}") for u in joiners]
    )
    assert len(results) == 2 and Counter(codes) == {"goal_full": 18}
    status = goal_status(engine, prog, goal, T0)
    assert (status["joined"], status["status"]) == (3, "formed")
    members = {m["user_id"] for m in status["members"]}
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(social_members.c.user_id).where(social_members.c.goal_id == goal)
        ).scalars()
        assert set(stored) == members and len(members) == 3 and "owner" in members
    assert all(m["rewarded"] for m in status["members"])
    for user in members:
        assert rewards_of(engine, prog, user) == [f"group:{goal}:{user}"]
        assert balance(engine, prog, user) == 20
    assert all(balance(engine, prog, u) == 0 for u in set(joiners) - members)
    # closing rewards nothing twice and fails nothing formed
    assert close_expired_goals(engine, prog, T0 + timedelta(days=2)) == []
    assert sum(balance(engine, prog, u) for u in members) == 60


def test_a_friend_helping_ten_times_at_once_counts_once(engine: sa.Engine, prog: Programme) -> None:
    goal = start(engine, prog, "help", "owner")
    results, codes = race(
        [lambda i=i: join_goal(engine, prog, goal, "friend", T0, f"help-{i}") for i in range(10)]
    )
    assert len(results) == 1 and Counter(codes) == {"already_helped": 9}
    assert goal_status(engine, prog, goal, T0)["joined"] == 1
    assert refusal(lambda: join_goal(engine, prog, goal, "owner", T0, "self")) == (
        "self_help",
        409,
    )
    join_goal(engine, prog, goal, "friend2", T0, "h2")
    done = join_goal(engine, prog, goal, "friend3", T0, "h3")
    assert done.result["status"] == "formed" and done.result["owner_rewarded"]
    assert refusal(lambda: join_goal(engine, prog, goal, "friend4", T0, "h4")) == (
        "goal_full",
        409,
    )
    # the same key again answers as before and changes nothing
    assert join_goal(engine, prog, goal, "friend3", T0, "h3").replayed
    assert rewards_of(engine, prog, "owner") == [f"help:{goal}"]
    assert balance(engine, prog, "owner") == 15
    assert [balance(engine, prog, f) for f in ("friend", "friend2", "friend3")] == [0, 0, 0]


def test_goal_refusals(engine: sa.Engine, prog: Programme) -> None:
    group = start(engine, prog, "group", "owner")
    assert refusal(lambda: join_goal(engine, prog, "nope", "u", T0, "k1")) == (
        "unknown_goal",
        404,
    )
    # a group asked for as a help-unlock is unknown there
    assert refusal(lambda: join_goal(engine, prog, group, "u", T0, "k2", "help")) == (
        "unknown_goal",
        404,
    )
    assert refusal(lambda: join_goal(engine, prog, group, "owner", T0, "k3")) == (
        "already_joined",
        409,
    )
    join_goal(engine, prog, group, "u", T0, "k4")
    assert refusal(lambda: join_goal(engine, prog, group, "u", T0, "k5")) == (
        "already_joined",
        409,
    )
    assert refusal(lambda: start_goal(engine, prog, "group", "group_3", "owner", T0, "again")) == (
        "goal_already_open",
        409,
    )
    assert refusal(lambda: start_goal(engine, prog, "group", "group_99", "owner", T0, "k6")) == (
        "unknown_group_buy",
        404,
    )
    assert refusal(lambda: start_goal(engine, prog, "help", "nope", "owner", T0, "k7")) == (
        "unknown_help_unlock",
        404,
    )
    # past the deadline (24 hours): closed, even before the close job ran
    late = T0 + timedelta(hours=24)
    assert refusal(lambda: join_goal(engine, prog, group, "v", late, "k8")) == (
        "goal_closed",
        409,
    )
    assert goal_status(engine, prog, group, late)["status"] == "failed"


def test_expired_goals_fail_and_list_the_members_to_refund(
    engine: sa.Engine, prog: Programme
) -> None:
    group = start(engine, prog, "group", "owner")
    join_goal(engine, prog, group, "buddy", T0 + timedelta(hours=1), "j1")
    helped = start(engine, prog, "help", "asker")
    join_goal(engine, prog, helped, "kind", T0, "h1")
    later = start(engine, prog, "group", "late-owner", T0 + timedelta(hours=5))
    deadline = T0 + timedelta(hours=24)
    assert close_expired_goals(engine, prog, deadline - timedelta(seconds=1)) == []
    failed = close_expired_goals(engine, prog, deadline)
    by_goal = {f["goal_id"]: f for f in failed}
    assert set(by_goal) == {group, helped}  # the later group is still open
    assert by_goal[group]["refund"] == ["owner", "buddy"]
    assert by_goal[helped]["refund"] == [] and by_goal[helped]["members"] == ["kind"]
    assert close_expired_goals(engine, prog, deadline) == []  # once
    assert refusal(lambda: join_goal(engine, prog, group, "x", T0, "j2")) == ("goal_closed", 409)
    assert goal_status(engine, prog, later, deadline)["status"] == "open"
    assert rewards_of(engine, prog, "owner") == [] and balance(engine, prog, "asker") == 0
    # a new goal of the same offer can start once the old one failed
    assert (
        start_goal(engine, prog, "group", "group_3", "owner", deadline, "s2").result["joined"] == 1
    )


def test_close_gives_a_formed_goals_missing_rewards(engine: sa.Engine, prog: Programme) -> None:
    goal = start(engine, prog, "help", "owner")
    # formed, as if the server stopped after the forming join committed, before the rewards
    with write_transaction(engine) as conn:
        conn.execute(
            social_goals.update()
            .where(social_goals.c.goal_id == goal)
            .values(status="formed", joined=3, closed_at=T0)
        )
    assert balance(engine, prog, "owner") == 0
    assert close_expired_goals(engine, prog, T0 + timedelta(hours=1)) == []
    assert balance(engine, prog, "owner") == 15
    close_expired_goals(engine, prog, T0 + timedelta(hours=2))
    assert balance(engine, prog, "owner") == 15


def test_the_longest_user_ids_fit_the_reward_keys(engine: sa.Engine, prog: Programme) -> None:
    long = ["a" * 199 + "1", "a" * 199 + "2", "a" * 199 + "3"]  # 200 characters, the maximum
    code = member_at(engine, prog, long[0])
    accept_invite(engine, prog, long[1], code, None, T0, "long-accept")
    assert (balance(engine, prog, long[0]), balance(engine, prog, long[1])) == (50, 30)
    goal = start(engine, prog, "group", long[0])
    join_goal(engine, prog, goal, long[1], T0, "long-1")
    assert join_goal(engine, prog, goal, long[2], T0, "long-2").result["status"] == "formed"
    assert [balance(engine, prog, u) for u in long] == [50 + 20, 30 + 20, 20]
    assert invite_status(engine, prog, long[0], T0)["invitees"][0]["inviter_rewarded"]


# --------------------------------------------------------------------------- coupon rewards


def test_coupon_rewards_for_invites_and_groups(engine: sa.Engine) -> None:
    # the default coupons, the group's at most 2 issued: the third member finds none left
    templates = [t.model_dump(exclude_none=True) for t in LoyaltyRules().coupons.templates]
    for template in templates:
        if template["name"] == "group_20":
            template["total_limit"] = 2
    prog = new_programme(
        engine,
        {
            "new_user_pack": {"enabled": False},
            "invites": {"reward_on": "first_visit"},
            "coupons": {"templates": templates},
        },
    )
    code = member_at(engine, prog, "inviter")
    accepted = accept_invite(engine, prog, "newbie", code, None, T0, "acc")
    got = accepted.result["rewards"]
    assert got["inviter"]["reward"]["coupon"]["template"] == "invite_10"
    assert got["invitee"]["reward"]["coupon"]["template"] == "invite_10"
    goal = start(engine, prog, "group", "owner")
    join_goal(engine, prog, goal, "m1", T0, "j1")
    done = join_goal(engine, prog, goal, "m2", T0, "j2")
    assert done.result["status"] == "formed"
    with engine.connect() as conn:
        issued = conn.execute(
            sa.select(coupons.c.user_id, coupons.c.template).where(coupons.c.app_id == prog.app_id)
        ).all()
    assert Counter(t for _, t in issued) == {"invite_10": 2, "group_20": 2}
    rewarded = [m["user_id"] for m in done.result["members"] if m["rewarded"]]
    assert len(rewarded) == 2  # the coupon sold out for the third: the others kept theirs
    # the help-unlock's discount coupon goes to the owner
    helped = start(engine, prog, "help", "asker")
    for friend in ("f1", "f2", "f3"):
        join_goal(engine, prog, helped, friend, T0, f"h-{friend}")
    with engine.connect() as conn:
        owned = conn.execute(
            sa.select(coupons.c.template).where(
                coupons.c.app_id == prog.app_id, coupons.c.user_id == "asker"
            )
        ).scalars()
        assert list(owned) == ["help_discount"]


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def api(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    text = yaml.safe_dump({"version": 1, "loyalty": POINT_REWARDS}, allow_unicode=True)
    with loyalty_server(tmp_path, state_url, T0, text) as srv:
        yield {"client": srv.client, "runtime": srv.runtime, "creds": srv.creds, "key": srv.key}


def user_headers(api: dict[str, Any], user: str, **extra: str) -> dict[str, str]:
    key, creds = api["key"], api["creds"]
    token = mint_user_token(creds.app_id, user, key.key_id, key.secret, T0, 3600)
    return {"Authorization": f"Bearer {token}", **extra}


def test_invite_routes(api: dict[str, Any]) -> None:
    client: TestClient = api["client"]
    inviter = user_headers(api, "inviter", **{"X-Device-Id": "phone-1"})
    mine = client.get("/v1/loyalty/invite", headers=inviter)
    assert mine.status_code == 200, mine.text
    code = mine.json()["code"]
    newbie = user_headers(api, "newbie")
    body = {"code": code, "device_id": "phone-1"}
    same = client.post(
        "/v1/loyalty/invite/accept", json=body, headers={**newbie, "Idempotency-Key": "a1"}
    )
    assert same.status_code == 409 and same.json()["detail"]["code"] == "same_device"
    assert same.json()["detail"]["zh"]
    missing = client.post("/v1/loyalty/invite/accept", json=body, headers=newbie)
    assert missing.status_code == 422 and "Idempotency-Key" in missing.text
    body["device_id"] = "phone-2"
    ok = client.post(
        "/v1/loyalty/invite/accept", json=body, headers={**newbie, "Idempotency-Key": "a2"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["rewards"]["inviter"]["status"] == "granted" and not ok.json()["replayed"]
    again = client.post(
        "/v1/loyalty/invite/accept", json=body, headers={**newbie, "Idempotency-Key": "a2"}
    )
    assert again.json()["replayed"] and again.json()["inviter"] == "inviter"
    status = client.get("/v1/loyalty/invite", headers=inviter).json()
    assert status["invitees"][0]["user_id"] == "newbie" and status["rewarded_this_month"] == 1
    unknown = client.post(
        "/v1/loyalty/invite/accept",
        json={"code": "ZZZZZZZZ", "device_id": "d"},
        headers={**user_headers(api, "x"), "Idempotency-Key": "a3"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"]["code"] == "unknown_invite_code"


def test_group_and_help_routes(api: dict[str, Any]) -> None:
    client: TestClient = api["client"]

    def post(path: str, user: str, key: str, body: Any = None) -> Any:
        headers = user_headers(api, user, **{"Idempotency-Key": key})
        return client.post(path, json=body, headers=headers)

    started = post("/v1/loyalty/groups", "owner", "g1", {"offer": "group_3"})
    assert started.status_code == 200, started.text
    goal = started.json()["goal_id"]
    assert started.json()["joined"] == 1
    assert post(f"/v1/loyalty/groups/{goal}/join", "m1", "j1").json()["joined"] == 2
    formed = post(f"/v1/loyalty/groups/{goal}/join", "m2", "j2")
    assert formed.json()["status"] == "formed"
    assert all(m["rewarded"] for m in formed.json()["members"])
    full = post(f"/v1/loyalty/groups/{goal}/join", "m3", "j3")
    assert full.status_code == 409 and full.json()["detail"]["code"] == "goal_full"
    shown = client.get(f"/v1/loyalty/groups/{goal}", headers=user_headers(api, "m3"))
    assert shown.status_code == 200 and shown.json()["joined"] == 3
    assert (
        client.get(f"/v1/loyalty/helps/{goal}", headers=user_headers(api, "m3")).status_code == 404
    )

    asked = post("/v1/loyalty/helps", "asker", "h0", {"benefit": "help_3"})
    helped = asked.json()["goal_id"]
    assert post(f"/v1/loyalty/helps/{helped}/help", "f1", "h1").json()["joined"] == 1
    twice = post(f"/v1/loyalty/helps/{helped}/help", "f1", "h2")
    assert twice.json()["detail"]["code"] == "already_helped"
    assert post("/v1/loyalty/helps", "asker", "h3", {"benefit": "nope"}).status_code == 404

    runtime = api["runtime"]
    runtime.clock = lambda: T0 + timedelta(days=1)
    admin = {"Authorization": f"Bearer {api['creds'].admin_token}"}
    closed = client.post(
        f"/admin/v1/apps/{api['creds'].app_id}/loyalty/goals/close-expired", headers=admin
    )
    assert closed.status_code == 200, closed.text
    assert [(f["goal_id"], f["refund"]) for f in closed.json()["failed"]] == [(helped, [])]
