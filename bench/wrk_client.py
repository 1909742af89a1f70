"""Send prepared HTTP requests with wrk: a drop-in for `bench.ingest.run_requests` whose client
costs the machine little (wrk is C; the Python client takes about a core of its own).

Every request is sent exactly once, over `connections` keep-alive connections spread over the
servers (connection i on server i mod n, as `run_requests` does), one wrk process per server
and one wrk thread per connection. Each connection sends its share of the list in order (every
`connections`-th request), through bench/wrk/replay.lua, which times every request itself.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from bench.ingest import Request

SCRIPT = Path(__file__).with_name("wrk") / "replay.lua"


def wrk_path() -> str | None:
    return shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)


def raw_request(host: str, request: Request) -> bytes:
    """The request as it goes on the wire (wrk sends these bytes unchanged)."""
    method, path, headers, body = request
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join([*lines, "", ""]).encode() + (body or b"")


def write_share(file: Path, host: str, share: list[Request]) -> None:
    """One connection's requests as records "<byte count>\\n<bytes>", as replay.lua reads them."""
    with file.open("wb") as f:
        for req in share:
            raw = raw_request(host, req)
            f.write(b"%d\n" % len(raw) + raw)


def start_wrk(url: str, connections: int, prefix: str, cap_seconds: int) -> subprocess.Popen[str]:
    # -d is only a cap: the run ends when every connection has sent its share (see wait_done)
    cmd = [str(wrk_path()), f"-t{connections}", f"-c{connections}", f"-d{cap_seconds}s"]
    cmd += ["-s", str(SCRIPT), url, "--", prefix]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_done(procs: list[tuple[subprocess.Popen[str], int]]) -> list[str]:
    """Wait for every wrk thread's "done", then stop each wrk (SIGINT: it prints its summary
    and runs done()): every process's output lines. RuntimeError if one ends before."""
    lines: list[str] = []
    for proc, threads in procs:
        assert proc.stdout is not None
        done = 0
        while done < threads:
            line = proc.stdout.readline()
            if not line:  # wrk ended (error, or the -d cap) with requests unanswered
                for p, _ in procs:
                    p.kill()
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"wrk stopped before all requests were answered: {err}")
            lines.append(line)
            done += line.startswith("liucun-wrk done")
    for proc, _ in procs:
        proc.send_signal(signal.SIGINT)
    for proc, _ in procs:
        out, err = proc.communicate(timeout=60)
        if proc.returncode:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err}")
        lines += out.splitlines()
    return lines


def parse(lines: list[str], expected: int) -> tuple[float, list[float]]:
    """(seconds from the first request sent to the last response, latencies in ms) from the
    lines replay.lua printed. RuntimeError if a request was refused or not answered."""
    first, last, latencies, sent, failed, failures = [], [], [], 0, 0, []
    for line in lines:
        if line.startswith("liucun-wrk thread"):
            head, lat, failure = line.split("\t")
            n_sent, n_received, n_failed, t0, t1 = (int(x) for x in head.split()[2:])
            if n_received != n_sent:
                raise RuntimeError(f"wrk: {n_sent - n_received} requests were not answered")
            sent, failed = sent + n_sent, failed + n_failed
            first.append(t0)
            last.append(t1)
            latencies += [int(x) / 1000 for x in lat.split()]
            if failure:
                failures.append(failure)
        elif line.startswith("liucun-wrk errors") and any(int(x) for x in line.split()[2:]):
            raise RuntimeError(f"wrk socket errors (connect, read, write): {line}")
    if failed:
        raise RuntimeError(f"{failed} requests were refused, e.g. {failures[0]}")
    if sent != expected or len(latencies) != expected:
        raise RuntimeError(f"wrk sent {sent} requests of {expected}")
    return (max(last) - min(first)) / 1e6, latencies


def run_wrk(
    urls: list[str], requests: list[Request], connections: int
) -> tuple[float, list[float]]:
    """Send every request once over `connections` keep-alive connections spread over the
    servers at `urls`: (seconds, latencies in ms), as `run_requests`. RuntimeError if any was
    refused."""
    connections = min(connections, len(requests))
    shares = [requests[i::connections] for i in range(connections)]
    cap = 60 + len(requests) // 100  # seconds; a run slower than 100 requests/s is broken
    with tempfile.TemporaryDirectory(prefix="liucun-wrk-") as tmp:
        runs = []  # (url, file prefix, connections), all written before any wrk starts
        for s, url in enumerate(urls):
            mine = shares[s :: len(urls)]  # connection i is on server i mod len(urls)
            for i, share in enumerate(mine):
                write_share(Path(f"{tmp}/{s}-{i}.req"), urlsplit(url).netloc, share)
            if mine:
                runs.append((url, f"{tmp}/{s}-", len(mine)))
        procs = [(start_wrk(url, n, prefix, cap), n) for url, prefix, n in runs]
        lines = wait_done(procs)
    return parse(lines, len(requests))
