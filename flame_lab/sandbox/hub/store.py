"""The sandbox hub's memory: records in SQLite (WAL), file contents in a content-addressed folder.

Every write is committed before the hub answers, and blobs are fsync'd before their rows are
written, so that ``kill -9`` at any moment loses nothing that was acknowledged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from flame_lab.errors import SandboxError
from flame_lab.sandbox.hub.migrations import MIGRATIONS
from flame_lab.sandbox.hub.query import Query, order_clause, where_clause
from flame_lab.sandbox.hub.resources import RESOURCES, Resource
from flame_lab.sandbox.hub.wire import ApiError, new_id, now_iso

# ruff: noqa: S608
DB_NAME = "hub.sqlite3"
# SQL identifiers below come only from RESOURCES (checked by _columns), never from a request;
# every value travels as a bound parameter. Hence the S608 waivers.
_CHUNK = 1 << 16


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """One SQLite connection guarded by a lock (tornado calls it from one IO loop anyway)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.blobs = self.home / "blobs"
        self.builds = self.home / "builds"
        self.blobs.mkdir(exist_ok=True)
        self.builds.mkdir(exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.home / DB_NAME, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._depth = 0
        # told of every write: (resource, record, changed fields or None when created), and of
        # every delete before it happens: (resource, filter); the hub rings its bells from these
        self.on_write: Callable[[str, dict[str, Any], frozenset[str] | None], None] | None = None
        self.on_delete: Callable[[str, dict[str, Any]], None] | None = None
        migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes; nested uses join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- records -----------------------------------------------------------------------------
    @staticmethod
    def _columns(resource: Resource, names: Any) -> None:
        unknown = [n for n in names if n not in resource.fields]
        if unknown:
            raise ValueError(f"{resource.name} has no column {unknown}")

    @staticmethod
    def _to_record(resource: Resource, row: sqlite3.Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, kind in resource.fields.items():
            value = row[name]
            if value is not None and kind == "bool":
                value = bool(value)
            elif value is not None and kind == "json":
                value = json.loads(value)
            out[name] = value
        return out

    @staticmethod
    def _to_row(resource: Resource, record: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, value in record.items():
            kind = resource.fields[name]
            if value is not None and kind == "json":
                value = json.dumps(value, separators=(",", ":"))
            elif value is not None and kind == "bool":
                value = int(bool(value))
            row[name] = value
        return row

    def insert(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        resource = RESOURCES[name]
        stamp = now_iso()
        full = {f: None for f in resource.fields}
        full.update({"id": new_id(), "createdAt": stamp, "updatedAt": stamp})
        full.update(record)
        self._columns(resource, full)
        row = self._to_row(resource, full)
        cols = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        with self.transaction():
            self._db.execute(
                f"INSERT INTO {resource.table} ({cols}) VALUES ({marks})",
                list(row.values()),
            )
        if self.on_write is not None:
            self.on_write(name, full, None)
        return full

    def get(self, name: str, record_id: str | None) -> dict[str, Any] | None:
        if record_id is None:
            return None
        resource = RESOURCES[name]
        rows = self.execute(f'SELECT * FROM {resource.table} WHERE "id" = ?', (record_id,))
        return self._to_record(resource, rows[0]) if rows else None

    def require(self, name: str, record_id: str | None, what: str | None = None) -> dict[str, Any]:
        """The record, or a 404 naming what was missing."""
        record = self.get(name, record_id)
        if record is None:
            raise ApiError(404, f"{what or name} {record_id} does not exist")
        return record

    def find(self, name: str, query: Query) -> tuple[list[dict[str, Any]], int]:
        resource = RESOURCES[name]
        where, params = where_clause(query.filters)
        total = self.execute(f"SELECT COUNT(*) FROM {resource.table}{where}", params)[0][0]
        rows = self.execute(
            f"SELECT * FROM {resource.table}{where}{order_clause(query.sort)} LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        )
        return [self._to_record(resource, r) for r in rows], total

    def select(self, name: str, /, **equal: Any) -> list[dict[str, Any]]:
        """Every record whose fields equal the given values (internal use, unpaginated)."""
        resource = RESOURCES[name]
        self._columns(resource, equal)
        where = " AND ".join(f'"{k}" = ?' for k in equal)
        rows = self.execute(
            f"SELECT * FROM {resource.table}"
            + (f" WHERE {where}" if where else "")
            + " ORDER BY rowid",
            list(self._to_row(resource, equal).values()),
        )
        return [self._to_record(resource, r) for r in rows]

    def update(self, name: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        resource = RESOURCES[name]
        changes = {**changes, "updatedAt": now_iso()}
        row = self._to_row(resource, changes)
        sets = ", ".join(f'"{c}" = ?' for c in row)
        with self.transaction():
            self._db.execute(
                f'UPDATE {resource.table} SET {sets} WHERE "id" = ?',
                [*row.values(), record_id],
            )
        record = self.require(name, record_id)
        if self.on_write is not None:
            self.on_write(name, record, frozenset(changes))
        return record

    def delete(self, name: str, /, **equal: Any) -> int:
        resource = RESOURCES[name]
        self._columns(resource, equal)
        where = " AND ".join(f'"{k}" = ?' for k in equal)
        if self.on_delete is not None:
            self.on_delete(name, equal)
        with self.transaction():
            cur = self._db.execute(
                f"DELETE FROM {resource.table} WHERE {where}",
                list(equal.values()),
            )
        return cur.rowcount

    def next_seq(self, name: str) -> int:
        table = RESOURCES[name].table
        return int(self.execute(f'SELECT COALESCE(MAX("seq"), 0) + 1 FROM {table}')[0][0])

    # -- blobs -------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest

    def put_blob(self, source: IO[bytes]) -> tuple[str, int]:
        """Copy a stream into the blob folder; fsync'd and renamed into place before returning."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            final = self.blob_path(digest.hexdigest())
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return digest.hexdigest(), size


def migrate(db: sqlite3.Connection) -> int:
    """Bring a database up to the newest schema; refuse one written by a newer flame_lab."""
    db.execute('CREATE TABLE IF NOT EXISTS schema_version ("version" INTEGER NOT NULL)')
    rows = db.execute('SELECT "version" FROM schema_version').fetchall()
    current = rows[0][0] if rows else 0
    if current > len(MIGRATIONS):
        raise SandboxError(
            f"the sandbox database has schema version {current}; this flame_lab knows "
            f"only up to {len(MIGRATIONS)}",
            hint="Upgrade flame_lab, or `flame-lab sandbox reset` to start afresh.",
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute('INSERT INTO schema_version ("version") VALUES (?)', (version,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return len(MIGRATIONS)
