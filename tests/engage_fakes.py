"""Local HTTP servers that implement the platforms' message contracts, for channel tests.

- `FakeWeChat`: `GET /cgi-bin/token` (appid + secret → a token; a new token retires the old,
  as WeChat does; a wrong secret → errcode 40001) and `POST /cgi-bin/message/subscribe/send`
  (42001 for a retired or expired token; 40003 for an empty openid; 47003 for malformed data;
  43101 when the user has no credit for the template — the server keeps credits per openid
  and template, one per `grant`; 0 and one credit used otherwise). `script` lines up answers
  for the next sends: an int is an errcode, ("http", status) an HTTP error.
- `FakeAlipay`: the gateway. It checks the request's RSA2 signature with the app's PUBLIC key
  (bad → `error_response` 40002 isv.invalid-signature), answers
  `{<method>_response: {code, msg, sub_code, sub_msg}, sign}` signed with its own private key.
  Keys are made, and signatures made and checked, by the `openssl` command line: independent
  of liucun's own RSA code.
- `FakeWebhook`: checks the HMAC signature as a receiver would; answers scripted statuses.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from liucun.engage.channels.alipay import METHOD, signing_text
from liucun.engage.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def _openssl(*args: str, data: bytes = b"") -> bytes:
    done = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    if done.returncode != 0 and "-verify" not in args:
        raise RuntimeError(done.stderr.decode())
    return done.stdout if done.returncode == 0 else b""


def rsa_pair(traditional: bool = False) -> tuple[str, str]:
    """A new 2048-bit RSA key pair from openssl as (private PEM, public PEM); `traditional`:
    the private key in PKCS#1 form (BEGIN RSA PRIVATE KEY) rather than PKCS#8."""
    private = _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    if traditional:
        private = _openssl("rsa", "-traditional", data=private)
    public = _openssl("pkey", "-pubout", data=private)
    return private.decode(), public.decode()


def openssl_sign(text: str, private_pem: str) -> str:
    """SHA256withRSA of `text` (UTF-8), base64, by openssl."""
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        key.write_text(private_pem)
        raw = _openssl("dgst", "-sha256", "-sign", str(key), data=text.encode())
    return base64.b64encode(raw).decode()


def openssl_verify(text: str, signature: str, public_pem: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        key, sig = Path(tmp) / "pub.pem", Path(tmp) / "sig"
        key.write_text(public_pem)
        try:
            sig.write_bytes(base64.b64decode(signature, validate=True))
        except ValueError:
            return False
        done = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", str(key), "-signature", str(sig)],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
    return done.returncode == 0


class _Handler(BaseHTTPRequestHandler):
    fake: Any

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        status, body = self.fake.get(self.path, dict(self.headers))
        self._answer(status, body)

    def do_POST(self) -> None:
        status, body = self.fake.post(self.path, dict(self.headers), self._body())
        self._answer(status, body)


@contextmanager
def serving(fake: Any) -> Iterator[str]:
    """Run `fake` on a localhost port; yields its base URL."""
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@dataclass
class FakeWeChat:
    appid: str = "wx-app"
    secret: str = "wx-secret"
    expires_in: int = 7200
    tokens_issued: int = 0
    token: str | None = None
    token_expires: float = 0.0
    credits: dict[tuple[str, str], int] = field(default_factory=dict)
    script: list[Any] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def grant(self, openid: str, template_id: str, n: int = 1) -> None:
        self.credits[(openid, template_id)] = self.credits.get((openid, template_id), 0) + n

    def expire_token(self) -> None:
        self.token_expires = 0.0

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        url = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/cgi-bin/token":
            return 404, b"not found"
        if query.get("grant_type") != "client_credential":
            return 200, _json({"errcode": 40002, "errmsg": "invalid grant_type"})
        if query.get("appid") != self.appid or query.get("secret") != self.secret:
            return 200, _json({"errcode": 40001, "errmsg": "invalid credential"})
        with self.lock:
            self.tokens_issued += 1
            self.token = f"token-{self.tokens_issued}"  # the previous one stops working
            self.token_expires = time.monotonic() + self.expires_in
            return 200, _json({"access_token": self.token, "expires_in": self.expires_in})

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        url = urlparse(path)
        if url.path != "/cgi-bin/message/subscribe/send":
            return 404, b"not found"
        token = parse_qs(url.query).get("access_token", [""])[0]
        with self.lock:
            message = json.loads(body)
            self.sends.append(message)
            if token != self.token or time.monotonic() >= self.token_expires:
                return 200, _json({"errcode": 42001, "errmsg": "access_token expired"})
            if self.script:
                step = self.script.pop(0)
                if isinstance(step, tuple):
                    return step[1], b"<html>busy</html>"
                return 200, _json({"errcode": step, "errmsg": "scripted"})
            openid, template = message.get("touser"), message.get("template_id")
            if not openid:
                return 200, _json({"errcode": 40003, "errmsg": "invalid openid"})
            data = message.get("data")
            if not isinstance(data, dict) or not all(
                isinstance(v, dict) and "value" in v for v in data.values()
            ):
                return 200, _json({"errcode": 47003, "errmsg": "argument invalid! data"})
            left = self.credits.get((openid, template), 0)
            if left <= 0:
                return 200, _json({"errcode": 43101, "errmsg": "user refuse to accept the msg"})
            self.credits[(openid, template)] = left - 1
            return 200, _json({"errcode": 0, "errmsg": "ok", "msgid": len(self.sends)})


@dataclass
class FakeAlipay:
    app_id: str
    app_public_key: str  # checks the requests
    alipay_private_key: str  # signs the answers
    script: list[Any] = field(default_factory=list)  # (code, sub_code) or ("http", status)
    requests: list[dict[str, str]] = field(default_factory=list)
    tamper: bool = False  # sign answers wrongly

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return 405, b"POST only"

    def _signed(self, name: str, node: dict[str, Any]) -> bytes:
        text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        sign = openssl_sign(text + ("x" if self.tamper else ""), self.alipay_private_key)
        return f'{{"{name}":{text},"sign":"{sign}"}}'.encode()

    def verify_request(self, params: dict[str, str]) -> bool:
        return openssl_verify(signing_text(params), params.get("sign", ""), self.app_public_key)

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        params = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        self.requests.append(params)
        if not self.verify_request(params):
            node = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-signature",
                "sub_msg": "验签出错",
            }
            return 200, self._signed("error_response", node)
        name = params["method"].replace(".", "_") + "_response"
        if params["app_id"] != self.app_id or params["method"] != METHOD:
            node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"}
            return 200, self._signed(name, node)
        biz = json.loads(params["biz_content"])
        if self.script:
            step = self.script.pop(0)
            if step[0] == "http":
                return step[1], b"gateway error"
            code, sub = step
            node = {"code": code, "msg": "scripted"}
            if sub:
                node.update(sub_code=sub, sub_msg="scripted")
            return 200, self._signed(name, node)
        if not biz.get("user_template_id") or not json.loads(biz.get("data", "{}")):
            node = {"code": "40004", "msg": "Business Failed", "sub_code": "INVALID_PARAMETER"}
            return 200, self._signed(name, node)
        return 200, self._signed(name, {"code": "10000", "msg": "Success"})


@dataclass
class FakeWebhook:
    secret: str
    script: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return 405, b""

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        ok = verify(
            self.secret,
            lower.get(TIMESTAMP_HEADER.lower(), ""),
            body,
            lower.get(SIGNATURE_HEADER.lower(), ""),
            time.time(),
        )
        if not ok:
            self.bad_signatures += 1
            return 401, b'{"error": "bad signature"}'
        status = self.script.pop(0) if self.script else 200
        if 200 <= status < 300:
            self.received.append({"headers": lower, "body": json.loads(body)})
        return status, b"{}"
