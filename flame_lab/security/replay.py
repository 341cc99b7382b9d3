"""Replay guards: remember which sealed results were opened, so an old one cannot come back.

A result is named by (analysis id, node id, sequence). Policy: the *identical* blob (same
digest) may be opened again, e.g. after a kernel restart; a *different* blob under a name that
was already opened raises ReplayedResult. A result is recorded only once it opened completely.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from flame_lab.errors import EnvelopeError, ReplayedResult


@dataclass(frozen=True)
class ResultKey:
    """The name a node gives one result: at most one blob may ever carry it."""

    analysis_id: str
    node_id: str
    sequence: int


class ReplayGuard(Protocol):
    """What open_sealed needs: refuse a known name with a new digest, then remember it."""

    def check(self, key: ResultKey, digest: str) -> None:
        """Raise ReplayedResult if ``key`` was opened with another digest."""

    def record(self, key: ResultKey, digest: str) -> None:
        """Remember ``key`` -> ``digest``; raise ReplayedResult if another digest won."""


def _replayed(key: ResultKey) -> ReplayedResult:
    return ReplayedResult(
        f"Node {key.node_id!r} already delivered a different result for analysis "
        f"{key.analysis_id!r}, sequence {key.sequence}; this one is refused as a replay."
    )


class MemoryReplayGuard:
    """For one process (tests, a throwaway kernel): forgets everything when it ends."""

    def __init__(self) -> None:
        self._seen: dict[ResultKey, str] = {}
        self._lock = threading.Lock()

    def check(self, key: ResultKey, digest: str) -> None:
        with self._lock:
            known = self._seen.get(key)
        if known is not None and known != digest:
            raise _replayed(key)

    def record(self, key: ResultKey, digest: str) -> None:
        with self._lock:
            known = self._seen.setdefault(key, digest)
        if known != digest:
            raise _replayed(key)

    def __len__(self) -> int:
        return len(self._seen)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS opened (
    analysis_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    digest TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    PRIMARY KEY (analysis_id, node_id, sequence)
)
"""


class SqliteReplayGuard:
    """Persistent guard in one SQLite file; safe across processes (the row key is unique)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SqliteReplayGuard({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fresh = not self.path.exists()
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            if fresh:
                os.chmod(self.path, 0o600)
            conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from None
        return conn

    def _unusable(self, exc: Exception) -> EnvelopeError:
        return EnvelopeError(
            f"The record of opened results at {self.path} is unusable ({exc}).",
            hint="Check the file's permissions, or move it aside (replay protection then "
            "starts afresh).",
        )

    def _known(self, conn: sqlite3.Connection, key: ResultKey) -> str | None:
        row = conn.execute(
            "SELECT digest FROM opened WHERE analysis_id = ? AND node_id = ? AND sequence = ?",
            (key.analysis_id, key.node_id, key.sequence),
        ).fetchone()
        return None if row is None else str(row[0])

    def check(self, key: ResultKey, digest: str) -> None:
        conn = self._connect()
        try:
            known = self._known(conn, key)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        finally:
            conn.close()
        if known is not None and known != digest:
            raise _replayed(key)

    def record(self, key: ResultKey, digest: str) -> None:
        conn = self._connect()
        try:
            conn.execute(
                "INSERT OR IGNORE INTO opened VALUES (?, ?, ?, ?, ?)",
                (
                    key.analysis_id,
                    key.node_id,
                    key.sequence,
                    digest,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
            known = self._known(conn, key)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        finally:
            conn.close()
        if known != digest:
            raise _replayed(key)
