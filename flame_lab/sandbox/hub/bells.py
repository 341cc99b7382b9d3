"""Long-polling for the sandbox hub: a request may wait, on the hub's IO loop, until something
it cares about changes (a message for a node, a change to a node's analyses).

Everything here runs on the hub's one IO loop, so ringing and waiting need no locks, and a
waiter resumes only after the writing request has committed.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

from tornado.locks import Condition

from flame_lab.sandbox.hub.wire import ApiError

# Below the hub's ONLINE_SECONDS, so a node that waits keeps counting as online.
MAX_WAIT_SECONDS = 5.0


class Bells:
    """One condition per key; ringing bumps the key's version and wakes whoever waits on it."""

    def __init__(self) -> None:
        self._bells: dict[str, Condition] = {}
        self._versions: dict[str, int] = {}
        self._waiting: dict[str, int] = {}

    def version(self, key: str) -> int:
        return self._versions.get(key, 0)

    def ring(self, key: str) -> None:
        self._versions[key] = self._versions.get(key, 0) + 1
        bell = self._bells.pop(key, None)
        if bell is not None:
            bell.notify_all()

    async def wait(self, key: str, seconds: float) -> None:
        """Until ``key`` rings or ``seconds`` pass (whichever is first)."""
        bell = self._bells.setdefault(key, Condition())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            await bell.wait(timeout=datetime.timedelta(seconds=seconds))
        finally:
            self._waiting[key] -= 1

    def waiting(self, key: str) -> int:
        """How many requests wait on ``key`` now (tests, diagnostics)."""
        return self._waiting.get(key, 0)


async def hold(
    bells: Bells, key: str, seconds: float, ready: Callable[[], bool], gone: Callable[[], bool]
) -> bool:
    """Wait on ``key`` until ``ready()`` or ``seconds`` pass; False if the client went away."""
    deadline = time.monotonic() + seconds
    while not ready() and (left := deadline - time.monotonic()) > 0:
        await bells.wait(key, left)
        if gone():
            return False
    return True


def wait_seconds(raw: list[bytes] | None) -> float:
    """A request's ``wait`` argument: seconds it may be held, 0 when absent."""
    if not raw:
        return 0.0
    try:
        value = float(raw[-1].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        value = -1.0
    if not 0 <= value <= MAX_WAIT_SECONDS:  # also refuses nan
        raise ApiError(
            400,
            f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}",
            code="invalid_field",
        )
    return value
