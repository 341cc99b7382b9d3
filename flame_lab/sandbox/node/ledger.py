"""A node's own memory of what it approved and what it ran: the source of its decisions.

The hub's approvalStatus only reports what this ledger says. A bundle hash with no approved
entry here never runs, and a run nonce runs at most once per node. SQLite in the node's folder,
so decisions survive restarts and the admin's command and the agent can share it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from flame_lab.errors import BundleError, SandboxError

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundles (
    bundle_hash TEXT PRIMARY KEY,
    analysis_id TEXT NOT NULL,
    name TEXT NOT NULL,
    signer TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    reason TEXT NOT NULL DEFAULT '',
    decided_by TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    decided_at REAL
);
CREATE INDEX IF NOT EXISTS bundles_analysis ON bundles (analysis_id);
CREATE TABLE IF NOT EXISTS bundle_files (
    bundle_hash TEXT NOT NULL REFERENCES bundles (bundle_hash),
    path TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (bundle_hash, path)
);
CREATE TABLE IF NOT EXISTS runs (
    run_nonce TEXT PRIMARY KEY,
    analysis_id TEXT NOT NULL,
    bundle_hash TEXT NOT NULL,
    started_at REAL NOT NULL
);
"""


class RunReplayed(BundleError):
    """A run nonce this node already executed: the same signed run, offered again."""

    default_hint = (
        "A signed submission runs once per node; the researcher must submit it again "
        "(a new submission has a new run nonce)."
    )


class NotApprovedHere(BundleError):
    """The code has no approval in this node's own ledger, whatever the hub reports."""

    default_hint = (
        "Only the node's own admin (or its auto policy) approves: "
        "`flame-lab node review ID --node NAME`, then `flame-lab node approve ID --node NAME`."
    )


@dataclass(frozen=True)
class Decision:
    """One bundle as this node knows it: pending review, approved or rejected, by whom, why."""

    bundle_hash: str
    analysis_id: str
    name: str
    signer: str
    state: str
    reason: str
    decided_by: str
    received_at: float
    decided_at: float | None

    @property
    def approved(self) -> bool:
        return self.state == APPROVED


class Ledger:
    """The node's approvals and executed run nonces (one SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per ledger, used by one thread at a time (the agent's run threads
        share it); WAL, so the admin's process can decide while the agent reads."""
        with self._lock:
            try:
                if self._conn is None:
                    conn = sqlite3.connect(
                        self.path, timeout=30, isolation_level=None, check_same_thread=False
                    )
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA busy_timeout=30000")
                    self._conn = conn
            except sqlite3.Error as exc:
                raise SandboxError(f"cannot open the node's ledger {self.path}: {exc}") from None
            try:
                yield self._conn
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise SandboxError(f"the node's ledger {self.path} failed: {exc}") from None

    # -- bundles -----------------------------------------------------------------------------
    def receive(self, bundle_hash: str, analysis_id: str, name: str, signer: str) -> Decision:
        """Note a verified bundle awaiting a decision (kept as it is if already known)."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO bundles (bundle_hash, analysis_id, name, signer, state,"
                " received_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                (bundle_hash, analysis_id, name, signer, time.time()),
            )
        found = self.decision(bundle_hash)
        assert found is not None
        return found

    def decision(self, bundle_hash: str) -> Decision | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM bundles WHERE bundle_hash = ?", (bundle_hash,)
            ).fetchone()
        return Decision(*row) if row else None

    def for_analysis(self, analysis_id: str) -> Decision | None:
        """The bundle this node received in ``analysis_id`` (a bound bundle names one)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM bundles WHERE analysis_id = ? ORDER BY received_at DESC LIMIT 1",
                (analysis_id,),
            ).fetchone()
        return Decision(*row) if row else None

    def decide(
        self,
        bundle_hash: str,
        approve: bool,
        reason: str,
        by: str,
        files: Mapping[str, bytes] | None = None,
    ) -> Decision:
        """Approve or reject a received bundle, once; approved code is kept for later diffs."""
        state = APPROVED if approve else REJECTED
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT state FROM bundles WHERE bundle_hash = ?", (bundle_hash,)
            ).fetchone()
            if row is None:
                conn.execute("ROLLBACK")
                raise NotApprovedHere(
                    f"bundle {bundle_hash[:16]} was never received and verified by this node"
                )
            if row[0] != PENDING:
                conn.execute("ROLLBACK")
                raise SandboxError(
                    f"bundle {bundle_hash[:16]} was already {row[0]} at this node",
                    hint="A decision is final; the researcher can submit the analysis again.",
                )
            conn.execute(
                "UPDATE bundles SET state = ?, reason = ?, decided_by = ?, decided_at = ?"
                " WHERE bundle_hash = ?",
                (state, reason, by, time.time(), bundle_hash),
            )
            if approve and files:
                conn.executemany(
                    "INSERT OR REPLACE INTO bundle_files (bundle_hash, path, content)"
                    " VALUES (?, ?, ?)",
                    [(bundle_hash, path, bytes(data)) for path, data in files.items()],
                )
            conn.execute("COMMIT")
        found = self.decision(bundle_hash)
        assert found is not None
        return found

    def require_approved(self, bundle_hash: str) -> Decision:
        """The approval of this exact bundle, or NotApprovedHere (fail closed)."""
        found = self.decision(bundle_hash)
        if found is None:
            raise NotApprovedHere(
                f"this node has no record of bundle {bundle_hash[:16]}; it runs only code it "
                "verified and approved itself"
            )
        if not found.approved:
            raise NotApprovedHere(
                f"bundle {bundle_hash[:16]} is {found.state} at this node, not approved"
                + (f" ({found.reason})" if found.reason else "")
            )
        return found

    def last_approved(
        self, name: str, signer: str, *, other_than: str = ""
    ) -> tuple[Decision, dict[str, bytes]] | None:
        """The newest approved bundle of the same analysis name and signer, with its files."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM bundles WHERE name = ? AND signer = ? AND state = 'approved'"
                " AND bundle_hash != ? ORDER BY decided_at DESC LIMIT 1",
                (name, signer, other_than),
            ).fetchone()
            if row is None:
                return None
            files = dict(
                conn.execute(
                    "SELECT path, content FROM bundle_files WHERE bundle_hash = ?", (row[0],)
                ).fetchall()
            )
        return Decision(*row), files

    # -- runs --------------------------------------------------------------------------------
    def claim_run(self, run_nonce: str, analysis_id: str, bundle_hash: str) -> None:
        """Record that this run nonce starts now; RunReplayed if it ever started before."""
        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO runs (run_nonce, analysis_id, bundle_hash, started_at)"
                    " VALUES (?, ?, ?, ?)",
                    (run_nonce, analysis_id, bundle_hash, time.time()),
                )
            except sqlite3.IntegrityError:
                row = conn.execute(
                    "SELECT analysis_id FROM runs WHERE run_nonce = ?", (run_nonce,)
                ).fetchone()
                raise RunReplayed(
                    f"this signed run already ran at this node (in analysis {row[0]}); "
                    "a run nonce runs once"
                ) from None

    def ran(self, run_nonce: str) -> bool:
        with self._connect() as conn:
            return (
                conn.execute("SELECT 1 FROM runs WHERE run_nonce = ?", (run_nonce,)).fetchone()
                is not None
            )
