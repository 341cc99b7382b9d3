"""The node's ledger: its own approvals and run nonces, kept across restarts."""

from __future__ import annotations

import pytest

from flame_lab.errors import SandboxError
from flame_lab.sandbox.node.ledger import Ledger, NotApprovedHere, RunReplayed

H1, H2 = "a" * 64, "b" * 64


def test_a_bundle_without_a_record_is_not_approved(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with pytest.raises(NotApprovedHere, match="no record"):
        ledger.require_approved(H1)


def test_a_pending_or_rejected_bundle_is_not_approved(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.receive(H1, "an-1", "mean", "k" * 32)
    with pytest.raises(NotApprovedHere, match="pending"):
        ledger.require_approved(H1)
    ledger.receive(H2, "an-2", "mean", "k" * 32)
    ledger.decide(H2, False, "not this cohort", "node admin")
    with pytest.raises(NotApprovedHere, match=r"rejected at this node, not approved .not this"):
        ledger.require_approved(H2)


def test_a_decision_is_final_and_needs_a_received_bundle(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with pytest.raises(NotApprovedHere, match="never received"):
        ledger.decide(H1, True, "ok", "node admin")
    ledger.receive(H1, "an-1", "mean", "k" * 32)
    ledger.decide(H1, False, "no", "node admin")
    with pytest.raises(SandboxError, match="already rejected"):
        ledger.decide(H1, True, "yes after all", "node admin")
    assert not ledger.decision(H1).approved


def test_a_run_nonce_runs_once_even_after_a_restart(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).claim_run("nonce-1", "an-1", H1)
    again = Ledger(path)  # the node restarted
    with pytest.raises(RunReplayed, match=r"already ran at this node .in analysis an-1"):
        again.claim_run("nonce-1", "an-2", H1)
    assert again.ran("nonce-1") and not again.ran("nonce-2")


def test_approvals_survive_a_restart_and_keep_the_code_for_diffs(tmp_path):
    path = tmp_path / "ledger.sqlite"
    first = Ledger(path)
    first.receive(H1, "an-1", "mean", "k" * 32)
    first.decide(H1, True, "fine", "node admin", {"a.py": b"print(1)\n"})
    again = Ledger(path)
    assert again.require_approved(H1).decided_by == "node admin"
    decision, files = again.last_approved("mean", "k" * 32, other_than=H2)
    assert decision.bundle_hash == H1 and files == {"a.py": b"print(1)\n"}
    assert again.last_approved("mean", "k" * 32, other_than=H1) is None
    assert again.last_approved("mean", "x" * 32) is None
