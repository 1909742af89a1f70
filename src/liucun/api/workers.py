"""Worker processes that parse and check request bodies beside the server's main process.

Checking a batch is pure Python and CPU-bound; in the server process it would hold the
interpreter lock against the event loop and the store's writer thread. One pool of spawned
processes is shared by every app object in a process, and started once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor

from liucun.events.ingest import warm_up

MAX_AUTO_WORKERS = 4


def worker_count(setting: int) -> int:
    """-1 means one per CPU (at most 4, none on a single CPU); 0 means check in-process."""
    if setting >= 0:
        return setting
    cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, MAX_AUTO_WORKERS)


PARENT_CHECK_SECONDS = 0.5


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _start_worker(parent: int) -> None:
    # Ctrl-C or a service manager's SIGTERM reaches the whole process group; the server decides
    # when its workers stop, after the requests they hold are answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A server killed with SIGKILL cannot stop its workers: they notice and leave on their own.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    warm_up()


_POOLS: dict[int, Executor] = {}


def parse_pool(workers: int) -> Executor:
    """The shared pool of `workers` processes, started and warmed up on first use."""
    pool = _POOLS.get(workers)
    if pool is None:
        # spawn, not fork: the server process holds threads and an open DuckDB file by now
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )
        for future in [pool.submit(os.getpid) for _ in range(workers)]:
            future.result()
        _POOLS[workers] = pool
    return pool


def stop_pools() -> None:
    """Stop this process's worker processes (a server shutting down)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)
