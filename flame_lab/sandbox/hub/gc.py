"""Reclaim the disk a sandbox hub no longer needs: blobs no file or build refers to, builds of
deleted analyses, and temporary files an interrupted upload or build left behind.

File contents are stored once, by SHA-256 (store.put_blob), and a build is only a manifest
over those blobs, so a draft's code takes its size once however often it is built. A blob is
kept while a bucket file or a live analysis's build names it. Run inside the hub (after a
delete) nothing can interleave; run from another process (``flame-lab sandbox gc`` beside a
running hub) files younger than ``grace`` seconds are kept, as an upload writes its blob
just before the row that names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from flame_lab.sandbox.hub.resources import RESOURCES
from flame_lab.sandbox.hub.store import Store

# ruff: noqa: S608  (table names come from RESOURCES, never from a request)
OUT_OF_PROCESS_GRACE = 600.0  # seconds: an upload in flight writes its blob, then its row


@dataclass
class Reclaimed:
    """What one collection removed."""

    blobs: int = 0
    builds: int = 0
    temporary: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "blobs": self.blobs,
            "builds": self.builds,
            "temporary": self.temporary,
            "bytes": self.bytes,
        }


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _old(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime <= cutoff
    except FileNotFoundError:
        return False


def live_hashes(store: Store) -> set[str]:
    """Every blob a bucket file or the build of an existing analysis refers to."""
    files = RESOURCES["bucket-files"].table
    analyses = RESOURCES["analyses"].table
    keep = {row[0] for row in store.execute(f'SELECT DISTINCT "hash" FROM {files}') if row[0]}
    rows = store.execute(
        f'SELECT b."manifest" FROM builds b WHERE b."hash" IN '
        f'(SELECT "buildHash" FROM {analyses} WHERE "buildHash" IS NOT NULL)'
    )
    for (manifest,) in rows:
        keep.update(sha for _, sha, _ in json.loads(manifest))
    return keep


def collect(store: Store, *, grace: float = 0.0) -> Reclaimed:
    """Remove what nothing refers to; files changed within ``grace`` seconds stay."""
    done = Reclaimed()
    cutoff = time.time() - grace
    analyses = RESOURCES["analyses"].table
    with store.transaction():
        gone = store.execute(
            f'SELECT "hash" FROM builds WHERE "hash" NOT IN (SELECT "buildHash" FROM {analyses} '
            'WHERE "buildHash" IS NOT NULL)'
        )
        for (digest,) in gone:
            store.execute('DELETE FROM builds WHERE "hash" = ?', (digest,))
            done.builds += 1
        keep = live_hashes(store)
        for folder in sorted(store.blobs.iterdir()) if store.blobs.is_dir() else []:
            if folder.name.startswith(".incoming-"):  # an upload cut short (kill, full disk)
                if _old(folder, cutoff):
                    done.bytes += _size(folder)
                    folder.unlink(missing_ok=True)
                    done.temporary += 1
                continue
            if not folder.is_dir():
                continue
            for blob in folder.iterdir():
                if blob.name in keep or not _old(blob, cutoff):
                    continue
                done.bytes += _size(blob)
                blob.unlink(missing_ok=True)
                done.blobs += 1
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
    # builds/ held copies of each build's files before builds became manifests over blobs
    for entry in sorted(store.builds.iterdir()) if store.builds.is_dir() else []:
        if _old(entry, cutoff):
            done.bytes += _size(entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            if entry.name.startswith(".build-"):
                done.temporary += 1
            else:
                done.builds += 1
    return done


def compact(store: Store) -> bool:
    """Give the database's free pages back to the disk (VACUUM, then a truncated WAL); False
    if the hub held the database too busily to do it now."""
    import sqlite3

    try:
        store.execute("VACUUM")
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError:
        return False
    return True


def disk_usage(home: Path) -> int:
    """Bytes under a sandbox home (the hub's database, blobs and the nodes' folders)."""
    total = 0
    for root, _, names in os.walk(home):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
