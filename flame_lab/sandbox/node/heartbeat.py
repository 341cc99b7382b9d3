"""A node's periodic signed "still here" while it is busy with an analysis.

The researcher's client hears from a node only through statements the node signed that it has
not seen before (flame_lab/deadlines.py). A node running a long analysis, or waiting for its
admin, has nothing new to say; its heartbeat re-signs its current status with the next number
of its session, so the client can tell a busy node from a dead one within minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flame_lab.clock import seconds_from_env

HEARTBEAT_VAR = "FLAME_LAB_HEARTBEAT"
# one small status update per busy analysis a minute: several fit in FLAME_LAB_NODE_SILENCE
DEFAULT_HEARTBEAT = 60.0


@dataclass
class Heartbeat:
    """When each busy link of this node last said something signed; which ones are due."""

    interval: float = DEFAULT_HEARTBEAT
    clock: Callable[[], float] = time.monotonic
    last: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls) -> Heartbeat:
        return cls(seconds_from_env(HEARTBEAT_VAR, DEFAULT_HEARTBEAT))

    def said(self, key: str) -> None:
        """A signed status went out for ``key``: the next heartbeat is an interval away."""
        with self._lock:
            self.last[key] = self.clock()

    def due(self, busy: Iterable[str]) -> list[str]:
        """The busy links whose last statement is an interval old, marked as sent (a hub that
        does not take one is tried again an interval later, not at every look)."""
        now, busy = self.clock(), set(busy)
        with self._lock:
            for key in set(self.last) - busy:
                del self.last[key]  # an analysis that ended here: forgotten
            found = [k for k in sorted(busy) if now - self.last.setdefault(k, now) >= self.interval]
            for key in found:
                self.last[key] = now
        return found
