"""Schemathesis over the whole OpenAPI document: no 5xx, every response as documented.

Requests carry real credentials (the app's write key, the server admin token) so generated
cases reach the handlers behind the 401s; operations on `{app}` are also tried on the real app.
Each operation gets valid (positive) and invalid (negative) generated requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from liucun.api.app import create_app
from liucun.config import Settings
from liucun.loyalty.points import award_points
from liucun.loyalty.programme import programme_of
from liucun.loyalty.tokens import create_signing_key, mint_user_token
from liucun.state.apps import AppCredentials, find_app
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state

SERVER_ADMIN = "server-admin-token-for-fuzzing"
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# Every operation of the document (building it opens no store).
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in create_app(Settings(data_dir=Path("unused"))).openapi()["paths"].items()
    for method in item
)


@dataclass
class Target:
    schema: schemathesis.BaseSchema
    creds: AppCredentials
    user_token: str  # for the client loyalty routes


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    s = Settings(
        data_dir=tmp / "data",
        state_store=f"sqlite:///{tmp / 'state.sqlite'}",
        admin_token=SERVER_ADMIN,
        daily_at="off",
    )
    engine = open_state(s.state_store_url)
    creds = create_tenant(engine, "fuzz shop", "Asia/Shanghai")
    now = datetime.now(UTC)
    key = create_signing_key(engine, creds.app_id, now)
    assert key.secret is not None
    token = mint_user_token(creds.app_id, "fuzzer", key.key_id, key.secret, now, 36_000)
    # points to spend, so that exchanges can succeed as well as be refused
    prog = programme_of(engine, find_app(engine, creds.app_id))
    award_points(engine, prog, "fuzzer", 100_000, "fuzz-points", now, "fuzzing")
    engine.dispose()
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(s))
    return Target(schema, creds, token)


# Operations whose valid inputs depend on stored data or on several fields at once.
DATA_DEPENDENT = ("/metrics/{kind}", "/funnels/{name}", "/playbook", "/playbook/validate")
DATA_DEPENDENT += ("/playbook/dry-run",)  # a generated text is rarely a valid playbook
DATA_DEPENDENT += ("/alerts/check", "/ack")  # a day after today; an alert id the app lacks
DATA_DEPENDENT += ("/churn/train", "/churn/score", "/users/{person}")  # events, model, score
# `from` after `to`, a range over the limit, a person never labelled, a day out of range
DATA_DEPENDENT += ("/lifecycle/label", "/lifecycle/counts", "/lifecycle/users", "/winback")
DATA_DEPENDENT += ("/daily",)
DATA_DEPENDENT += ("/reports/monthly",)  # a month the app has no events in or after
# loyalty: a member, coupon, goal or key the app lacks; not enough points; a template sold out
LOYALTY_REFUSALS = (404, 409, 422)


def credentials(path: str, target: Target) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that authorise a request to `path`."""
    creds = target.creds
    if path.startswith(("/v1/loyalty/", "/v1/engage/")):
        return {"Authorization": f"Bearer {target.user_token}"}, {}
    if path.startswith("/admin/"):
        return {"Authorization": f"Bearer {SERVER_ADMIN}"}, {}
    if path == "/v1/batch":
        return {"Authorization": f"Bearer {creds.write_key}"}, {}
    return {}, {"api_key": creds.write_key}  # PostHog's endpoints: key in body or query


def test_every_route_is_fuzzed() -> None:
    assert ("POST", "/v1/batch") in OPERATIONS
    assert ("GET", "/admin/v1/apps/{app}/events/export") in OPERATIONS
    assert len(OPERATIONS) >= 10


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_schema(target: Target, method: str, path: str) -> None:
    operation = target.schema[path][method]
    headers, params = credentials(path, target)
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    seen: dict[int, int] = {}

    @given(case=cases)
    @settings(
        max_examples=30,
        deadline=timedelta(seconds=10),
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(headers=headers, params=params, checks=CHECKS)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if "app" in (case.path_parameters or {}) and case.meta.generation.mode.is_positive:
            # the app's own admin token, on its id and on its name
            own = {"Authorization": f"Bearer {target.creds.admin_token}"}
            for ref in (target.creds.app_id, target.creds.name):
                case.path_parameters["app"] = ref
                again = case.call_and_validate(headers=own, params=params, checks=CHECKS)
                # loyalty and campaigns: a member, coupon or campaign the app lacks, a status
                # that does not allow the verb
                refusable = "/loyalty/" in path or "/campaigns" in path
                # segments, tags, profiles: a segment or user the app lacks, a rule tag
                refusable |= "/segments" in path or "/users/{user_id}" in path
                # messages: a message key the app lacks; a channel account missing what its
                # channel needs (the fields depend on the channel in the path)
                refusable |= "/messages/{key}" in path or "/channels/{channel}" in path
                if refusable and again.status_code in LOYALTY_REFUSALS:
                    assert isinstance(again.json()["detail"], str | list | dict), again.text
                    continue
                if path.endswith(DATA_DEPENDENT) and again.status_code in (404, 422):
                    # validity the schema cannot state: an event the app never sent, `from`
                    # after `to`, a window over a year; the answer must still say why
                    assert isinstance(again.json()["detail"], str | list), again.text
                    continue
                assert again.status_code in (200, 201), again.text  # 201: a playbook stored

    check()
    # the credentials worked: some requests got past authentication
    assert any(code not in (401, 403) for code in seen), seen
