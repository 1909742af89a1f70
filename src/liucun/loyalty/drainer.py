"""The server's background thread that drains the reactions queue (loyalty/pending.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from liucun.loyalty.pending import ProgrammeOf, drain

log = logging.getLogger(__name__)

# how often an idle drainer looks for batches that other servers queued or that are due again
POLL_SECONDS = 1.0


class ReactionDrainer:
    """Drains the queue when woken (a batch was queued here) and every POLL_SECONDS."""

    def __init__(
        self, engine: sa.Engine, programme_of: ProgrammeOf, clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._programme_of = programme_of
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liucun-reactions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop after the group in hand; what is left waits in the queue for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                drain(self._engine, self._programme_of, self._clock, self._stop.is_set)
            except Exception:  # the store is away: the batches wait, the next round retries
                log.exception("draining the loyalty reactions queue failed")
