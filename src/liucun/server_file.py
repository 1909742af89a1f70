"""The running server's address card in the data directory, and a client for the local CLI.

DuckDB lets one process own its file. While `liucun serve` runs, CLI commands that need the
event store ask the server instead; the card (readable only by its owner) tells them where it
is and carries a control token that grants admin rights on this machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

CARD_NAME = "server.json"


@dataclass(frozen=True)
class ServerCard:
    pid: int
    url: str
    control_token: str


def write_card(data_dir: Path, card: ServerCard) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CARD_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(card.__dict__))
    return path


def remove_card(data_dir: Path, pid: int) -> None:
    card = read_card(data_dir)
    if card and card.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / CARD_NAME).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_card(data_dir: Path) -> ServerCard | None:
    """The card of a live server using `data_dir`, or None."""
    try:
        card = ServerCard(**orjson.loads((data_dir / CARD_NAME).read_bytes()))
    except (FileNotFoundError, orjson.JSONDecodeError, TypeError):
        return None
    return card if _alive(card.pid) else None


class ServerRefusedError(ValueError):
    """The server refused a request as invalid (422); the message is its explanation."""


def _detail(response: httpx.Response) -> str:
    detail = response.json().get("detail")
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    return str(detail)


class ServerClient:
    """The admin API of the local server, as the CLI uses it."""

    def __init__(self, card: ServerCard) -> None:
        self.card = card
        self.http = httpx.Client(
            base_url=card.url,
            headers={"Authorization": f"Bearer {card.control_token}"},
            timeout=httpx.Timeout(300.0, connect=10.0),
        )

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.http.get(path, params=params)
        if response.status_code == 422:
            raise ServerRefusedError(_detail(response))
        response.raise_for_status()
        return response.json()

    def post(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """POST with query parameters only (an admin action such as the daily job)."""
        response = self.http.post(path, params=params)
        if response.status_code == 422:
            raise ServerRefusedError(_detail(response))
        response.raise_for_status()
        return response.json()

    def post_json(self, path: str, body: Any) -> Any:
        response = self.http.post(
            path,
            content=orjson.dumps(body, default=str),
            headers={"Content-Type": "application/json"},
        )
        if response.status_code == 422:
            raise ServerRefusedError(_detail(response))
        response.raise_for_status()
        return response.json()

    def post_batch(self, write_key: str, rows: list[Any]) -> Any:
        body = orjson.dumps({"batch": rows}, default=str)
        response = self.http.post(
            "/v1/batch",
            content=body,
            headers={"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"},
        )
        if response.status_code not in (200, 400):
            response.raise_for_status()
        data = response.json()
        return data["detail"] if response.status_code == 400 else data

    def stream(self, path: str) -> httpx.Response:
        return self.http.send(self.http.build_request("GET", path), stream=True)
