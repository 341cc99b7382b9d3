"""The agent's side of a run's release channel: DP charges taken back if nothing left."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from flame_lab.errors import FlameLabError, PolicyRefused
from flame_lab.privacy import NodePolicy
from flame_lab.release.ledger import PrivacyBudget
from flame_lab.release.node import RunHooks
from flame_lab.security.keys import Identity, NodeIdentity
from flame_lab.star.runtime import FinalSubmission, ReleasedResult


class Agent:
    def __init__(self, tmp_path) -> None:
        self.node_id, self.name = "node-1", "aggregator"
        self.identity = NodeIdentity.generate()
        self.policy = NodePolicy()
        self.budget = PrivacyBudget(tmp_path / "budget.json", 3.0)
        self.lines: list[tuple[str, str]] = []

    def node_log(self, analysis_id: str, level: str, text: str) -> None:
        self.lines.append((level, text))


@pytest.fixture
def hooks(tmp_path):
    manifest = SimpleNamespace(
        signer="alice", run_nonce="n", recipients=[Identity.generate().public]
    )
    run = SimpleNamespace(stop=threading.Event(), reason="")
    agent = Agent(tmp_path)
    return RunHooks(agent, "an-1", manifest, "b" * 64, tmp_path / "run", run), agent, run


def test_a_charge_whose_result_did_not_leave_is_refunded(hooks):
    hooks, agent, _ = hooks
    submission = FinalSubmission((ReleasedResult("1.0", "str"),))

    def failing_upload(_):
        hooks.charge(1.0)  # the channel charges before the agent seals and uploads
        raise FlameLabError("the hub refused the upload")

    with pytest.raises(FlameLabError):
        hooks.sealed(failing_upload)(submission)
    assert agent.budget.spent("alice") == 0.0
    hooks.charge(1.0)
    assert hooks.sealed(lambda _: {"status": "success"})(submission) == {"status": "success"}
    assert agent.budget.spent("alice") == 1.0
    assert any("charged epsilon 1" in text for _, text in agent.lines)


def test_a_refusal_stops_the_run_with_the_reason(hooks):
    hooks, _, run = hooks
    hooks.refused(PolicyRefused("node x refused to release a message: result (rule text)"))
    assert run.stop.is_set() and run.reason.startswith("PolicyRefused: node x refused")


def test_analysis_lines_go_to_the_hub_sealed_never_in_plaintext(hooks):
    hooks, agent, _ = hooks
    hooks.analysis_log.write("info", "patient 17 is 54")
    ((level, text),) = agent.lines
    assert level == "info" and text.startswith("flame-lab-sealed-log:") and "54" not in text
