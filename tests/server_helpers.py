"""Helpers for tests that run the real `liucun` command: its CLI and a live server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

# the console script installed next to this interpreter (the project's venv)
LIUCUN = str(Path(sys.executable).parent / "liucun")
CLI_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def liucun_env(tmp_path: Path, state_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI or server run with a private data dir (and state store)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIUCUN_")}
    env["LIUCUN_DATA_DIR"] = str(tmp_path / "data")
    if state_url:
        env["LIUCUN_STATE_STORE"] = state_url
    env["PYTHONIOENCODING"] = "utf-8"
    # no daily run in the background of a test server: tests run the jobs they check
    env["LIUCUN_DAILY_AT"] = "off"
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `liucun ARGS` to completion in the data dir's parent (so no stray liucun.toml)."""
    cwd = Path(env["LIUCUN_DATA_DIR"]).parent
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [LIUCUN, *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def cli_json(env: dict[str, str], *args: str | Path) -> Any:
    """Run `liucun ARGS` (which should include --json), assert success, parse stdout."""
    done = cli(env, *args)
    assert done.returncode == 0, f"liucun {args} failed ({done.returncode}):\n{done.stderr}"
    return orjson.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A `liucun serve` child process on a free port; `url` is its base URL once started."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(env["LIUCUN_DATA_DIR"]).parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [LIUCUN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"liucun serve exited with {self.proc.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"liucun serve not healthy in time:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if the server does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def server_process(env: dict[str, str]) -> Iterator[ServerProcess]:
    """A started server, always stopped (or killed) on the way out."""
    server = ServerProcess(env)
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def running_server(env: dict[str, str]) -> Iterator[str]:
    """The base URL of a started `liucun serve`, stopped on the way out."""
    with server_process(env) as server:
        yield server.url


def create_app_via_cli(env: dict[str, str], name: str = "shop") -> dict[str, str]:
    creds = cli_json(env, "apps", "create", name, "--tz", "Asia/Shanghai", "--json")
    assert creds["name"] == name and creds["write_key"].startswith("wk_")
    return dict(creds)


def make_event(n: int = 0, **fields: Any) -> dict[str, Any]:
    """A valid native event with a fresh id, timestamped now."""
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event": "page_view",
        "page": f"pages/p{n % 7}",
        "anonymous_id": f"device-{n % 50}",
        "ts": datetime.now(UTC).isoformat(),
    }
    base.update(fields)
    return base


def export_ids(base_url: str, app_id: str, token: str) -> list[str]:
    """Every event id the server exports for the app (duplicates kept, to be counted)."""
    r = httpx.get(
        f"{base_url}/admin/v1/apps/{app_id}/events/export",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60.0,
    )
    assert r.status_code == 200, r.text
    ids = [orjson.loads(line)["event_id"] for line in r.content.splitlines() if line.strip()]
    assert int(r.headers["x-event-count"]) == len(ids)
    return ids


def server_count(base_url: str, app_id: str, token: str) -> int:
    r = httpx.get(
        f"{base_url}/admin/v1/apps/{app_id}/events/count",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["events"])
