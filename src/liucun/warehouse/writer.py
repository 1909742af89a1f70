"""Group commit: many requests' events written in one transaction, each answered after it.

Ingest handlers hand their validated batch to `GroupCommitWriter.write` and await it. One
writer thread takes everything queued since its last commit, appends it in one transaction
and then resolves every waiting request. A request is answered only after the commit that
holds its events: an acknowledged event is durable.

Each commit has a fixed cost (about 10 ms on DuckDB, whatever its size), so the writer waits a
little for requests it knows are on their way: the server announces each request while it is
being checked (`expecting`), and a group stays open while any is announced, for at most
`max_wait` seconds. A lone request never waits.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from liucun.warehouse.store import EventStore

# How long a thread may hold the GIL while another waits for it (Python's default is 5 ms).
# The writer gives the GIL up at every DuckDB and Arrow call and must win it back from the
# threads validating requests; at 5 ms a wait, one commit spent most of its time waiting.
GIL_SWITCH_INTERVAL = 0.0005
# How long a group may stay open for announced requests; about one 1,000-event commit.
MAX_WAIT_SECONDS = 0.010
_WAKE = object()  # queued when the last announced request is withdrawn


@dataclass
class _Pending:
    table: pa.Table
    timezones: Mapping[str, str]
    done: Future[int]


class GroupCommitWriter:
    """The single writer of an event store; `write` returns how many events were new."""

    def __init__(
        self,
        store: EventStore,
        max_rows_per_commit: int = 50_000,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        self._store = store
        self._max_rows = max_rows_per_commit
        self._max_wait = max_wait
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        self._queue: queue.Queue[_Pending | object | None] = queue.Queue()
        self._expected = 0
        self._expected_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Announce a request that will (probably) call `write` right after this block."""
        with self._expected_lock:
            self._expected += 1
        try:
            yield
        finally:
            with self._expected_lock:
                self._expected -= 1
                if self._expected == 0:
                    self._queue.put(_WAKE)

    def submit(self, table: pa.Table, timezones: Mapping[str, str]) -> Future[int]:
        pending = _Pending(table, timezones, Future())
        self._queue.put(pending)
        return pending.done

    async def write(self, table: pa.Table, timezones: Mapping[str, str]) -> int:
        """Store `table`'s events; returns once they are committed, with the count of new ones."""
        if table.num_rows == 0:
            return 0
        return await asyncio.wrap_future(self.submit(table, timezones))

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        self._queue.put(None)
        self._thread.join()

    def _next(self, deadline: float) -> _Pending | object | None:
        """The next queued item; waits until `deadline` only while requests are announced."""
        wait = deadline - time.monotonic()
        if self._expected > 0 and wait > 0:
            try:
                return self._queue.get(timeout=wait)
            except queue.Empty:
                return _WAKE
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return _WAKE

    def _take_group(self, first: _Pending) -> tuple[list[_Pending], bool]:
        group, rows, stop = [first], first.table.num_rows, False
        deadline = time.monotonic() + self._max_wait
        while rows < self._max_rows:
            item = self._next(deadline)
            if item is None:
                stop = True
                break
            if item is _WAKE:
                if self._expected == 0 or time.monotonic() >= deadline:
                    break
                continue
            assert isinstance(item, _Pending)
            group.append(item)
            rows += item.table.num_rows
        return group, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if first is _WAKE:
                continue
            assert isinstance(first, _Pending)
            group, stop = self._take_group(first)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Pending]) -> None:
        zones: dict[str, str] = {}
        for p in group:
            zones.update(p.timezones)
        try:
            table = pa.concat_tables([p.table for p in group])
            new = self._store.append(table, zones)
        except BaseException as exc:  # every waiting request learns of the failure
            for p in group:
                p.done.set_exception(exc)
            return
        offsets = np.cumsum([0] + [p.table.num_rows for p in group])
        for p, start, end in zip(group, offsets[:-1], offsets[1:], strict=True):
            p.done.set_result(int(new[start:end].sum()))
