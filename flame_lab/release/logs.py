"""The analysis's log lines as a release channel: capped per run, sealed to the researcher.

What an analysis prints or logs (stdout, stderr, ``flame_log``) may carry patient values, so
the node never hands it to the hub in plaintext: each line is sealed like a result (AES-GCM
content key wrapped with HPKE for the recipients of the signed manifest, signed by the node,
bound to analysis, node, bundle and run) and stored at the hub as one opaque text line. Only
the researcher's kernel opens it. The node's own lines (approved, running, finished) stay
readable. A run's lines are capped (count and lines per second here; bytes per line and per
run by ``[limits]``); what was dropped is counted and reported once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flame_lab.privacy import ReleaseRules

SEALED_PREFIX = "flame-lab-sealed-log:1:"
CONTENT_TYPE = "application/x-flame-lab-log+json"
SEQUENCE_BASE = 1_000_000  # far from result files' sequence numbers (0, 1, ...)


@dataclass
class LogGate:
    """The per-run caps on analysis log lines (count, rate); counts what it drops."""

    lines: int
    per_second: int
    clock: Callable[[], float] = time.monotonic
    kept: int = 0
    kept_bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    _second: float = field(default=-1.0, repr=False)
    _in_second: int = field(default=0, repr=False)

    @classmethod
    def of(cls, rules: ReleaseRules, clock: Callable[[], float] = time.monotonic) -> LogGate:
        return cls(rules.log_lines, rules.log_lines_per_second, clock)

    def admit(self, text: str) -> bool:
        """True if this line may go out; else it is counted as dropped."""
        size = len(text.encode("utf-8", "replace"))
        second = float(int(self.clock()))
        if second != self._second:
            self._second, self._in_second = second, 0
        if self.kept >= self.lines or self._in_second >= self.per_second:
            self.dropped += 1
            self.dropped_bytes += size
            return False
        self.kept += 1
        self.kept_bytes += size
        self._in_second += 1
        return True

    def summary(self) -> str | None:
        """One line for the node's log, if anything was dropped (counts only)."""
        if not self.dropped:
            return None
        return (
            f"the node dropped {self.dropped} analysis log line(s) ({self.dropped_bytes} bytes) "
            f"over its caps: {self.lines} lines per run, {self.per_second} lines per second "
            "(release.log_lines, release.log_lines_per_second)"
        )


@dataclass(frozen=True)
class SealContext:
    """What binds a sealed line to its run: the fields of the signed manifest."""

    analysis_id: str
    node_id: str
    bundle_hash: str
    run_nonce: str
    recipients: Sequence[Any]
    node: Any  # the node's NodeIdentity (signs)


def seal_line(context: SealContext, sequence: int, level: str, text: str) -> str:
    """One log line sealed to the researcher, as text the hub stores."""
    from flame_lab.security import envelope

    data = json.dumps({"level": level, "text": text}, ensure_ascii=False).encode()
    blob = envelope.seal(
        data,
        analysis_id=context.analysis_id,
        node_id=context.node_id,
        bundle_hash=context.bundle_hash,
        run_nonce=context.run_nonce,
        sequence=SEQUENCE_BASE + sequence,
        content_type=CONTENT_TYPE,
        recipients=context.recipients,
        node=context.node,
    )
    return SEALED_PREFIX + base64.b64encode(blob).decode("ascii")


def is_sealed(message: str) -> bool:
    return message.startswith(SEALED_PREFIX)


def open_line(
    message: str,
    *,
    identity: Any,
    trusted_nodes: Mapping[str, Any],
    expected: Any,
) -> tuple[str, str]:
    """(level, text) of a sealed line; raises a FlameLabError (TamperedResult...) on doubt."""
    from flame_lab.errors import TamperedResult
    from flame_lab.security import envelope

    try:
        blob = base64.b64decode(message[len(SEALED_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise TamperedResult("a sealed log line is not valid base64") from None
    opened = envelope.open_sealed(
        blob, identity=identity, trusted_nodes=trusted_nodes, expected=expected, guard=None
    )
    if opened.header.content_type != CONTENT_TYPE or opened.header.sequence < SEQUENCE_BASE:
        raise TamperedResult("a sealed log line holds something other than a log line")
    try:
        data = json.loads(opened.payload)
        return str(data["level"]), str(data["text"])
    except (ValueError, KeyError, TypeError):
        raise TamperedResult("a sealed log line could not be read") from None


__all__ = [
    "CONTENT_TYPE",
    "SEALED_PREFIX",
    "AnalysisLog",
    "LogGate",
    "SealContext",
    "is_sealed",
    "open_line",
    "public_failure",
    "seal_line",
]


class AnalysisLog:
    """Where one run's analysis lines go: sealed to the hub, or kept at the node (its admin)."""

    def __init__(
        self,
        context: SealContext,
        post: Callable[[str, str], None],
        *,
        mode: str = "sealed",
        keep: Path | None = None,
    ) -> None:
        self.context = context
        self.post = post
        self.mode = mode
        self.keep = keep
        self.sequence = 0
        self.kept = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<AnalysisLog {self.context.analysis_id} mode={self.mode!r}>"

    def write(self, level: str, text: str) -> None:
        with self._lock:
            self.sequence += 1
            sequence = self.sequence
            if self.mode == "node" and self.keep is not None:
                self.keep.parent.mkdir(parents=True, exist_ok=True)
                with open(self.keep, "a", encoding="utf-8") as handle:
                    handle.write(f"{level}\t{text}\n")
                self.kept += 1
                return
        self.post(level, seal_line(self.context, sequence, level, text))

    def summary(self) -> str | None:
        if self.mode == "node" and self.kept:
            return (
                f"{self.kept} analysis log line(s) kept at the node for its admin "
                "(release.analysis_logs = node)"
            )
        return None


_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')
_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::|$)")


def public_failure(failure: str) -> str:
    """What the hub may read of a failure: a refusal's reason, a limit hit, or the exception's
    type, file and line in the researcher's code; never the exception's message or values."""
    lines = [ln for ln in failure.splitlines() if ln.strip()]
    if not lines:
        return "the analysis failed"
    first = lines[0].strip()
    if first.startswith("PolicyRefused"):
        return first
    if not any(ln.startswith("Traceback") for ln in lines):
        if first.startswith(("The analysis ran", "The analysis used")):
            return first
        if first.startswith(("The analysis was killed", "The analysis exited", "The node")):
            return first
        match = _EXC.match(first)
        kind = match.group("type") if match else "an error"
        return f"the analysis failed ({kind}); its message is in the sealed log"
    where = ""
    for line in lines:
        frame = _FRAME.match(line)
        if frame:
            path = frame.group("path")
            path = path.split("/code/", 1)[-1] if "/code/" in path else Path(path).name
            where = f" at {path}, line {frame.group('line')}"
    kind = "an exception"
    for line in reversed(lines):
        match = _EXC.match(line.strip())
        if match and not line.startswith((" ", "\t")):
            kind = match.group("type")
            break
    prefix = (
        "PolicyRefused: " + first.split(":", 1)[-1].strip() + "; "
        if first.startswith("PolicyRefused")
        else ""
    )
    return f"{prefix}{kind}{where} (the traceback is in the sealed log)"
