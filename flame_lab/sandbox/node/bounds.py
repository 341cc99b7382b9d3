"""Per-run budgets for what an analysis hands its node: log lines and bytes, messages.

One :class:`RunBounds` per run, shared by the output readers and the RPC service, so that the
printed lines and ``flame_log`` calls together stay within ``limits.max_log_bytes`` and the
node agent, the hub and the researcher's view are never flooded by one run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flame_lab.errors import StarError
from flame_lab.limits import ResourceLimits


def cut_line(text: str, limit: int) -> str:
    """``text`` at most ``limit`` UTF-8 bytes, saying how much was cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")
    return f"{kept} ... ({len(data) - limit} bytes cut: limits.max_log_line_bytes = {limit})"


@dataclass
class RunBounds:
    """The log and message budgets of one run (thread-safe)."""

    limits: ResourceLimits = field(default_factory=ResourceLimits)
    log_bytes: int = 0
    dropped_lines: int = 0
    messages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit_log(self, text: str) -> tuple[str | None, str | None]:
        """The line to forward (cut to max_log_line_bytes) or None once the run's budget is
        spent; and, the first time it is spent, a notice to forward instead."""
        line = cut_line(text, self.limits.max_log_line_bytes)
        size = len(line.encode("utf-8", errors="replace")) + 1
        with self._lock:
            if self.log_bytes + size <= self.limits.max_log_bytes:
                self.log_bytes += size
                return line, None
            first = self.dropped_lines == 0
            self.dropped_lines += 1
        notice = (
            f"node: this run's output reached limits.max_log_bytes "
            f"({self.limits.max_log_bytes} bytes); the rest of it is dropped"
        )
        return None, notice if first else None

    def admit_message(self, size: int) -> None:
        """Count one message of ``size`` encoded bytes, or refuse it (StarError)."""
        limits = self.limits
        if size > limits.max_message_bytes:
            raise StarError(
                f"A message of {size} bytes is larger than this node sends "
                f"({limits.max_message_bytes} bytes, limits.max_message_bytes).",
                hint="Send smaller results, or split them over several messages.",
            )
        with self._lock:
            if self.messages >= limits.max_messages:
                raise StarError(
                    f"This run already sent {self.messages} messages, the most this node "
                    f"allows per run (limits.max_messages).",
                    hint="Send fewer, larger messages (e.g. one per round).",
                )
            self.messages += 1
