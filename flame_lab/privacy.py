"""Disclosure rules and differential privacy: what a node lets leave, and at what privacy cost.

Shared by the sandbox nodes and by the researcher's local dry run, so that a result refused at
a node is refused on the researcher's machine first. Pure Python + NumPy: no Jupyter, no network.

The node policy file (``policy.toml``, or ``policy.json`` with the same nesting)::

    approval = "manual"              # "auto" | "manual": who approves an incoming analysis

    [disclosure]
    min_records = 5                  # fewest records a node may release anything about
    min_count = 5                    # counts 1..min_count-1 are suppressed (omit: = min_records)
    suppress_small_counts = true
    refuse_row_level = true          # refuse collections as long as the record count, or longer
    max_release_bytes = 67108864     # 0: no limit
    allow_opaque_bytes = false       # raw bytes cannot be inspected, so they are refused

    [privacy]
    epsilon_per_researcher = 10.0    # total DP epsilon each researcher (key id) may spend here

    [limits]                         # the run as a whole: see flame_lab.limits
    cpu_seconds = 600
    memory_mib = 2048
    wall_seconds = 1800

Unknown keys are errors, never ignored: a misspelt ``min_record`` must not weaken a policy.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import tempfile
import threading
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from flame_lab.errors import DPParameterError, PolicyFileError, PolicyRefused
from flame_lab.limits import LIMIT_TYPES as _LIMIT_TYPES
from flame_lab.limits import ResourceLimits

try:  # cross-process lock for the budget file; absent on Windows, where a thread lock remains
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

APPROVAL_MODES = ("auto", "manual")
MAX_DEPTH = 64
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- policies ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DisclosurePolicy:
    """The statistical disclosure rules a node applies to every result before it leaves."""

    min_records: int = 5
    min_count: int | None = None
    suppress_small_counts: bool = True
    refuse_row_level: bool = True
    max_release_bytes: int = 64 * 1024 * 1024  # 0: no limit
    allow_opaque_bytes: bool = False

    def __post_init__(self) -> None:
        _check_table(asdict(self), _DISCLOSURE_TYPES, "disclosure")

    @property
    def count_threshold(self) -> int:
        """Counts from 1 up to (not including) this number are suppressed."""
        return self.min_count if self.min_count is not None else self.min_records


@dataclass(frozen=True)
class NodePolicy:
    """Everything a node's data steward decides: approval, disclosure, DP budget, limits.

    Approval defaults to ``manual``: a hospital node runs nothing nobody looked at. The sandbox
    writes ``approval = "auto"`` into its own nodes' policy files where it wants speed.
    """

    approval: str = "manual"
    disclosure: DisclosurePolicy = field(default_factory=DisclosurePolicy)
    epsilon_per_researcher: float = 10.0
    limits: ResourceLimits = field(default_factory=ResourceLimits)

    def __post_init__(self) -> None:
        if self.approval not in APPROVAL_MODES:
            raise PolicyFileError(
                f"approval must be one of {', '.join(APPROVAL_MODES)}, not {self.approval!r}",
                hint='Write approval = "auto" or approval = "manual".',
            )
        _check_number("privacy.epsilon_per_researcher", self.epsilon_per_researcher, float)

    def to_dict(self) -> dict[str, Any]:
        """The nested shape of the policy file; unset optional values are left out."""
        disclosure = {k: v for k, v in asdict(self.disclosure).items() if v is not None}
        return {
            "approval": self.approval,
            "disclosure": disclosure,
            "privacy": {"epsilon_per_researcher": float(self.epsilon_per_researcher)},
            "limits": asdict(self.limits),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "policy") -> NodePolicy:
        """Build from the nested shape, refusing unknown keys and wrong types."""
        if not isinstance(data, Mapping):
            raise PolicyFileError(f"{source}: the policy must be a table of settings")
        _refuse_unknown(data, ("approval", "disclosure", "privacy", "limits"), source)
        tables = {}
        for section in ("disclosure", "privacy", "limits"):
            table = data.get(section, {})
            if not isinstance(table, Mapping):
                raise PolicyFileError(f"{source}: [{section}] must be a table")
            tables[section] = table
        _refuse_unknown(tables["disclosure"], tuple(_DISCLOSURE_TYPES), f"{source} [disclosure]")
        _refuse_unknown(tables["privacy"], ("epsilon_per_researcher",), f"{source} [privacy]")
        _refuse_unknown(tables["limits"], tuple(_LIMIT_TYPES), f"{source} [limits]")
        kwargs: dict[str, Any] = dict(tables["privacy"])
        if "approval" in data:
            kwargs["approval"] = data["approval"]
        try:
            return cls(
                disclosure=DisclosurePolicy(**tables["disclosure"]),
                limits=ResourceLimits(**tables["limits"]),
                **kwargs,
            )
        except PolicyFileError as exc:
            raise PolicyFileError(f"{source}: {exc.message}", hint=exc.hint) from None


_DISCLOSURE_TYPES: dict[str, type] = {
    "min_records": int,
    "min_count": int,
    "suppress_small_counts": bool,
    "refuse_row_level": bool,
    "max_release_bytes": int,
    "allow_opaque_bytes": bool,
}


def _check_number(name: str, value: Any, kind: type) -> None:
    if kind is bool:
        if not isinstance(value, bool):
            raise PolicyFileError(f"{name} must be true or false, not {value!r}")
        return
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        what = "a whole number" if kind is int else "a number"
        raise PolicyFileError(f"{name} must be {what}, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise PolicyFileError(f"{name} must be greater than 0, not {value!r}")


def _check_table(table: Mapping[str, Any], known: Mapping[str, type], section: str) -> None:
    for key, value in table.items():
        if (value is None and key == "min_count") or (
            key == "max_release_bytes" and type(value) is int and value == 0
        ):
            continue
        _check_number(f"{section}.{key}", value, known[key])


def _refuse_unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise PolicyFileError(
            f"{where}: unknown setting(s) {', '.join(unknown)}",
            hint=f"Known settings here: {', '.join(known)}.",
        )


def load_policy(path: str | os.PathLike[str]) -> NodePolicy:
    """Read a node policy: JSON when the file name ends in .json, TOML otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(
            f"No policy file at {path}",
            hint="Write one with `flame_lab.privacy.dump_policy(NodePolicy(), path)`.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"Cannot read the policy file {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise PolicyFileError(f"The policy file {path} is not valid {kind}: {exc}") from None
    return NodePolicy.from_dict(data, source=str(path))


def dump_policy(policy: NodePolicy, path: str | os.PathLike[str]) -> None:
    """Write a node policy atomically: JSON for a .json name, TOML (own small writer) otherwise."""
    path = Path(path)
    data = policy.to_dict()
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else _to_toml(data)
    _atomic_write(path, text.encode("utf-8"))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string accepts JSON's escapes


def _to_toml(data: Mapping[str, Any]) -> str:
    """Top-level scalars, then one [table] per nested mapping: all a policy needs."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- disclosure check ----------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """A result cleared for release: small counts replaced, their locations listed."""

    value: Any
    suppressed: list[str]
    record_count: int

    def describe(self) -> str:
        """One line for the node log and the researcher (locations only, never values)."""
        if not self.suppressed:
            return "released with no suppression"
        shown = ", ".join(self.suppressed[:10])
        more = f" and {len(self.suppressed) - 10} more" if len(self.suppressed) > 10 else ""
        return f"released with {len(self.suppressed)} small count(s) suppressed: {shown}{more}"


def check_release(value: Any, *, record_count: int, policy: DisclosurePolicy) -> Release:
    """Apply the disclosure rules to a result; raise PolicyRefused if it may not leave at all.

    The rules, as a data steward reads them:

    1. Nothing leaves a node holding fewer than ``min_records`` records.
    2. **Every whole number is treated as a count.** Python and NumPy integers of 1 up to
       ``count_threshold - 1`` are suppressed (replaced by ``None``; in integer arrays and
       table columns by NaN) and their locations listed, DataSHIELD-style. Zero, negative
       numbers, booleans and floating-point numbers (means, coefficients) are not counts.
       A count disguised as a float is not caught: nodes needing more use DP noise.
    3. No collection (list, tuple, dict, array along any axis, table) may have as many
       entries as the node has records, or more: that is row-level data.
    4. Raw bytes are refused (they cannot be inspected) unless ``allow_opaque_bytes``; so are
       types other than dict, list, tuple, str, numbers, None, NumPy arrays and
       DataFrame/Series-like tables; the whole result must fit in ``max_release_bytes``.

    Secondary suppression (a suppressed cell recovered from a total) is not attempted.
    """
    if isinstance(record_count, bool) or not isinstance(record_count, int) or record_count < 0:
        raise PolicyRefused(f"record_count must be a whole number >= 0, not {record_count!r}")
    if record_count < policy.min_records:
        raise PolicyRefused(
            f"this node holds {record_count} records; its policy releases nothing based on "
            f"fewer than {policy.min_records}",
            hint="Run the analysis on nodes with more records, or ask the data steward.",
        )
    checker = _Checker(record_count, policy)
    released = checker.walk(value, "$", 0)
    limit = policy.max_release_bytes
    if limit and checker.size > limit:
        raise PolicyRefused(
            f"the result is about {checker.size} bytes; this node releases at most {limit}",
            hint="Return aggregates (sums, means, model coefficients), not data.",
        )
    return Release(released, checker.suppressed, record_count)


def _member(path: str, key: Any) -> str:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, str):
        return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]"
    return f"{path}[{key!r}]"


def _index(path: str, index: tuple[int, ...]) -> str:
    return f"{path}[{','.join(str(int(i)) for i in index)}]"


class _Checker:
    """One walk over a result: rebuilds it with small counts replaced, sums its size."""

    def __init__(self, record_count: int, policy: DisclosurePolicy) -> None:
        self.record_count = record_count
        self.policy = policy
        self.threshold = policy.count_threshold
        self.suppressed: list[str] = []
        self.size = 0

    def _is_small(self, number: int) -> bool:
        return self.policy.suppress_small_counts and 0 < number < self.threshold

    def _length(self, length: int, path: str, what: str) -> None:
        if self.policy.refuse_row_level and length >= self.record_count:
            raise PolicyRefused(
                f"{what} at {path} has {length} entries and this node holds {self.record_count} "
                "records: that is row-level data, which this node does not release",
                hint="Return aggregates (counts, sums, means, model coefficients), not rows.",
            )

    def walk(self, value: Any, path: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise PolicyRefused(f"the result is nested deeper than {MAX_DEPTH} levels at {path}")
        if value is None or isinstance(value, (bool, np.bool_)):
            self.size += 1
            return value
        if isinstance(value, (int, np.integer)):
            self.size += 8
            if self._is_small(int(value)):
                self.suppressed.append(path)
                return None
            return value
        if isinstance(value, (float, complex, np.floating, np.complexfloating)):
            self.size += 8
            return value
        if isinstance(value, str):
            self.size += len(value.encode("utf-8", "surrogatepass"))
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            if not self.policy.allow_opaque_bytes:
                raise PolicyRefused(
                    f"the result holds raw bytes at {path}, which a node cannot inspect",
                    hint="Return numbers, lists, dicts or NumPy arrays (output_type='str' or "
                    "'pickle' of plain values), or ask the steward to allow opaque bytes.",
                )
            self.size += len(value)
            return value
        if isinstance(value, Mapping):
            return self._mapping(value, path, depth)
        if isinstance(value, (list, tuple)):
            return self._sequence(value, path, depth)
        if isinstance(value, np.ndarray):
            return self._ndarray(value, path, depth)
        if hasattr(value, "to_numpy") and hasattr(value, "shape"):
            return self._table(value, path, depth)
        raise PolicyRefused(
            f"the result holds a {type(value).__name__} at {path}, which a node cannot inspect",
            hint="Return dicts, lists, numbers, strings, NumPy arrays or DataFrames.",
        )

    def _mapping(self, value: Mapping, path: str, depth: int) -> dict:
        self._length(len(value), path, "a dict")
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool, np.integer, np.floating)):
                raise PolicyRefused(f"a dict key at {path} is a {type(key).__name__}")
            self.size += len(str(key))
            out[key] = self.walk(item, _member(path, key), depth + 1)
        return out

    def _sequence(self, value: list | tuple, path: str, depth: int) -> list | tuple:
        self._length(len(value), path, f"a {type(value).__name__}")
        items = [self.walk(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, list):
            return items
        if hasattr(value, "_fields"):  # a namedtuple keeps its type
            return type(value)(*items)
        return tuple(items)

    def _ndarray(self, array: np.ndarray, path: str, depth: int) -> Any:
        if array.ndim == 0:  # a 0-d array is a scalar: released as the plain Python value
            return self.walk(array.item(), path, depth)
        for axis, length in enumerate(array.shape):
            self._length(length, path, f"an array (axis {axis})")
        new, _ = self._array_cells(array, path, depth)
        return new

    def _array_cells(self, array: np.ndarray, path: str, depth: int) -> tuple[np.ndarray, bool]:
        """Check every cell; return (array to release, whether anything was suppressed)."""
        kind = array.dtype.kind
        if kind in "iu":
            self.size += array.nbytes
            mask = (array > 0) & (array < self.threshold)
            if not (self.policy.suppress_small_counts and mask.any()):
                return array, False
            self.suppressed += [_index(path, tuple(ix)) for ix in np.argwhere(mask)]
            out = array.astype(np.float64)
            out[mask] = np.nan
            return out, True
        if kind in "fcbUSmM":
            self.size += array.nbytes
            return array, False
        if kind == "O":
            out = np.empty(array.shape, dtype=object)
            before = len(self.suppressed)
            for ix in np.ndindex(array.shape):
                out[ix] = self.walk(array[ix], _index(path, ix), depth + 1)
            return out, len(self.suppressed) > before
        raise PolicyRefused(f"an array at {path} has dtype {array.dtype}, which is not released")

    def _table(self, table: Any, path: str, depth: int) -> Any:
        """A pandas DataFrame or Series (duck-typed: shape + to_numpy; pandas not imported)."""
        for axis, length in enumerate(table.shape):
            self._length(length, path, f"a table (axis {axis})")
        if not hasattr(table, "columns"):  # a Series
            new, changed = self._array_cells(table.to_numpy(), path, depth)
            return type(table)(new, index=table.index, name=table.name) if changed else table
        out = None
        for j, column in enumerate(table.columns):
            cells = table.iloc[:, j].to_numpy()
            new, changed = self._array_cells(cells, _member(path, column), depth)
            if changed:
                out = table.copy() if out is None else out
                out.isetitem(j, new)
        return table if out is None else out


# -- differential privacy -----------------------------------------------------------------
def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DPParameterError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise DPParameterError(f"{name} must be finite and greater than 0, not {value!r}")
    return number


def add_laplace_noise(
    value: Any,
    *,
    sensitivity: float,
    epsilon: float,
    rng: np.random.Generator | None = None,
) -> Any:
    """Laplace mechanism: value + Laplace(0, sensitivity/epsilon), per element for arrays.

    A number gives a float, an array a float array of the same shape. ``rng`` defaults to a
    Generator seeded from ``secrets``. Not hardened against floating-point side channels
    (Mironov 2012) as OpenDP is; fine for the sandbox and for dry runs.
    """
    scale = _positive("sensitivity", sensitivity) / _positive("epsilon", epsilon)
    if rng is None:
        rng = np.random.default_rng(secrets.randbits(128))
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise DPParameterError(f"Laplace noise needs a numeric array, not dtype {value.dtype}")
        return value.astype(np.float64) + rng.laplace(0.0, scale, size=value.shape)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DPParameterError(
            f"Laplace noise needs a number or a NumPy array, not {type(value).__name__}",
            hint="Return a single number (or an array) as the final result of a DP analysis.",
        )
    return float(value) + float(rng.laplace(0.0, scale))


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
