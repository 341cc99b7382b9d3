"""The privacy budget ledger of one node: epsilon charged per researcher, kept across restarts.

A JSON file in the node's folder, re-read under a lock and replaced atomically on every
charge, so it survives agent restarts and two processes over one file agree. An unreadable
file refuses every DP release (fail closed). A charge whose release did not leave after all
(the upload failed) is taken back with :meth:`PrivacyBudget.refund`.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flame_lab.errors import DPParameterError, PolicyFileError, PolicyRefused
from flame_lab.privacy import _atomic_write

try:  # cross-process lock for the budget file; absent on Windows, where a thread lock remains
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DPParameterError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise DPParameterError(f"{name} must be finite and greater than 0, not {value!r}")
    return number


@dataclass(frozen=True)
class BudgetCharge:
    """One DP release charged to a researcher: which analysis, how much epsilon, when (UTC)."""

    analysis_id: str
    epsilon: float
    time: str


class PrivacyBudget:
    """Epsilon spent per researcher (key id) at one node, kept in a JSON file.

    Every call re-reads the file under a lock and writes it atomically, so two node processes
    (or two instances) over one file agree. An unreadable file refuses all DP releases.
    """

    VERSION = 1

    def __init__(self, path: str | os.PathLike[str], epsilon_per_researcher: float) -> None:
        self.path = Path(path)
        self.limit = _positive("epsilon_per_researcher", epsilon_per_researcher)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PrivacyBudget({str(self.path)!r}, epsilon_per_researcher={self.limit:g})"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if fcntl is None:  # pragma: no cover
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolicyFileError(
                f"The privacy budget file {self.path} is unreadable: {exc}",
                hint="Restore it from a backup; until then this node makes no DP release.",
            ) from None
        if not isinstance(data, dict) or data.get("version") != self.VERSION:
            raise PolicyFileError(f"The privacy budget file {self.path} has an unknown format")
        researchers = data.get("researchers")
        if not isinstance(researchers, dict):
            raise PolicyFileError(f"The privacy budget file {self.path} lacks 'researchers'")
        return researchers

    def _write(self, researchers: dict[str, list[dict[str, Any]]]) -> None:
        text = json.dumps({"version": self.VERSION, "researchers": researchers}, indent=1)
        _atomic_write(self.path, text.encode("utf-8"))

    @staticmethod
    def _sum(entries: list[dict[str, Any]]) -> float:
        return math.fsum(float(e["epsilon"]) for e in entries)

    def charges(self, researcher_id: str) -> list[BudgetCharge]:
        """Every charge made for this researcher, oldest first."""
        with self._locked():
            entries = self._read().get(researcher_id, [])
        return [BudgetCharge(e["analysis_id"], float(e["epsilon"]), e["time"]) for e in entries]

    def spent(self, researcher_id: str) -> float:
        with self._locked():
            return self._sum(self._read().get(researcher_id, []))

    def remaining(self, researcher_id: str) -> float:
        """Epsilon this researcher may still spend at this node (never below 0)."""
        return max(0.0, self.limit - self.spent(researcher_id))

    def charge(self, researcher_id: str, epsilon: float, analysis_id: str) -> BudgetCharge:
        """Record a DP release, or raise PolicyRefused (nothing recorded) if over budget."""
        amount = _positive("epsilon", epsilon)
        if not isinstance(researcher_id, str) or not researcher_id:
            raise DPParameterError(
                f"researcher_id must be a non-empty string (a key id), not {researcher_id!r}",
                hint="Charge the budget to the key id of the researcher who signed the bundle.",
            )
        with self._locked():
            researchers = self._read()
            entries = researchers.get(researcher_id, [])
            spent = self._sum(entries)
            if spent + amount > self.limit * (1 + 1e-12):
                raise PolicyRefused(
                    f"budget exhausted: spent {spent:g} of {self.limit:g}, "
                    f"this run asks {amount:g}",
                    hint=f"Ask for at most epsilon={max(0.0, self.limit - spent):g}, or ask the "
                    "node's data steward for a larger budget.",
                )
            record = BudgetCharge(str(analysis_id), amount, datetime.now(UTC).isoformat())
            researchers[researcher_id] = [*entries, asdict(record)]
            self._write(researchers)
        return record

    def refund(self, researcher_id: str, record: BudgetCharge) -> None:
        """Take back a charge whose release did not leave the node after all."""
        with self._locked():
            researchers = self._read()
            entries = researchers.get(researcher_id, [])
            kept = [e for e in entries if e != asdict(record)]
            if len(kept) != len(entries):
                researchers[researcher_id] = kept
                self._write(researchers)
