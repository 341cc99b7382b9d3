"""Slowing down password guessing, per account and per address: after a few free failures each
further try must wait twice as long as the last (capped), answered 429 with Retry-After.

Kept in memory: a restarted hub forgets, which costs a guesser a restart it cannot cause.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flame_lab.sandbox.hub.wire import ApiError

FREE_FAILURES = 5  # a researcher who mistypes a few times is never slowed
BASE_DELAY = 1.0
MAX_DELAY = 300.0
FORGET_AFTER = 3600.0  # failures older than this (since the last one) are forgotten
MAX_ENTRIES = 100_000  # memory bound: the oldest entries go first


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class Throttle:
    """Failure counts per key (``user:<name>``, ``addr:<ip>``) and when the last one was."""

    clock: Callable[[], float]
    free: int = FREE_FAILURES
    base: float = BASE_DELAY
    cap: float = MAX_DELAY
    # On loopback every caller shares one address (the local sandbox's clients, or a proxy in
    # front of it): counting it would let one mistyping tool lock out the rest, so only the
    # account counts there, unless told otherwise.
    count_loopback: bool = False
    _fails: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self, username: str, address: str) -> list[str]:
        keys = [f"user:{username.casefold()}"]
        if address and (self.count_loopback or not _loopback(address)):
            keys.append(f"addr:{address}")
        return keys

    def delay(self, count: int) -> float:
        """Seconds a key with ``count`` failures must wait after its last failure."""
        if count < self.free:
            return 0.0
        return min(self.cap, self.base * 2 ** min(count - self.free, 32))

    def check(self, keys: list[str]) -> None:
        """A 429 with Retry-After when any key must still wait."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                count, last = self._fails.get(key, (0, 0.0))
                wait = max(wait, last + self.delay(count) - now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"too many failed logins for this account or address; try again in {seconds} s",
                code="too_many_requests",
                headers={"Retry-After": str(seconds)},
            )

    def failed(self, keys: list[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                count, last = self._fails.pop(key, (0, 0.0))
                if now - last > FORGET_AFTER:
                    count = 0
                self._fails[key] = (count + 1, now)  # re-inserted last: dicts keep order
            while len(self._fails) > MAX_ENTRIES:
                del self._fails[next(iter(self._fails))]

    def succeeded(self, keys: list[str]) -> None:
        """A right password clears the account's count (not the address's: one success does
        not excuse a thousand guesses at other accounts)."""
        with self._lock:
            for key in keys:
                if key.startswith("user:"):
                    self._fails.pop(key, None)
