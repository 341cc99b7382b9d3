"""The rapiq query subset the Hub accepts, parsed into SQL against one resource's columns.

filter[field]=value with prefixes ``!`` (not), ``~`` (starts with; ``*`` is a wildcard),
``<``, ``<=``, ``>``, ``>=``, ``null``, and ``a,b`` (any of); page[limit] (at most 50) and
page[offset]; sort=-a,b; include=rel1,rel2; fields=+optional (or a plain list to select).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flame_lab.sandbox.hub.limits import INT64, MAX_OFFSET, MAX_QUERY_VALUE, check_int, check_text
from flame_lab.sandbox.hub.resources import Resource
from flame_lab.sandbox.hub.wire import bad_field

MAX_LIMIT = 50
_FILTER_KEY = re.compile(r"^filter\[([A-Za-z0-9_.]+)\]$")
_PAGE_KEY = re.compile(r"^page\[(limit|offset)\]$")
_OPS = ("<=", ">=", "<", ">", "~")


@dataclass(frozen=True)
class Filter:
    field: str
    op: str  # "=", "<", "<=", ">", ">=", "~", "null", or "sql" (values: clause, *params)
    values: tuple[Any, ...]
    negate: bool = False


@dataclass
class Query:
    filters: list[Filter] = field(default_factory=list)
    limit: int = MAX_LIMIT
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    add_fields: list[str] = field(default_factory=list)
    only_fields: list[str] | None = None

    def filter_value(self, name: str) -> Any:
        """The value of a plain equality filter on ``name``, or None."""
        for f in self.filters:
            if f.field == name and f.op == "=" and not f.negate and len(f.values) == 1:
                return f.values[0]
        return None


def _convert(resource: Resource, name: str, raw: str) -> Any:
    kind = resource.fields[name]
    if kind == "bool":
        if raw.lower() in ("true", "1"):
            return 1
        if raw.lower() in ("false", "0"):
            return 0
        raise bad_field(f"filter[{name}]", "must be true or false")
    if kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise bad_field(f"filter[{name}]", "must be an integer") from None
        return check_int(f"filter[{name}]", value)
    return raw


def _parse_filter(resource: Resource, name: str, raw: str) -> Filter:
    if name not in resource.queryable:
        raise bad_field(f"filter[{name}]", f"{resource.name} cannot be filtered by this field")
    negate = raw.startswith("!")
    if negate:
        raw = raw[1:]
    if raw == "null":
        return Filter(name, "null", (), negate)
    for op in _OPS:
        if raw.startswith(op):
            value = _convert(resource, name, raw[len(op) :])
            return Filter(name, op, (value,), negate)
    values = tuple(_convert(resource, name, v) for v in raw.split(",")) if raw else ("",)
    return Filter(name, "=", values, negate)


def _names(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]


def _int(key: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw) if len(raw) <= 20 else None
    except ValueError:
        value = None
    if value is None:
        raise bad_field(key, "must be an integer")
    return check_int(key, value, low, high)


def parse_query(
    args: dict[str, list[bytes]] | dict[str, list[str]],
    resource: Resource,
    *,
    collection: bool = True,
) -> Query:
    """Parse tornado's query arguments; any key the route does not know is a 400."""
    query = Query()
    for key, values in args.items():
        raw = values[-1]
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise bad_field(key, "is not valid UTF-8") from None
        check_text(key, text, max_len=MAX_QUERY_VALUE, name=False)
        if key == "include":
            for rel in _names(text):
                if rel not in resource.relations:
                    raise bad_field("include", f"{resource.name} has no relation {rel!r}")
                query.include.append(rel)
        elif key == "fields":
            query.add_fields, query.only_fields = _parse_fields(resource, text)
        elif collection and (m := _FILTER_KEY.match(key)):
            query.filters.append(_parse_filter(resource, m.group(1), text))
        elif collection and (m := _PAGE_KEY.match(key)):
            if m.group(1) == "limit":
                query.limit = min(_int(key, text, 1, INT64[1]), MAX_LIMIT)
            else:
                query.offset = _int(key, text, 0, MAX_OFFSET)
        elif collection and key == "sort":
            for part in _names(text):
                desc = part.startswith("-")
                name = part.lstrip("-+")
                if name not in resource.queryable:
                    raise bad_field("sort", f"{resource.name} cannot be sorted by {name!r}")
                query.sort.append((name, desc))
        else:
            raise bad_field(key, "is not a query parameter this route accepts")
    return query


def _parse_fields(resource: Resource, text: str) -> tuple[list[str], list[str] | None]:
    add: list[str] = []
    only: list[str] = []
    for part in _names(text):
        name = part.lstrip("+-")
        if name not in resource.visible:
            raise bad_field("fields", f"{resource.name} has no field {name!r}")
        if part.startswith("+"):
            add.append(name)
        elif not part.startswith("-"):
            only.append(name)
    return add, (only or None)


def _like(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return text.replace("*", "%") + ("" if "*" in text else "%")


def where_clause(filters: list[Filter]) -> tuple[str, list[Any]]:
    """SQL for the filters (column names are checked against the resource before this)."""
    parts: list[str] = []
    params: list[Any] = []
    for f in filters:
        col = f'"{f.field}"'
        if f.op == "sql":  # the hub's own access scope (access.py), never from a request
            parts.append(f"({f.values[0]})")
            params.extend(f.values[1:])
            continue
        if f.op == "null":
            sql = f"{col} IS NULL"
        elif f.op == "~":
            sql = f"{col} LIKE ? ESCAPE '\\'"
            params.append(_like(f.values[0]))
        elif f.op == "=":
            if len(f.values) == 1:
                sql = f"{col} = ?"
            else:
                sql = f"{col} IN ({','.join('?' * len(f.values))})"
            params.extend(f.values)
        else:
            sql = f"{col} {f.op} ?"
            params.append(f.values[0])
        if f.negate:
            sql = f"NOT ({sql})" if f.op == "null" else f"({col} IS NULL OR NOT ({sql}))"
        parts.append(sql)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def order_clause(sort: list[tuple[str, bool]]) -> str:
    keys = [f'"{name}" {"DESC" if desc else "ASC"}' for name, desc in sort]
    return " ORDER BY " + ", ".join([*keys, "rowid ASC"])


def schema_of(resource: Resource) -> dict[str, Any]:
    """meta.schema: what the route accepts, as flame-hub-client requires on collections."""
    return {
        "name": resource.name,
        "filters": resource.queryable,
        "sort": resource.queryable,
        "relations": list(resource.relations),
        "fields": resource.visible,
        "pagination": {"maxLimit": MAX_LIMIT},
    }
