"""WeChat subscribe messages (小程序订阅消息).

- Access token: `GET {base}/cgi-bin/token?grant_type=client_credential&appid=…&secret=…`
  answers `{"access_token", "expires_in"}` (7200 s) or `{"errcode", "errmsg"}`. Fetching a new
  token retires the old one within minutes, so every server must share one: it is cached in
  the state store (`engage_channel_accounts`) and fetched by one server at a time, under that
  row's lock, `REFRESH_MARGIN` before it expires.
- Send: `POST {base}/cgi-bin/message/subscribe/send?access_token=…` with `{touser (openid),
  template_id, page, data: {field: {value}}, miniprogram_state, lang}` answers
  `{"errcode", "errmsg"}`: 0 sent; 43101 the user has no credit for the template or
  unsubscribed (refused: not retried, the credits are marked gone); -1 system busy (retried);
  40001 / 42001 / 40014 the token is invalid or expired (a new one is fetched and the send
  tried again, once); anything else (40003 bad openid, 40037 bad template id, 47003 bad data,
  41030 bad page) fails the message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from liucun.engage.channels.accounts import Account
from liucun.engage.channels.base import Attempt, Call, Outgoing, http_outcome, timed
from liucun.loyalty.members import as_utc
from liucun.state.db import write_transaction
from liucun.state.tables import engage_channel_accounts

REFRESH_MARGIN = timedelta(minutes=5)
TOKEN_ERRORS = {40001, 42001, 40014}  # invalid, expired, not an access token
REFUSED = 43101
BUSY = -1


class TokenError(Exception):
    def __init__(self, attempt: Attempt) -> None:
        super().__init__(attempt.error)
        self.attempt = attempt


def _json(call: Call) -> dict[str, object] | None:
    assert call.response is not None
    try:
        body = call.response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class WeChatChannel:
    name = "wechat"

    def __init__(
        self,
        engine: sa.Engine,
        app_id: str,
        account: Account,
        base_url: str,
        client: httpx.Client,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.app_id = app_id
        self.account = account
        self.base = base_url.rstrip("/")
        self.client = client
        self.clock = clock
        self._stale: str | None = None  # a token WeChat turned down: not to be used again

    # --- the access token -------------------------------------------------------------

    def _cached(self, conn: sa.Connection, lock: bool) -> str | None:
        a = engage_channel_accounts.c
        query = sa.select(a.access_token, a.token_expires_at).where(
            a.app_id == self.app_id, a.channel == self.name
        )
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None or row.access_token is None or row.token_expires_at is None:
            return None
        if row.access_token == self._stale:
            return None
        if as_utc(row.token_expires_at) - REFRESH_MARGIN <= self.clock():
            return None
        token: str = row.access_token
        return token

    def token(self) -> str:
        """A live access token: the shared cached one, or a new one (one server fetches it
        while the others wait for it on the row lock)."""
        with self.engine.connect() as conn:
            cached = self._cached(conn, lock=False)
        if cached is not None:
            return cached
        with write_transaction(self.engine) as conn:
            cached = self._cached(conn, lock=True)  # another server may have just fetched it
            if cached is not None:
                return cached
            token, expires_at = self._fetch()
            a = engage_channel_accounts.c
            conn.execute(
                sa.update(engage_channel_accounts)
                .where(a.app_id == self.app_id, a.channel == self.name)
                .values(access_token=token, token_expires_at=expires_at)
            )
        self._stale = None
        return token

    def _fetch(self) -> tuple[str, datetime]:
        call = timed(
            self.client,
            "GET",
            f"{self.base}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.account.settings["appid"],
                "secret": self.account.secrets["secret"],
            },
        )
        failed = http_outcome(call)
        if failed is not None:
            raise TokenError(failed)
        body = _json(call) or {}
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if isinstance(token, str) and isinstance(expires_in, int | float):
            return token, self.clock() + timedelta(seconds=float(expires_in))
        errcode = body.get("errcode")
        transient = errcode == BUSY
        raise TokenError(
            Attempt(
                "retry" if transient else "failed",
                call.response.status_code if call.response is not None else None,
                f"token:{errcode}",
                f"access token: {body.get('errmsg') or (call.response and call.response.text)}"[
                    :500
                ],
                call.latency_ms,
            )
        )

    # --- sending ----------------------------------------------------------------------

    def send(self, message: Outgoing) -> Attempt:
        try:
            token = self.token()
        except TokenError as exc:
            return exc.attempt
        settings = self.account.settings
        body = {
            "touser": message.recipient,
            "template_id": message.template_id,
            "data": {k: {"value": v} for k, v in message.data.items()},
            "miniprogram_state": settings.get("miniprogram_state", "formal"),
            "lang": settings.get("lang", "zh_CN"),
        }
        if message.page:
            body["page"] = message.page
        call = timed(
            self.client,
            "POST",
            f"{self.base}/cgi-bin/message/subscribe/send",
            params={"access_token": token},
            json=body,
        )
        failed = http_outcome(call)
        if failed is not None:
            return failed
        assert call.response is not None
        answer = _json(call)
        errcode = answer.get("errcode", 0) if answer is not None else None
        status = call.response.status_code
        if not isinstance(errcode, int):
            return Attempt(
                "failed",
                status,
                None,
                f"not a WeChat answer: {call.response.text[:200]}",
                call.latency_ms,
            )
        text = str(answer.get("errmsg", ""))[:500] if answer else None
        code = str(errcode)
        if errcode == 0:
            return Attempt("sent", status, code, None, call.latency_ms)
        if errcode == REFUSED:
            return Attempt("refused", status, code, text, call.latency_ms)
        if errcode == BUSY:
            return Attempt("retry", status, code, text, call.latency_ms)
        if errcode in TOKEN_ERRORS:
            self._stale = token
            return Attempt("stale_token", status, code, text, call.latency_ms)
        return Attempt("failed", status, code, text, call.latency_ms)
