"""The FHIR search subset a sandbox node answers, as FLAME analyses phrase their queries.

Paging is FHIR-like: a page holds ``_count`` entries (default 50, as many as asked for, no
cap) and a ``next`` link points at the following page (``_offset``), just as a real node's
FHIR server makes an analysis ask for ``_count=N`` to see N resources at once. Every
parameter not listed in ``PARAMETERS`` is refused, never silently ignored.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flame_lab.errors import FhirQueryError

DEFAULT_COUNT = 50
#: Resource types always searchable (a store also searches any type its data holds).
KNOWN_TYPES = ("Patient", "Encounter", "Condition", "Observation")
_COMMON = ("_id", "_count", "_offset", "_summary")
_CLINICAL = ("code", "subject", "patient")
#: Search parameters per resource type; any other type gets the common and clinical ones.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "Patient": (*_COMMON, "gender"),
    "Encounter": (*_COMMON, "subject", "patient"),
    "Condition": (*_COMMON, *_CLINICAL),
    "Observation": (*_COMMON, *_CLINICAL),
}


def _parameters_for(kind: str) -> tuple[str, ...]:
    return PARAMETERS.get(kind, (*_COMMON, *_CLINICAL))


@dataclass(frozen=True)
class _Query:
    kind: str
    filters: list[tuple[str, list[str]]]
    count: int
    offset: int
    summary_count: bool
    raw: list[tuple[str, str]]


def _whole(name: str, text: str, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise FhirQueryError(
            f"{name}={text!r} is not a whole number >= {minimum}",
            hint=f"Write e.g. {name}=1000.",
        )
    return int(text)


def _reference_id(value: str) -> str:
    """``Patient/123``, ``123`` and ``http://x/fhir/Patient/123`` all name patient 123."""
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] != "Patient":
        raise FhirQueryError(
            f"subject={value!r} does not refer to a Patient",
            hint="Write subject=Patient/ID or subject=ID.",
        )
    return parts[-1]


def _token_matches(codings: list[dict[str, Any]], tokens: list[str]) -> bool:
    """FHIR token search: ``system|code``, ``code``, ``|code`` (no system), ``system|``."""
    for token in tokens:
        head, bar, tail = token.partition("|")
        system, code = (head, tail) if bar else (None, head)
        for coding in codings:
            if system is not None and coding.get("system", "") != system:
                continue
            if code and coding.get("code") != code:
                continue
            return True
    return False


def _codings(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    concept = resource.get("code")
    if not isinstance(concept, Mapping):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, Mapping)] if isinstance(codings, list) else []


def _subject_id(resource: Mapping[str, Any]) -> str | None:
    subject = resource.get("subject")
    if not isinstance(subject, Mapping) or not isinstance(subject.get("reference"), str):
        return None
    reference = subject["reference"]
    parts = reference.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" else None


class FhirStore:
    """Read-only FHIR resources of one node, searchable with ``search("Type?param=value")``."""

    def __init__(
        self,
        resources: Mapping[str, Iterable[Mapping[str, Any]]] | Iterable[Mapping[str, Any]],
        base_url: str = "http://localhost/fhir",
    ) -> None:
        items = (
            [r for group in resources.values() for r in group]
            if isinstance(resources, Mapping)
            else list(resources)
        )
        self.base_url = base_url.rstrip("/")
        self._by_type: dict[str, list[Mapping[str, Any]]] = {}
        for resource in items:
            kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
            if not isinstance(kind, str) or not kind:
                raise FhirQueryError(
                    "A resource without resourceType cannot be stored",
                    hint="Every FHIR resource needs a resourceType.",
                )
            self._by_type.setdefault(kind, []).append(resource)

    def __repr__(self) -> str:
        return f"FhirStore({self.counts()})"

    def by_type(self) -> dict[str, list[Mapping[str, Any]]]:
        """The resources grouped by type (for the node's own data description)."""
        return {kind: list(items) for kind, items in sorted(self._by_type.items())}

    def counts(self) -> dict[str, int]:
        """Number of resources per type (no values): what a node may show about its data."""
        return {kind: len(items) for kind, items in sorted(self._by_type.items())}

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*KNOWN_TYPES, *sorted(self._by_type)]))

    def _parse(self, query: str) -> _Query:
        if not isinstance(query, str) or not query.strip():
            raise FhirQueryError("An empty FHIR query", hint="Write e.g. 'Patient?_count=1000'.")
        path, _, params = query.strip().lstrip("/").partition("?")
        kind = path.rsplit("/", 1)[-1] if path.startswith(("http://", "https://")) else path
        if kind not in self.types:
            raise FhirQueryError(
                f"This node's FHIR store does not serve {kind!r}",
                hint=f"Search one of: {', '.join(self.types)}.",
            )
        allowed = _parameters_for(kind)
        raw = parse_qsl(params, keep_blank_values=True, strict_parsing=False)
        filters: list[tuple[str, list[str]]] = []
        count, offset, summary_count = DEFAULT_COUNT, 0, False
        for name, value in raw:
            if name not in allowed:
                raise FhirQueryError(
                    f"The search parameter {name!r} is not supported for {kind}",
                    hint=f"Supported for {kind}: {', '.join(allowed)}.",
                )
            if value == "":
                raise FhirQueryError(f"The search parameter {name!r} has no value")
            if name == "_count":
                count = _whole("_count", value, 0)
            elif name == "_offset":
                offset = _whole("_offset", value, 0)
            elif name == "_summary":
                if value != "count":
                    raise FhirQueryError(
                        f"_summary={value!r} is not supported",
                        hint="Only _summary=count (the total, no entries) is supported.",
                    )
                summary_count = True
            else:
                filters.append((name, [v.strip() for v in value.split(",") if v.strip()]))
        return _Query(kind, filters, count, offset, summary_count, raw)

    def _matches(self, resource: Mapping[str, Any], filters: list[tuple[str, list[str]]]) -> bool:
        for name, values in filters:  # repeated parameters AND, commas within one OR
            if name == "_id":
                ok = resource.get("id") in values
            elif name == "gender":
                ok = resource.get("gender") in values
            elif name == "code":
                ok = _token_matches(_codings(resource), values)
            else:  # subject / patient
                ok = _subject_id(resource) in {_reference_id(v) for v in values}
            if not ok:
                return False
        return True

    def _url(self, query: _Query, offset: int) -> str:
        params = [(k, v) for k, v in query.raw if k != "_offset"]
        if offset:
            params.append(("_offset", str(offset)))
        suffix = f"?{urlencode(params, safe='|,/:')}" if params else ""
        return f"{self.base_url}/{query.kind}{suffix}"

    def search(self, query: str) -> dict[str, Any]:
        """One searchset Bundle page: total, entries (copies), self and next links."""
        parsed = self._parse(query)
        matches = [
            r for r in self._by_type.get(parsed.kind, []) if self._matches(r, parsed.filters)
        ]
        result: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": self._url(parsed, parsed.offset)}],
        }
        if parsed.summary_count:
            return result
        page = matches[parsed.offset : parsed.offset + parsed.count]
        following = parsed.offset + parsed.count
        if parsed.count and following < len(matches):
            result["link"].append({"relation": "next", "url": self._url(parsed, following)})
        result["entry"] = [
            {
                "fullUrl": f"{self.base_url}/{parsed.kind}/{r.get('id', '')}",
                "resource": copy.deepcopy(r),
                "search": {"mode": "match"},
            }
            for r in page
        ]
        return result

    def search_all(self, query: str) -> dict[str, Any]:
        """Every match in one Bundle, following ``next`` links as a paging client would."""
        first = self.search(query)
        entries = list(first.get("entry", []))
        page = first
        while True:
            following = [link["url"] for link in page["link"] if link["relation"] == "next"]
            if not following:
                break
            page = self.search(following[0].removeprefix(self.base_url + "/"))
            entries += page.get("entry", [])
        first["link"] = first["link"][:1]
        if "entry" in first:
            first["entry"] = entries
        return first
