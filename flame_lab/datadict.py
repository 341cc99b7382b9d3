"""The data dictionary: what a node holds, described without a single row.

A node describes each table (columns with types, units, value sets or coarse ranges, a record
count band) and its FHIR store (resource types, count bands, code systems and the codes in use)
together with the policy that applies there. Counts are bands (``100-999``), ranges are rounded
outwards, and a value or code is named only when at least ``min_records`` records carry it: the
description says what can be asked, never who is in the data. The researcher's side reads a
description from the network with :meth:`DatasetDescription.from_dict`, which checks every field.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from flame_lab.errors import FlameLabError
from flame_lab.textsafe import shown

FORMAT = 1
MAX_DESCRIPTION_BYTES = 256 * 1024  # what the hub stores and a client reads per node
MAX_VALUES = 12  # a column with more distinct values is shown as text (no value set)
MAX_CODES = 200
MAX_TEXT = 300
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
#: The names researchers know code systems by.
CODE_SYSTEMS = {
    "http://fhir.de/CodeSystem/bfarm/icd-10-gm": "ICD-10-GM",
    "http://fhir.de/CodeSystem/dimdi/icd-10-gm": "ICD-10-GM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED CT",
    "http://unitsofmeasure.org": "UCUM",
    "http://fhir.de/CodeSystem/bfarm/ops": "OPS",
    "http://fhir.de/CodeSystem/bfarm/atc": "ATC",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode": "HL7 v3 ActCode",
    "http://terminology.hl7.org/CodeSystem/observation-category": "HL7 observation category",
}
_ID_COLUMN = re.compile(r"(^|_)(id|identifier|pseudonym)$", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class DataDictionaryError(FlameLabError):
    """A node's data description is missing or malformed."""

    default_hint = "Ask the node's admin; the node publishes its description when it starts."


# -- the description -------------------------------------------------------------------------
def band(count: int) -> str:
    """A record count as a band of its decade: 0, 1-9, 10-99, 100-999, 1 000-9 999, ..."""
    if count <= 0:
        return "0"
    low = 10 ** int(math.log10(count))
    low = 1 if low == 1 else low
    return f"{low:,}-{low * 10 - 1:,}".replace(",", " ")


def coarse_range(low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` widened to a grid a tenth of its span wide: no record's exact value."""
    span = high - low
    if span <= 0:
        step = 10 ** math.floor(math.log10(abs(high))) if high else 1.0
    else:
        step = 10 ** math.floor(math.log10(span))
    lo, hi = math.floor(low / step) * step, math.ceil(high / step) * step
    if hi == lo:
        hi = lo + step
    return (_tidy(lo), _tidy(hi))


def _tidy(value: float) -> float:
    rounded = round(value, 6)
    return int(rounded) if rounded == int(rounded) else rounded


@dataclass(frozen=True)
class Column:
    """One column: its type and what values it takes (a value set or a coarse range)."""

    name: str
    type: str  # integer | number | boolean | category | date | identifier | text
    unit: str | None = None
    description: str | None = None
    values: tuple[str, ...] | None = None
    range: tuple[float, float] | None = None
    empty: bool = False  # some records have no value

    def values_text(self) -> str:
        if self.values is not None:
            return ", ".join(self.values)
        if self.range is not None:
            low, high = self.range
            return f"{low:g} to {high:g}"
        return ""


@dataclass(frozen=True)
class Table:
    name: str
    records: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Code:
    """A code used by some of a resource type's records (at least the node's minimum)."""

    system: str
    code: str
    display: str | None = None
    unit: str | None = None
    records: str = ""


@dataclass(frozen=True)
class Resource:
    type: str
    records: str
    codes: tuple[Code, ...] = ()


@dataclass(frozen=True)
class DatasetDescription:
    """What one node holds and the rules that apply to it; never a row."""

    node: str
    records: str
    tables: tuple[Table, ...] = ()
    fhir: tuple[Resource, ...] = ()
    code_systems: tuple[str, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    described_at: str | None = None

    # -- wire ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        data["policy"] = dict(self.policy)
        return data

    @classmethod
    def from_dict(cls, data: Any, node: str | None = None) -> DatasetDescription:
        """A description as a node published it, every field type- and size-checked."""
        try:
            return _read_description(data, node)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise DataDictionaryError(
                f"the data description of node {node or '?'} is malformed ({exc})"
            ) from None

    # -- views -----------------------------------------------------------------------------
    def to_text(self) -> str:
        lines = [f"{shown(self.node, multiline=False)}: {self.records} records"]
        for table in self.tables:
            lines.append(f"  table {_one(table.name)} ({table.records} rows)")
            width = max((len(_one(c.name)) for c in table.columns), default=4)
            for col in table.columns:
                unit = f" [{_one(col.unit)}]" if col.unit else ""
                empty = " (may be empty)" if col.empty else ""
                values = _one(col.values_text())
                lines.append(
                    f"    {_one(col.name):<{width}}  {col.type}{unit}  {values}{empty}".rstrip()
                )
        for resource in self.fhir:
            lines.append(f"  FHIR {_one(resource.type)} ({resource.records})")
            for code in resource.codes:
                unit = f" [{_one(code.unit)}]" if code.unit else ""
                name = CODE_SYSTEMS.get(code.system, code.system)
                display = f" {_one(code.display)}" if code.display else ""
                lines.append(
                    f"    {_one(name)} {_one(code.code)}{display}{unit} ({code.records})".rstrip()
                )
        if self.code_systems:
            lines.append("  code systems: " + ", ".join(_one(s) for s in self.code_systems))
        rules = policy_line(self.policy)
        if rules:
            lines.append(f"  policy: {rules}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return description_html(self)

    def __repr__(self) -> str:
        return self.to_text()


def _one(value: Any) -> str:
    return shown("" if value is None else value, multiline=False)


def policy_line(policy: Mapping[str, Any]) -> str:
    """The rules a researcher must know, in one line."""
    parts = []
    if isinstance(policy.get("approval"), str):
        parts.append(f"approval {policy['approval']}")
    disclosure = policy.get("disclosure")
    if isinstance(disclosure, Mapping) and "min_records" in disclosure:
        parts.append(f"at least {disclosure['min_records']} records behind a result")
    privacy = policy.get("privacy")
    if isinstance(privacy, Mapping) and "epsilon_per_researcher" in privacy:
        parts.append(f"DP budget epsilon {privacy['epsilon_per_researcher']:g} per researcher")
    return shown("; ".join(parts), multiline=False)


# -- reading what came from the network -------------------------------------------------------
def _text(value: Any, what: str, *, optional: bool = False, limit: int = MAX_TEXT) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{what} must be a text of at most {limit} characters")
    return value


def _items(value: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list | tuple) or len(value) > limit:
        raise ValueError(f"{what} must be a list of at most {limit} items")
    return value


def _read_column(raw: Mapping[str, Any]) -> Column:
    values = raw.get("values")
    rng = raw.get("range")
    if rng is not None:
        rng = _items(rng, "range", 2)
        if len(rng) != 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in rng
        ):
            raise ValueError("range must be two numbers")
    return Column(
        name=_text(raw["name"], "column name"),
        type=_text(raw["type"], "column type", limit=20),
        unit=_text(raw.get("unit"), "unit", optional=True, limit=40),
        description=_text(raw.get("description"), "description", optional=True),
        values=None
        if values is None
        else tuple(_text(v, "value") for v in _items(values, "values", MAX_VALUES)),
        range=None if rng is None else (rng[0], rng[1]),
        empty=bool(raw.get("empty", False)),
    )


def _read_description(data: Any, node: str | None) -> DatasetDescription:
    if not isinstance(data, Mapping):
        raise TypeError("not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r} is not {FORMAT}")
    tables = tuple(
        Table(
            name=_text(t["name"], "table name"),
            records=_text(t["records"], "records", limit=40),
            columns=tuple(_read_column(c) for c in _items(t["columns"], "columns", 500)),
        )
        for t in _items(data.get("tables", []), "tables", 100)
    )
    fhir = tuple(
        Resource(
            type=_text(r["type"], "resource type", limit=80),
            records=_text(r["records"], "records", limit=40),
            codes=tuple(
                Code(
                    system=_text(c["system"], "code system"),
                    code=_text(c["code"], "code", limit=80),
                    display=_text(c.get("display"), "display", optional=True),
                    unit=_text(c.get("unit"), "unit", optional=True, limit=40),
                    records=_text(c.get("records", ""), "records", limit=40),
                )
                for c in _items(r.get("codes", []), "codes", MAX_CODES)
            ),
        )
        for r in _items(data.get("fhir", []), "fhir", 100)
    )
    policy = data.get("policy", {})
    if not isinstance(policy, Mapping):
        raise TypeError("policy is not an object")
    return DatasetDescription(
        node=_text(data.get("node", node or "?"), "node", limit=200),
        records=_text(data["records"], "records", limit=40),
        tables=tables,
        fhir=fhir,
        code_systems=tuple(
            _text(s, "code system") for s in _items(data.get("code_systems", []), "systems", 50)
        ),
        policy=policy,
        described_at=_text(data.get("described_at"), "time", optional=True, limit=40),
    )


# -- describing a node's data (at the node) ---------------------------------------------------
def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def describe_column(
    name: str, cells: Sequence[str], min_records: int, note: Mapping[str, Any] | None = None
) -> Column:
    """A column's type and value set or coarse range from its cells, no value itself."""
    note = note or {}
    present = [c.strip() for c in cells if c.strip()]
    empty = len(present) < len(cells)
    unit = note.get("unit") if isinstance(note.get("unit"), str) else None
    description = note.get("description") if isinstance(note.get("description"), str) else None
    kind: str
    values: tuple[str, ...] | None = None
    rng: tuple[float, float] | None = None
    numbers = [_number(c) for c in present]
    distinct = Counter(present)
    if not present:
        kind = "text"
    elif _ID_COLUMN.search(name):
        kind = "identifier"
    elif all(n is not None for n in numbers):
        if set(distinct) <= {"0", "1"}:
            kind, values = "boolean", tuple(sorted(distinct))
        else:
            whole = all(
                float(n).is_integer() and "." not in c
                for n, c in zip(numbers, present, strict=True)
            )
            kind = "integer" if whole else "number"
            rng = coarse_range(min(numbers), max(numbers))  # type: ignore[type-var]
    elif all(_DATE.match(c) for c in present):
        kind = "date"
        years = [int(c[:4]) for c in present]
        rng = coarse_range(min(years), max(years))
    elif len(distinct) <= MAX_VALUES:
        kind = "category"
        common = sorted(v for v, n in distinct.items() if n >= min_records)
        values = tuple(common) + (("(rare values)",) if len(common) < len(distinct) else ())
    else:
        kind = "identifier" if len(distinct) == len(present) else "text"
    return Column(name, kind, unit, description, values, rng, empty)


def describe_table(
    name: str, data: bytes, min_records: int, notes: Mapping[str, Any] | None = None
) -> Table | None:
    """A CSV/TSV table's columns and row band; None for other files."""
    delimiter = next(
        (d for suffix, d in TABLE_DELIMITERS.items() if name.lower().endswith(suffix)), None
    )
    if delimiter is None:
        return None
    text = data.decode("utf-8", errors="replace")
    rows = [
        r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)
    ]
    if not rows:
        return Table(name, "0", ())
    header, body = rows[0], rows[1:]
    columns_notes = (notes or {}).get("columns", {})
    columns = tuple(
        describe_column(
            col,
            [r[i] if i < len(r) else "" for r in body],
            min_records,
            columns_notes.get(col) if isinstance(columns_notes, Mapping) else None,
        )
        for i, col in enumerate(header)
    )
    return Table(name, band(len(body)), columns)


def _concepts(resource: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("code", "valueCodeableConcept", "class", "type"):
        value = resource.get(key)
        if isinstance(value, list):
            yield from (v for v in value if isinstance(v, Mapping))
        elif isinstance(value, Mapping):
            yield value if "coding" in value else {"coding": [value]}


def describe_fhir(
    resources: Mapping[str, Sequence[Mapping[str, Any]]], min_records: int
) -> tuple[tuple[Resource, ...], set[str]]:
    """Resource types with count bands and their codes used by at least ``min_records``."""
    out = []
    systems: set[str] = set()
    for kind in sorted(resources):
        items = resources[kind]
        counts: Counter[tuple[str, str]] = Counter()
        display: dict[tuple[str, str], str] = {}
        units: dict[tuple[str, str], str] = {}
        for resource in items:
            seen = set()
            for concept in _concepts(resource):
                for coding in concept.get("coding") or []:
                    if not isinstance(coding, Mapping):
                        continue
                    system, code = coding.get("system"), coding.get("code")
                    if not isinstance(system, str) or not isinstance(code, str):
                        continue
                    systems.add(system)
                    key = (system, code)
                    seen.add(key)
                    if isinstance(coding.get("display"), str):
                        display.setdefault(key, coding["display"])
                    quantity = resource.get("valueQuantity")
                    if key not in units and isinstance(quantity, Mapping):
                        unit = quantity.get("unit") or quantity.get("code")
                        if isinstance(unit, str) and concept is resource.get("code"):
                            units[key] = unit
            counts.update(seen)
        codes = tuple(
            Code(system, code, display.get((system, code)), units.get((system, code)), band(n))
            for (system, code), n in sorted(counts.items())
            if n >= min_records
        )[:MAX_CODES]
        out.append(Resource(kind, band(len(items)), codes))
    return tuple(out), systems


def describe(
    node: str,
    *,
    tables: Mapping[str, bytes],
    resources: Mapping[str, Sequence[Mapping[str, Any]]],
    policy: Mapping[str, Any],
    notes: Mapping[str, Any] | None = None,
    record_count: int,
    described_at: str | None = None,
) -> DatasetDescription:
    """A node's description of its data (computed at the node, from its data and its policy)."""
    disclosure = policy.get("disclosure", {}) if isinstance(policy, Mapping) else {}
    min_records = int(disclosure.get("min_records", 5)) if isinstance(disclosure, Mapping) else 5
    min_records = max(1, min_records)
    table_notes = (notes or {}).get("tables", {})
    described_tables = []
    for name in sorted(tables):
        note = table_notes.get(name) if isinstance(table_notes, Mapping) else None
        table = describe_table(name, tables[name], min_records, note)
        if table is not None:
            described_tables.append(table)
    fhir, systems = describe_fhir(resources, min_records)
    names = sorted({CODE_SYSTEMS.get(s, s) for s in systems})
    return DatasetDescription(
        node=node,
        records=band(record_count),
        tables=tuple(described_tables),
        fhir=fhir,
        code_systems=tuple(names),
        policy=dict(policy),
        described_at=described_at,
    )


# -- several nodes ---------------------------------------------------------------------------
class DataDictionary(tuple):
    """The descriptions of several nodes: a text and an HTML view, and a flat table."""

    missing: tuple[str, ...]

    def __new__(
        cls, items: Iterable[DatasetDescription], missing: Iterable[str] = ()
    ) -> DataDictionary:
        made = super().__new__(cls, tuple(items))
        made.missing = tuple(missing)
        return made

    def node(self, name: str) -> DatasetDescription:
        for item in self:
            if item.node == name:
                return item
        raise DataDictionaryError(
            f"no description of node {name!r}",
            hint="Described nodes: " + (", ".join(d.node for d in self) or "(none)"),
        )

    def columns(self) -> list[dict[str, Any]]:
        """One row per (node, table, column): the shape of a DataFrame."""
        return [
            {
                "node": d.node,
                "table": t.name,
                "column": c.name,
                "type": c.type,
                "unit": c.unit or "",
                "values": c.values_text(),
                "rows": t.records,
            }
            for d in self
            for t in d.tables
            for c in t.columns
        ]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.columns())

    def _missing_text(self) -> str:
        if not self.missing:
            return ""
        return "Not described (yet): " + ", ".join(_one(m) for m in self.missing) + "."

    def to_text(self) -> str:
        parts = [d.to_text() for d in self] + [self._missing_text()]
        return "\n\n".join(p for p in parts if p) or "No node describes its data."

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        missing = f"<p><i>{_e(self._missing_text())}</i></p>" if self.missing else ""
        body = "".join(description_html(d) for d in self) + missing
        return body or "<i>No node describes its data.</i>"

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [d.to_dict() for d in self], "missing": list(self.missing)}


def _e(value: Any) -> str:
    return html.escape(shown("" if value is None else value), quote=True)


def description_html(d: DatasetDescription) -> str:
    """One node's description as HTML; every value escaped."""
    parts = [f"<h4>{_e(d.node)} <small>({_e(d.records)} records)</small></h4>"]
    for table in d.tables:
        rows = "".join(
            f"<tr><td><code>{_e(c.name)}</code></td><td>{_e(c.type)}</td><td>{_e(c.unit)}</td>"
            f"<td>{_e(c.values_text())}{' (may be empty)' if c.empty else ''}</td></tr>"
            for c in table.columns
        )
        parts.append(
            f"<details open><summary>table <code>{_e(table.name)}</code>, {_e(table.records)} "
            "rows</summary><table><tr><th>column</th><th>type</th><th>unit</th>"
            f"<th>values</th></tr>{rows}</table></details>"
        )
    if d.fhir:
        rows = "".join(
            f"<tr><td>{_e(r.type)}</td><td>{_e(r.records)}</td><td>"
            + "<br>".join(
                f"{_e(CODE_SYSTEMS.get(c.system, c.system))} <code>{_e(c.code)}</code> "
                f"{_e(c.display)}{' [' + _e(c.unit) + ']' if c.unit else ''}"
                for c in r.codes
            )
            + "</td></tr>"
            for r in d.fhir
        )
        parts.append(
            "<details><summary>FHIR resources</summary><table><tr><th>type</th>"
            f"<th>records</th><th>codes in use</th></tr>{rows}</table></details>"
        )
    if d.code_systems:
        parts.append(f"<div>Code systems: {_e(', '.join(d.code_systems))}</div>")
    rules = policy_line(d.policy)
    if rules:
        parts.append(f"<div>Policy: {_e(rules)}</div>")
    return f'<div class="flame-data">{"".join(parts)}</div>'
