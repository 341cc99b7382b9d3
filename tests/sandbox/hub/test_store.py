"""The store: forward migrations, durable blobs, and records that round-trip their types."""

from __future__ import annotations

import io
import sqlite3

import pytest

from flame_lab.errors import SandboxError
from flame_lab.sandbox.hub.migrations import MIGRATIONS
from flame_lab.sandbox.hub.store import DB_NAME, Store, migrate


def test_a_fresh_store_is_at_the_newest_schema_in_wal_mode(tmp_path) -> None:
    store = Store(tmp_path)
    assert store.execute("SELECT version FROM schema_version")[0][0] == len(MIGRATIONS)
    assert store.execute("PRAGMA journal_mode")[0][0] == "wal"
    store.close()


def test_an_older_sandbox_is_migrated_forward_keeping_its_records(tmp_path) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    db.execute('CREATE TABLE schema_version ("version" INTEGER NOT NULL)')
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute("INSERT INTO realms (id, name, builtIn) VALUES ('r1', 'master', 1)")
    db.close()
    store = Store(tmp_path)
    assert store.execute("SELECT version FROM schema_version")[0][0] == len(MIGRATIONS)
    assert store.get("realms", "r1")["builtIn"] is True
    assert store.select("analysis-messages") == []  # the table version 2 added
    store.close()


def test_a_newer_sandbox_is_refused_with_a_hint(tmp_path) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    db.execute('CREATE TABLE schema_version ("version" INTEGER NOT NULL)')
    db.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS) + 1,))
    with pytest.raises(SandboxError) as err:
        migrate(db)
    assert "reset" in err.value.hint


def test_records_round_trip_bools_ints_and_json(tmp_path) -> None:
    store = Store(tmp_path)
    record = store.insert(
        "master-images",
        {
            "name": "base",
            "virtualPath": "python/base",
            "buildProgress": 100,
            "commandArguments": [{"value": "-u", "position": None}],
        },
    )
    again = store.get("master-images", record["id"])
    assert again["commandArguments"] == [{"value": "-u", "position": None}]
    assert again["buildProgress"] == 100 and again["createdAt"].endswith("Z")
    with pytest.raises(ValueError):
        store.select("master-images", colour="red")
    store.close()


def test_a_failed_transaction_leaves_nothing_behind(tmp_path) -> None:
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.transaction():
        store.insert("buckets", {"name": "half"})
        raise RuntimeError("crash mid-way")
    assert store.select("buckets") == []
    store.close()


def test_blobs_are_content_addressed(tmp_path) -> None:
    store = Store(tmp_path)
    digest, size = store.put_blob(io.BytesIO(b"hello"))
    assert size == 5 and store.blob_path(digest).read_bytes() == b"hello"
    assert store.put_blob(io.BytesIO(b"hello"))[0] == digest
    assert not list(store.blobs.glob(".incoming-*"))
    store.close()
