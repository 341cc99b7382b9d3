"""The time as flame_lab's waits and bounds read it, in one object so tests can inject it.

``now`` is wall-clock time (seconds since the epoch; kept in records across processes),
``monotonic`` measures waits within one process, ``sleep`` pauses between tries.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

from flame_lab.errors import FlameLabError


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM = SystemClock()


def seconds_from_env(variable: str, default: float) -> float:
    """A limit in seconds from the environment: operators and tests lengthen or shorten it."""
    text = os.environ.get(variable, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if not value > 0:
        raise FlameLabError(
            f"{variable}={text!r} is not a positive number of seconds",
            hint=f"e.g. {variable}={default:g}",
        )
    return value
