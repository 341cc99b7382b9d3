"""The node privacy budget ledger: charges per researcher, kept across restarts, never overspent."""

from __future__ import annotations

import json
import os
import threading

import pytest

from flame_lab.errors import DPParameterError, PolicyFileError, PolicyRefused
from flame_lab.release.ledger import PrivacyBudget


# -- privacy budget -------------------------------------------------------------------------
def test_charging_reduces_the_remaining_budget(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=3.0)
    assert budget.remaining("alice") == 3.0
    charge = budget.charge("alice", 1.0, "analysis-1")
    assert charge.analysis_id == "analysis-1" and charge.epsilon == 1.0 and charge.time
    assert budget.remaining("alice") == 2.0
    assert budget.remaining("bob") == 3.0  # budgets are per researcher


def test_a_charge_over_budget_is_refused_with_the_figures(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=1.0)
    budget.charge("alice", 0.75, "a1")
    with pytest.raises(PolicyRefused) as info:
        budget.charge("alice", 0.5, "a2")
    assert info.value.message == "budget exhausted: spent 0.75 of 1, this run asks 0.5"
    assert "0.25" in info.value.hint
    assert budget.remaining("alice") == 0.25  # the refused run was not charged
    assert [c.analysis_id for c in budget.charges("alice")] == ["a1"]


def test_the_budget_can_be_spent_exactly(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=1.0)
    for i in range(10):
        budget.charge("alice", 0.1, f"a{i}")
    assert budget.remaining("alice") == 0.0
    with pytest.raises(PolicyRefused, match="budget exhausted"):
        budget.charge("alice", 0.01, "a10")


def test_the_budget_persists_across_instances(tmp_path):
    path = tmp_path / "node" / "budget.json"
    PrivacyBudget(path, epsilon_per_researcher=5.0).charge("alice", 2.0, "a1")
    again = PrivacyBudget(path, epsilon_per_researcher=5.0)
    assert again.remaining("alice") == 3.0
    again.charge("alice", 1.0, "a2")
    assert [(c.analysis_id, c.epsilon) for c in again.charges("alice")] == [
        ("a1", 2.0),
        ("a2", 1.0),
    ]


def test_the_budget_file_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "budget.json"
    budget = PrivacyBudget(path, epsilon_per_researcher=5.0)
    budget.charge("alice", 1.0, "a1")
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        budget.charge("alice", 1.0, "a2")
    assert path.read_bytes() == before  # the old file is intact, not half-written
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_corrupt_budget_file_refuses_every_charge(tmp_path):
    path = tmp_path / "budget.json"
    path.write_text("{not json")
    budget = PrivacyBudget(path, epsilon_per_researcher=5.0)
    with pytest.raises(PolicyFileError, match=r"budget\.json"):
        budget.charge("alice", 1.0, "a1")
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(PolicyFileError, match="unknown format"):
        budget.remaining("alice")


def test_a_charge_needs_a_positive_epsilon(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=5.0)
    with pytest.raises(DPParameterError):
        budget.charge("alice", 0.0, "a1")


def test_a_charge_needs_a_researcher_id(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=5.0)
    with pytest.raises(DPParameterError, match="researcher_id"):
        budget.charge("", 1.0, "a1")


def test_concurrent_charges_never_overspend(tmp_path):
    path = tmp_path / "budget.json"
    outcomes: list[bool] = []

    def run(i: int) -> None:
        budget = PrivacyBudget(path, epsilon_per_researcher=1.0)  # one instance per "process"
        try:
            budget.charge("alice", 0.25, f"a{i}")
            outcomes.append(True)
        except PolicyRefused:
            outcomes.append(False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes.count(True) == 4 and outcomes.count(False) == 8
    assert PrivacyBudget(path, epsilon_per_researcher=1.0).remaining("alice") == 0.0


def test_a_refund_takes_back_exactly_one_charge(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=2.0)
    kept = budget.charge("alice", 0.5, "a1")
    taken = budget.charge("alice", 1.0, "a2")
    budget.refund("alice", taken)
    assert budget.charges("alice") == [kept]
    assert PrivacyBudget(tmp_path / "budget.json", 2.0).remaining("alice") == 1.5
