"""The strict profile's release checks: what a value *carries*, not what Python type it has.

Pure functions over one released value (no node, no network), shared by the node agent and by
the researcher's local test. Each finding is a :class:`Violation` naming its rule and the path
of the value (``result["groups"]["other|<40"]["sum"]``), never the value itself: a refusal is
shown to the hub, which must not learn what was refused. Rules:

- ``min-records``: nothing about fewer than ``min_records`` records.
- ``row-level``: a collection (or one release in total) with as many entries as records.
- ``text``: strings and dict keys longer than a short label (rows as CSV, names, ids).
- ``small-count``: any integral-valued number 1..min_count-1 in absolute value, whatever its
  type (int, 1.0, -1, NumPy, bool, digits inside a string such as "n=1" or "0001").
- ``offset-count``: an integral number a small count away from a round number above the
  record count (1001 = 1000 + 1) or from the node's record count (654 of 655: the other 1).
- ``group-statistic``: a sum/mean/min/max beside a count (``n``, ``count``...) that is small
  or withheld (``None``) in the same group.
- ``opaque`` / ``type`` / ``size``: bytes and unknown objects cannot be inspected; the size cap.

Rules across a whole run (totals, differencing) live in :mod:`flame_lab.release.channel`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flame_lab.limits import DEFAULT_RELEASE_BYTES
from flame_lab.privacy import NodePolicy

MAX_DEPTH = 64
MAX_TRACKED = 4096  # integral values remembered per release for the run's differencing rule
COUNT_KEYS = frozenset(
    {"n", "count", "counts", "size", "num", "number", "records", "n_records", "patients"}
    | {"freq", "frequency", "cases", "total_count", "n_patients"}
)
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:\.\d+)?(?![A-Za-z0-9_])")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)


@dataclass(frozen=True)
class StrictRules:
    """The numbers the strict checks use, read from a node's policy."""

    min_records: int = 5
    count_threshold: int = 5
    small_counts: bool = True
    row_level: bool = True
    max_label_chars: int = 40
    max_values_ratio: float = 0.5
    max_release_bytes: int = DEFAULT_RELEASE_BYTES
    allow_opaque_bytes: bool = False

    @classmethod
    def of(cls, policy: NodePolicy) -> StrictRules:
        d, r = policy.disclosure, policy.release
        return cls(
            min_records=d.min_records,
            count_threshold=d.count_threshold,
            small_counts=d.suppress_small_counts,
            row_level=d.refuse_row_level,
            max_label_chars=r.max_label_chars,
            max_values_ratio=r.max_values_ratio,
            max_release_bytes=d.max_release_bytes,
            allow_opaque_bytes=d.allow_opaque_bytes,
        )


@dataclass(frozen=True)
class Violation:
    """One reason a strict node refuses a release: the rule, where, and why in words."""

    rule: str
    path: str
    detail: str

    def describe(self) -> str:
        return f"{self.path}: {self.detail} (rule {self.rule})"


@dataclass
class Inspection:
    """What one walk over a release found: violations, how many values, integral cells."""

    violations: list[Violation] = field(default_factory=list)
    values: int = 0
    size: int = 0
    integrals: dict[str, float] = field(default_factory=dict)


def _fmt_key(key: Any, index: int, rules: StrictRules) -> str:
    """A dict key for a path: short labels verbatim, anything else by position only."""
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, bool) or key is None:
        return f"[{key!r}]"
    if isinstance(key, str):
        digits = [m.group() for m in _NUMBER.finditer(key)]
        if len(key) <= rules.max_label_chars and not any(_is_small_text(d, rules) for d in digits):
            return f"[{json.dumps(key)}]"
        return f"[<key #{index}>]"
    return f"[<key #{index}>]"


def _is_small_text(digits: str, rules: StrictRules) -> bool:
    try:
        number = float(digits)
    except ValueError:
        return False
    return number.is_integer() and 0 < number < rules.count_threshold


def inspect(
    value: Any, *, record_count: int, rules: StrictRules, root: str = "result"
) -> Inspection:
    """Walk ``value`` under the strict rules; every violation is reported, none raised."""
    walk = _Walk(record_count, rules)
    if record_count < rules.min_records:
        walk.found(
            "min-records",
            root,
            f"this node holds {record_count} records and releases nothing based on fewer "
            f"than {rules.min_records}",
        )
    walk.walk(value, root, 0)
    found = walk.result
    if rules.row_level and record_count and found.values >= record_count:
        walk.found(
            "row-level",
            root,
            f"one release of {found.values} values from {record_count} records is row-level data",
        )
    if rules.max_release_bytes and found.size > rules.max_release_bytes:
        walk.found(
            "size",
            root,
            f"about {found.size} bytes; this node releases at most {rules.max_release_bytes}",
        )
    return found


def inspect_text(text: str, *, record_count: int, rules: StrictRules, root: str) -> Inspection:
    """A log line or failure message: its numbers are checked as counts; its length is free."""
    walk = _Walk(record_count, rules)
    walk.digits(text, root)
    return walk.result


class _Walk:
    def __init__(self, record_count: int, rules: StrictRules) -> None:
        self.record_count = record_count
        self.rules = rules
        self.result = Inspection()

    def found(self, rule: str, path: str, detail: str) -> None:
        if len(self.result.violations) < 100:
            self.result.violations.append(Violation(rule, path, detail))

    # -- scalars ---------------------------------------------------------------------------
    def count(self, number: float, path: str) -> None:
        """An integral number, treated as a possible count whatever its sign or offset."""
        rules, magnitude = self.rules, abs(number)
        if len(self.result.integrals) < MAX_TRACKED:
            self.result.integrals[path] = number
        if not rules.small_counts or magnitude == 0:
            return
        threshold = rules.count_threshold
        if magnitude < threshold:
            self.found(
                "small-count",
                path,
                f"an integral number below {threshold} in absolute value is a possible count "
                f"of fewer than {threshold} records",
            )
            return
        gap = abs(magnitude - self.record_count)
        if 0 < gap < threshold:
            self.found(
                "offset-count",
                path,
                f"an integral number fewer than {threshold} away from this node's record count "
                "discloses the small group it leaves out",
            )
            return
        if magnitude <= self.record_count or not math.isfinite(magnitude):
            return
        power = 10 ** max(3, len(str(int(self.record_count))))
        while power <= magnitude + threshold:
            gap = min(magnitude % power, power - magnitude % power)
            if 0 < gap < threshold:
                self.found(
                    "offset-count",
                    path,
                    f"an integral number fewer than {threshold} away from a round number "
                    "above the record count is a possible count with an offset",
                )
                return
            power *= 10

    def number(self, value: float, path: str) -> None:
        self.result.values += 1
        self.result.size += 8
        if math.isfinite(value) and float(value).is_integer():
            self.count(float(value), path)

    def digits(self, text: str, path: str) -> None:
        """Standalone numbers in text (not digits inside words, hex ids or UUIDs)."""
        for match in _NUMBER.finditer(_UUID.sub("", text)):
            number = float(match.group())
            self.result.values += 1
            if number.is_integer():
                self.count(number, f"{path} (number #{self.result.values})")

    def text(self, text: str, path: str, what: str = "a string") -> None:
        self.result.size += len(text.encode("utf-8", "surrogatepass"))
        self.result.values += 1
        limit = self.rules.max_label_chars
        if len(text) > limit:
            self.found(
                "text",
                path,
                f"{what} of {len(text)} characters; this node releases only labels of at most "
                f"{limit} characters (rows as text are refused)",
            )
            return
        values = self.result.values
        self.digits(text, path)
        self.result.values = values  # a label's digits are part of the label, not new values

    # -- containers ------------------------------------------------------------------------
    def length(self, length: int, path: str, what: str) -> None:
        if self.rules.row_level and self.record_count and length >= self.record_count:
            self.found(
                "row-level",
                path,
                f"{what} of {length} entries from {self.record_count} records is row-level data",
            )

    def walk(self, value: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.found("type", path, f"nested deeper than {MAX_DEPTH} levels")
            return
        if value is None:
            self.result.size += 1
            return
        if isinstance(value, (bool, np.bool_)):
            self.number(float(bool(value)), path)
            return
        if isinstance(value, (int, np.integer)):
            self.number(float(value), path)
            return
        if isinstance(value, (float, np.floating)):
            self.number(float(value), path)
            return
        if isinstance(value, (complex, np.complexfloating)):
            self.number(float(value.real), path + ".real")
            self.number(float(value.imag), path + ".imag")
            return
        if isinstance(value, str):
            self.text(value, path)
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            self.result.size += len(value)
            if not self.rules.allow_opaque_bytes:
                self.found("opaque", path, "raw bytes cannot be inspected by the node")
            return
        if isinstance(value, Mapping):
            self.mapping(value, path, depth)
            return
        if isinstance(value, (list, tuple)):
            self.length(len(value), path, f"a {type(value).__name__}")
            for i, item in enumerate(value):
                self.walk(item, f"{path}[{i}]", depth + 1)
            return
        if isinstance(value, np.ndarray):
            self.array(value, path, depth)
            return
        if hasattr(value, "to_numpy") and hasattr(value, "shape"):
            self.table(value, path, depth)
            return
        self.found("type", path, f"a {type(value).__name__} cannot be inspected by the node")

    def mapping(self, value: Mapping, path: str, depth: int) -> None:
        self.length(len(value), path, "a dict")
        small_group = self._small_group(value)
        for index, (key, item) in enumerate(value.items()):
            where = path + _fmt_key(key, index, self.rules)
            if isinstance(key, str):
                values = self.result.values
                self.text(key, f"{path}[<key #{index}>]", "a dict key")
                self.result.values = values + 1
            elif isinstance(key, (int, float, bool, np.integer, np.floating)):
                self.number(float(key), f"{path}[<key #{index}>]")
            elif key is not None:
                self.found("type", where, f"a dict key of type {type(key).__name__}")
            if small_group and str(key).lower() not in COUNT_KEYS and _carries_numbers(item):
                self.found(
                    "group-statistic",
                    where,
                    f"a statistic beside a group count that is withheld or below "
                    f"{self.rules.count_threshold} discloses the few records behind it",
                )
            self.walk(item, where, depth + 1)

    def _small_group(self, value: Mapping) -> bool:
        if not self.rules.small_counts:
            return False
        for key, item in value.items():
            if not (isinstance(key, str) and key.lower() in COUNT_KEYS):
                continue
            if item is None:
                return True
            if isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(
                item, (bool, np.bool_)
            ):
                number = abs(float(item))
                if math.isfinite(number) and 0 < number < self.rules.count_threshold:
                    return True
                if isinstance(item, float) and math.isnan(item):
                    return True
        return False

    def array(self, array: np.ndarray, path: str, depth: int) -> None:
        if array.ndim == 0:
            self.walk(array.item(), path, depth)
            return
        for axis, length in enumerate(array.shape):
            self.length(length, path, f"an array (axis {axis})")
        self.cells(array, path, depth)

    def cells(self, array: np.ndarray, path: str, depth: int) -> None:
        kind = array.dtype.kind
        if kind in "biuf":
            values = array.astype(np.float64, copy=False)
            self.result.values += int(values.size)
            self.result.size += int(array.nbytes)
            finite = np.isfinite(values)
            integral = finite & (values == np.round(values)) & (values != 0)
            if not integral.any():
                return
            cells = np.argwhere(integral)
            for ix in cells[:MAX_TRACKED]:
                before = len(self.result.violations)
                where = f"{path}[{','.join(str(int(i)) for i in ix)}]"
                self.count(float(values[tuple(ix)]), where)
                if len(self.result.violations) > before and len(self.result.violations) >= 100:
                    return
            return
        if kind == "c":
            self.cells(array.real.copy(), path + ".real", depth)
            self.cells(array.imag.copy(), path + ".imag", depth)
            return
        if kind in "OUS":
            for ix in np.ndindex(array.shape):
                self.walk(array[ix], f"{path}[{','.join(map(str, ix))}]", depth + 1)
            return
        self.found("type", path, f"an array of dtype {array.dtype} cannot be inspected")

    def table(self, table: Any, path: str, depth: int) -> None:
        for axis, length in enumerate(table.shape):
            self.length(length, path, f"a table (axis {axis})")
        if not hasattr(table, "columns"):
            self.cells(np.asarray(table.to_numpy()), path, depth)
            return
        for j, column in enumerate(table.columns):
            values = self.result.values
            if isinstance(column, str):
                self.text(column, f"{path}[<column #{j}>]", "a column name")
            self.result.values = values
            where = path + _fmt_key(column, j, self.rules)
            self.cells(np.asarray(table.iloc[:, j].to_numpy()), where, depth)


def _carries_numbers(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, np.bool_)):
        return False
    return True
