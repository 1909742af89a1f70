"""Alipay mini-program template / subscribe messages (`alipay.open.app.mini.templatemessage
.send`: subscription templates need no `form_id`).

A request is a POST to the gateway (`alipay_gateway` setting, https://openapi.alipay.com/
gateway.do) of the common parameters `app_id, method, format=JSON, charset=utf-8,
sign_type=RSA2, timestamp ("yyyy-MM-dd HH:mm:ss", Beijing time), version=1.0, biz_content`
(JSON: `to_user_id` — or `to_open_id` for a recipient that is not a 2088… user id —
`user_template_id, page, data`), plus `sign`: SHA256withRSA with the app's private key over
every other non-empty parameter, sorted by name, joined as `k=v&k=v`, base64-encoded.

The answer is `{"alipay_open_app_mini_templatemessage_send_response": {code, msg, sub_code,
sub_msg}, "sign": …}`, the `sign` made by Alipay's key over the exact text of the response
object; it is checked with the Alipay public key. `code` 10000 is success; 20000 (service
unavailable) is retried; 40004 (business failure, `sub_code` says why) and any other code fail
the message. A success whose signature does not verify fails (the answer cannot be trusted),
and is not retried (it may have been sent).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from liucun.engage.channels import rsa2
from liucun.engage.channels.accounts import Account
from liucun.engage.channels.base import Attempt, Outgoing, http_outcome, timed

METHOD = "alipay.open.app.mini.templatemessage.send"
BEIJING = ZoneInfo("Asia/Shanghai")
ALIPAY_USER_ID = re.compile(r"^2088\d{12}$")


def signing_text(params: dict[str, str]) -> str:
    """The text an Alipay request signature covers: non-empty parameters but `sign`, sorted."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k])


def rsa2_sign(text: str, private_key_pem: str) -> str:
    """The base64 RSA2 (SHA256withRSA) signature of `text` (UTF-8)."""
    key = rsa2.load_private_key(private_key_pem)
    return base64.b64encode(rsa2.sign(text.encode("utf-8"), key)).decode()


def rsa2_verify(text: str, signature: str, public_key_pem: str) -> bool:
    """Whether `signature` (base64) is the RSA2 signature of `text` by the key's owner."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    return rsa2.verify(text.encode("utf-8"), raw, rsa2.load_public_key(public_key_pem))


def response_node(body: str, method: str = METHOD) -> tuple[str, dict[str, Any]] | None:
    """The response object's exact text (what Alipay signed) and its value: under
    `<method with _>_response`, or `error_response` for gateway-level errors."""
    for name in (method.replace(".", "_") + "_response", "error_response"):
        found = re.search(r'"' + re.escape(name) + r'"\s*:\s*', body)
        if found is None:
            continue
        try:
            value, end = json.JSONDecoder().raw_decode(body, found.end())
        except ValueError:
            return None
        if isinstance(value, dict):
            return body[found.end() : end], value
    return None


class AlipayChannel:
    name = "alipay"

    def __init__(
        self,
        account: Account,
        gateway: str,
        client: httpx.Client,
    ) -> None:
        self.account = account
        self.gateway = gateway
        self.client = client

    def request_params(self, message: Outgoing) -> dict[str, str]:
        """The signed form parameters for `message`."""
        to = "to_user_id" if ALIPAY_USER_ID.match(message.recipient) else "to_open_id"
        biz = {
            to: message.recipient,
            "user_template_id": message.template_id,
            "page": message.page or "",
            "data": json.dumps(
                {k: {"value": v} for k, v in message.data.items()}, ensure_ascii=False
            ),
        }
        params = {
            "app_id": self.account.settings["app_id"],
            "method": METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = rsa2_sign(signing_text(params), self.account.secrets["private_key"])
        return params

    def send(self, message: Outgoing) -> Attempt:
        call = timed(self.client, "POST", self.gateway, data=self.request_params(message))
        failed = http_outcome(call)
        if failed is not None:
            return failed
        assert call.response is not None
        status, text = call.response.status_code, call.response.text
        node = response_node(text)
        if node is None:
            return Attempt(
                "failed", status, None, f"not an Alipay answer: {text[:200]}", call.latency_ms
            )
        raw, answer = node
        code = str(answer.get("code", ""))
        sub_code = answer.get("sub_code")
        shown = f"{code}/{sub_code}" if sub_code else code
        why = " ".join(str(answer.get(k, "")) for k in ("msg", "sub_msg")).strip() or None
        signature = _signature(text)
        verified = signature is not None and rsa2_verify(
            raw, signature, self.account.secrets["alipay_public_key"]
        )
        if code == "10000":
            if not verified:
                return Attempt(
                    "failed",
                    status,
                    shown,
                    "the answer's signature did not verify with the Alipay public key",
                    call.latency_ms,
                )
            return Attempt("sent", status, shown, None, call.latency_ms)
        if code == "20000":
            return Attempt("retry", status, shown, why, call.latency_ms)
        return Attempt("failed", status, shown, why, call.latency_ms)


def _signature(body: str) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    sign = parsed.get("sign") if isinstance(parsed, dict) else None
    return sign if isinstance(sign, str) else None
