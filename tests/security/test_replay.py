"""Replay guards: one blob per (analysis, node, sequence); the identical blob may come back."""

from __future__ import annotations

import stat

import pytest

from flame_lab.errors import EnvelopeError, ReplayedResult
from flame_lab.security.envelope import Expected, open_sealed, seal
from flame_lab.security.keys import Identity, NodeIdentity
from flame_lab.security.replay import MemoryReplayGuard, ResultKey, SqliteReplayGuard

KEY = ResultKey("analysis-1", "aggregator", 0)


@pytest.fixture(params=["memory", "sqlite"])
def guard(request, tmp_path):
    if request.param == "memory":
        return MemoryReplayGuard()
    return SqliteReplayGuard(tmp_path / "state" / "opened.sqlite")


def test_an_unknown_key_passes_the_check(guard):
    guard.check(KEY, "d1")


def test_the_same_digest_may_be_checked_and_recorded_again(guard):
    guard.record(KEY, "d1")
    guard.check(KEY, "d1")
    guard.record(KEY, "d1")


def test_a_different_digest_for_a_recorded_key_is_a_replay(guard):
    guard.record(KEY, "d1")
    with pytest.raises(ReplayedResult, match="sequence 0"):
        guard.check(KEY, "d2")
    with pytest.raises(ReplayedResult):
        guard.record(KEY, "d2")


def test_keys_differing_in_any_part_are_independent(guard):
    guard.record(KEY, "d1")
    for other in (
        ResultKey("analysis-2", "aggregator", 0),
        ResultKey("analysis-1", "site-b", 0),
        ResultKey("analysis-1", "aggregator", 1),
    ):
        guard.check(other, "d2")
        guard.record(other, "d2")


def test_the_first_recorded_digest_wins_a_race(guard):
    guard.check(KEY, "d1")
    guard.check(KEY, "d2")  # two openers both pass the check...
    guard.record(KEY, "d1")
    with pytest.raises(ReplayedResult):  # ...only the first one to record keeps the key
        guard.record(KEY, "d2")


def test_the_sqlite_guard_remembers_across_instances(tmp_path):
    path = tmp_path / "opened.sqlite"
    SqliteReplayGuard(path).record(KEY, "d1")
    later = SqliteReplayGuard(path)
    later.check(KEY, "d1")
    with pytest.raises(ReplayedResult):
        later.check(KEY, "d2")


def test_the_sqlite_file_is_private_to_its_owner(tmp_path):
    path = tmp_path / "new" / "opened.sqlite"
    SqliteReplayGuard(path).record(KEY, "d1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_unreadable_sqlite_file_is_an_envelope_error_with_a_hint(tmp_path):
    path = tmp_path / "opened.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(EnvelopeError, match="unusable") as info:
        SqliteReplayGuard(path).check(KEY, "d1")
    assert "move it aside" in info.value.hint


def test_a_reopened_kernel_can_open_the_same_blob_but_not_a_new_one(tmp_path):
    """The policy end to end, with a persistent guard standing in for a kernel restart."""
    alice, node = Identity.generate(), NodeIdentity.generate()

    def make(payload: bytes) -> bytes:
        return seal(
            payload,
            analysis_id="analysis-1",
            node_id="aggregator",
            bundle_hash="h" * 64,
            run_nonce="n",
            sequence=0,
            content_type="application/json",
            recipients=[alice.public],
            node=node,
        )

    def open_with(blob: bytes, guard):
        return open_sealed(
            blob,
            identity=alice,
            trusted_nodes={"aggregator": node.public},
            expected=Expected("analysis-1", "h" * 64, "n", frozenset({alice.key_id})),
            guard=guard,
        )

    path = tmp_path / "opened.sqlite"
    first, second = make(b"[1]"), make(b"[2]")
    assert open_with(first, SqliteReplayGuard(path)).payload == b"[1]"
    assert open_with(first, SqliteReplayGuard(path)).payload == b"[1]"
    with pytest.raises(ReplayedResult):
        open_with(second, SqliteReplayGuard(path))
