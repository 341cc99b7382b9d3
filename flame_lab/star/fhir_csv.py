"""``FlameCoreSDK.fhir_to_csv``: pivot a FHIR searchset Bundle into a table, as FLAME's SDK does.

Observations become one cell per (row id, column id), read from dotted key paths into each
entry; QuestionnaireResponses one column per answered item, one row per response. Output is a
CSV text stream or the nested dict ``{column: {row: value}}``. Further pages (a ``next`` link)
are fetched through ``get_page`` when one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

from flame_lab.errors import StarError

RESOURCES = ("Observation", "QuestionnaireResponse")
Log = Callable[[str, str], None]


def find_value(node: Any, keys: list[str], log: Log, depth: int = 0) -> Any:
    """The value at the dotted path ``keys`` from ``depth`` on; in a list, the first hit."""
    if isinstance(node, list):
        for item in node:
            found = find_value(item, keys, log, depth)
            if found is not None:
                return found
        return None
    if not isinstance(node, dict):
        return None
    key = keys[depth]
    if depth < len(keys) - 1:
        return find_value(node[key], keys, log, depth + 1) if key in node else None
    if key in node:
        return node[key]
    # FHIR's choice types: 'value' stands for valueQuantity, valueString, ...
    for name in node:
        if key in name:
            return node[name]
    log(f"No field {key!r} at level {depth + 1} of the FHIR data.", "warn")
    return None


def _matches(value: Any, filters: list[str] | None) -> bool:
    return filters is None or (value is not None and any(f in str(value) for f in filters))


def fhir_to_csv(
    fhir_data: dict[str, Any],
    col_key_seq: str,
    value_key_seq: str,
    input_resource: str,
    row_key_seq: str | None = None,
    row_id_filters: list[str] | None = None,
    col_id_filters: list[str] | None = None,
    row_col_name: str = "",
    separator: str = ",",
    output_type: str = "file",
    *,
    log: Log = lambda _msg, _level: None,
    get_page: Callable[[str], dict[str, Any] | None] | None = None,
) -> StringIO | dict[Any, dict[Any, Any]]:
    """The Bundle as CSV text (``output_type='file'``) or ``{column: {row: value}}``."""
    if input_resource not in RESOURCES:
        raise StarError(
            f"fhir_to_csv does not know the resource {input_resource!r}.",
            hint=f"Use one of {', '.join(RESOURCES)}.",
        )
    if input_resource == "Observation" and not row_key_seq:
        raise StarError(
            "fhir_to_csv of Observations needs row_key_seq (e.g. 'subject.reference').",
            hint="Say which field names the row of each Observation.",
        )
    cols, values = col_key_seq.split("."), value_key_seq.split(".")
    if input_resource == "QuestionnaireResponse" and min(len(cols), len(values)) < 3:
        raise StarError(
            "fhir_to_csv of QuestionnaireResponses reads paths from each answered item: "
            f"{col_key_seq!r} and {value_key_seq!r} need three parts or more.",
            hint="Use e.g. col_key_seq='resource.item.linkId', "
            "value_key_seq='resource.item.answer.value'.",
        )
    rows = row_key_seq.split(".") if row_key_seq else []
    table: dict[Any, dict[Any, Any]] = {}
    bundle: dict[str, Any] | None = fhir_data
    while bundle is not None:
        for index, entry in enumerate(bundle.get("entry") or []):
            if input_resource == "Observation":
                col_id = find_value(entry, cols, log)
                row_id = find_value(entry, rows, log)
                value = find_value(entry, values, log)
                # As FLAME's SDK: row filters, when given, take the place of column filters.
                if row_id_filters is not None:
                    if not _matches(row_id, row_id_filters):
                        continue
                elif not _matches(col_id, col_id_filters):
                    continue
                table.setdefault(col_id, {})[row_id] = value
            else:
                for item in (entry.get("resource") or {}).get("item") or []:
                    col_id = find_value(item, cols, log, 2)
                    value = find_value(item, values, log, 2)
                    if not _matches(col_id, col_id_filters):
                        continue
                    table.setdefault(col_id, {})[str(index)] = value
        bundle = _next_page(bundle, get_page, log)
    if output_type == "dict":
        return table
    return _as_csv(table, row_col_name, separator)


def _next_page(
    bundle: dict[str, Any], get_page: Callable[[str], dict[str, Any] | None] | None, log: Log
) -> dict[str, Any] | None:
    if get_page is None:
        return None
    for link in bundle.get("link") or []:
        if str(link.get("relation")) == "next":
            query = str(link.get("url", "")).split("/fhir/")[-1]
            log(f"Reading the next page: {query}", "debug")
            return get_page(query)
    return None


def _as_csv(table: dict[Any, dict[Any, Any]], row_col_name: str, separator: str) -> StringIO:
    columns = list(table)
    row_ids = dict.fromkeys(row for column in table.values() for row in column)
    lines = [separator.join([row_col_name, *(str(c) for c in columns)])]
    for row in row_ids:
        cells = [str(table[c].get(row, "")) for c in columns]
        lines.append(separator.join([str(row), *cells]))
    out = StringIO("\n".join(lines))
    out.seek(0)
    return out
