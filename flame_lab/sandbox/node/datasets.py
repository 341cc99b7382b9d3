"""A node's data folder: the s3 objects and the FHIR store an analysis at that node can read.

Two layouts are understood (``sandbox up --node-data NAME=DIR``):

- **structured**, as ``synthetic.write`` makes it: ``fhir/`` holds FHIR ``.json`` (a Bundle or
  one resource) and ``.ndjson`` (bulk export) files, ``s3/`` holds objects of any kind, keyed
  by their path below ``s3/``; nothing else in the folder is read;
- **flat**, any other folder: ``.json``/``.ndjson`` files holding FHIR resources feed the FHIR
  store; every other file (CSV, other JSON, ...) is an s3 object keyed by its relative path.

Hidden files (``.name``) are skipped. Symlinks pointing outside the folder, special files,
unreadable files, malformed JSON and duplicate resource ids are refused, naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flame_lab.errors import NodeDataError
from flame_lab.sandbox.node.fhir import FhirStore
from flame_lab.sandbox.node.synthetic import SyntheticSite

FHIR_SUFFIXES = (".json", ".ndjson")
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}


@dataclass(frozen=True)
class TableInfo:
    """What a node may say about a table: its size and column names, never its values."""

    rows: int
    columns: list[str]


def _table_info(data: bytes, delimiter: str) -> TableInfo:
    reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")), delimiter=delimiter)
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    return TableInfo(max(0, len(rows) - 1), rows[0] if rows else [])


@dataclass
class NodeData:
    """Everything one node serves to analyses: s3 objects by key and a FHIR store."""

    s3: dict[str, bytes]
    fhir: FhirStore
    folder: Path | None = None
    tables: dict[str, TableInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tables:
            for name, data in self.s3.items():
                delimiter = TABLE_DELIMITERS.get(Path(name).suffix.lower())
                if delimiter:
                    self.tables[name] = _table_info(data, delimiter)

    def __repr__(self) -> str:
        return f"NodeData(folder={self.folder}, record_count={self.record_count})"

    @property
    def record_count(self) -> int:
        """Number of Patients; with no FHIR Patients, the rows of the largest table."""
        patients = self.fhir.counts().get("Patient", 0)
        if patients:
            return patients
        return max((info.rows for info in self.tables.values()), default=0)

    def summary(self) -> dict[str, Any]:
        """Counts per FHIR type, tables' rows and columns, other files' sizes: no values."""
        return {
            "record_count": self.record_count,
            "fhir": self.fhir.counts(),
            "tables": {
                name: {"rows": info.rows, "columns": list(info.columns)}
                for name, info in sorted(self.tables.items())
            },
            "files": {
                name: len(data) for name, data in sorted(self.s3.items()) if name not in self.tables
            },
        }

    def s3_objects(self, keys: str | list[str] | None = None) -> dict[str, bytes]:
        """The objects an s3 query asks for: all of them for None, else exactly those keys."""
        if keys is None:
            return dict(self.s3)
        wanted = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in wanted if k not in self.s3]
        if missing:
            available = sorted(self.s3)
            shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
            raise NodeDataError(
                f"This node has no s3 object named {', '.join(map(repr, missing))}",
                hint=f"Available: {shown or '(none)'}; pass None to get every object.",
            )
        return {k: self.s3[k] for k in wanted}

    @classmethod
    def from_site(cls, site: SyntheticSite) -> NodeData:
        """A node's data straight from a generated site, without a folder."""
        return cls(dict(site.tables), FhirStore(site.resources))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> NodeData:
        """Load a structured or flat data folder (see the module docstring)."""
        root = Path(folder)
        if not root.is_dir():
            raise NodeDataError(
                f"The node data folder {root} does not exist or is not a folder",
                hint="Pass an existing folder of CSV files and/or FHIR bundles.",
            )
        real_root = root.resolve()
        loader = _Loader(real_root)
        subfolders = [root / "fhir", root / "s3"]
        if any(p.is_dir() or p.is_symlink() for p in subfolders):
            for sub in subfolders:
                if sub.is_symlink():
                    _inside(sub, real_root)
                if sub.is_dir():
                    structured = "fhir" if sub.name == "fhir" else "s3"
                    for path, key in _walk(sub.resolve(), real_root):
                        loader.add(path, key, structured)
        else:
            for path, key in _walk(real_root, real_root):
                loader.add(path, key, None)
        if not loader.s3 and not loader.resources:
            raise NodeDataError(
                f"The node data folder {root} holds no data files",
                hint="Put CSV files and/or FHIR bundles (.json, .ndjson) in it.",
            )
        return cls(loader.s3, FhirStore(loader.resources), folder=real_root)


def _inside(path: Path, real_root: Path) -> Path:
    target = path.resolve()
    if not target.is_relative_to(real_root):
        raise NodeDataError(
            f"{path} is a symlink pointing outside the node data folder (to {target})",
            hint="Copy the file into the folder instead of linking to it.",
        )
    return target


def _walk(directory: Path, real_root: Path, prefix: str = "") -> list[tuple[Path, str]]:
    """(path, key) of every non-hidden file below ``directory``, in a stable order."""
    found: list[tuple[Path, str]] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise NodeDataError(f"Cannot list the folder {directory}: {exc.strerror}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        key = f"{prefix}{entry.name}"
        if entry.is_symlink():
            target = _inside(path, real_root)
            if target.is_dir():
                continue  # its files are reached through the real folder
        if entry.is_dir(follow_symlinks=False):
            found += _walk(path, real_root, f"{key}/")
        else:
            found.append((path, key))
    return found


def _read(path: Path) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise NodeDataError(
                f"{path} is not a regular file", hint="Remove it from the node data folder."
            )
        return path.read_bytes()
    except OSError as exc:
        raise NodeDataError(
            f"Cannot read {path}: {exc.strerror or exc}",
            hint="Check that the file exists and that the node may read it (permissions).",
        ) from None


def _parse_json(path: Path, text: str, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {line}" if line is not None else f"line {exc.lineno} column {exc.colno}"
        raise NodeDataError(
            f"{path} is not valid JSON ({where}: {exc.msg})",
            hint="Fix or remove the file; FHIR data must be JSON bundles or NDJSON.",
        ) from None


def _is_resource(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("resourceType"), str)


class _Loader:
    """Collects s3 objects and FHIR resources, refusing duplicates."""

    def __init__(self, real_root: Path) -> None:
        self.real_root = real_root
        self.s3: dict[str, bytes] = {}
        self.resources: list[dict[str, Any]] = []
        self._seen: dict[tuple[str, str], Path] = {}

    def add(self, path: Path, key: str, structured: str | None) -> None:
        data = _read(path)
        suffix = path.suffix.lower()
        if structured == "s3" or (structured is None and suffix not in FHIR_SUFFIXES):
            self.s3[key] = data
            return
        if suffix not in FHIR_SUFFIXES:
            raise NodeDataError(
                f"{path} is in fhir/ but is not a .json or .ndjson FHIR file",
                hint="Move other files to s3/, or remove them.",
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise NodeDataError(f"{path} is not UTF-8 text", hint="FHIR JSON is UTF-8.") from None
        if suffix == ".ndjson":
            lines = [(n, s) for n, s in enumerate(text.splitlines(), 1) if s.strip()]
            found = [_parse_json(path, s, n) for n, s in lines]
        else:
            found = [_parse_json(path, text)]
        resources = self._resources(path, found, structured)
        if resources is None:
            self.s3[key] = data  # a flat folder's non-FHIR JSON is an ordinary s3 object
            return
        for resource in resources:
            rid = resource.get("id")
            if isinstance(rid, str):
                ident = (resource["resourceType"], rid)
                if ident in self._seen:
                    raise NodeDataError(
                        f"{ident[0]}/{rid} is in {self._seen[ident]} and again in {path}",
                        hint="Each resource may appear once in a node's data folder.",
                    )
                self._seen[ident] = path
            self.resources.append(resource)

    def _resources(self, path: Path, found: list[Any], structured: str | None) -> list | None:
        out: list[dict[str, Any]] = []
        for item in found:
            if not _is_resource(item):
                if structured is None:
                    return None
                raise NodeDataError(
                    f"{path} holds JSON that is not a FHIR resource (no resourceType)",
                    hint="fhir/ takes FHIR Bundles, single resources or NDJSON of resources.",
                )
            if item["resourceType"] != "Bundle":
                out.append(item)
                continue
            for number, entry in enumerate(item.get("entry") or []):
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not _is_resource(resource):
                    raise NodeDataError(
                        f"{path}: Bundle entry {number} has no FHIR resource",
                        hint="Every Bundle entry needs a resource with a resourceType.",
                    )
                out.append(resource)
        return out
