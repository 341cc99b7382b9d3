"""The node agent's side of the release channel for one run: sealed analysis lines, the DP
charges to the researcher's budget (taken back if the release did not leave), a refusal that
stops the run, and the failure text the hub may read.

Kept out of the agent so that the agent only wires it in; the rules themselves are in
:mod:`flame_lab.release.channel`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flame_lab.errors import PolicyRefused
from flame_lab.release.ledger import BudgetCharge
from flame_lab.release.logs import AnalysisLog, SealContext, public_failure
from flame_lab.star.runtime import FinalSubmission

Sealer = Callable[[FinalSubmission], dict[str, str]]


class RunHooks:
    """The callbacks a NodeService gets from the agent for one run."""

    def __init__(
        self, agent: Any, analysis_id: str, manifest: Any, bundle_hash: str, folder: Path, stop: Any
    ) -> None:
        self.agent = agent
        self.analysis_id = analysis_id
        self.signer = manifest.signer
        self.run = stop
        self.pending: list[BudgetCharge] = []
        self._lock = threading.Lock()
        context = SealContext(
            analysis_id=analysis_id,
            node_id=agent.node_id,
            bundle_hash=bundle_hash,
            run_nonce=manifest.run_nonce,
            recipients=manifest.recipients,
            node=agent.identity,
        )
        self.analysis_log = AnalysisLog(
            context,
            lambda level, text: agent.node_log(analysis_id, level, text),
            mode=agent.policy.release.analysis_logs,
            keep=Path(folder) / "analysis.log",
        )

    def __repr__(self) -> str:
        return f"<RunHooks {self.analysis_id}>"

    def charge(self, epsilon: float) -> None:
        """Charge the epsilon this node used to the researcher who signed the code."""
        budget = self.agent.budget
        record = budget.charge(self.signer, epsilon, self.analysis_id)
        with self._lock:
            self.pending.append(record)
        self.agent.node_log(
            self.analysis_id,
            "notice",
            f"{self.agent.name}: charged epsilon {record.epsilon:g} to researcher "
            f"{self.signer}; {budget.remaining(self.signer):g} left",
        )

    def sealed(self, sealer: Sealer) -> Sealer:
        """The agent's sealer; if the result does not leave, its DP charge is taken back."""

        def seal(submission: FinalSubmission) -> dict[str, str]:
            try:
                return sealer(submission)
            except BaseException:
                with self._lock:
                    taken, self.pending = self.pending, []
                for record in taken:
                    self.agent.budget.refund(self.signer, record)
                raise

        return seal

    def refused(self, error: PolicyRefused) -> None:
        """A refusal ends the run at once (nothing more leaves), with the refusal as reason."""
        self.run.reason = f"PolicyRefused: {error.message}"
        self.run.stop.set()

    def finish(self) -> None:
        summary = self.analysis_log.summary()
        if summary is not None:
            self.agent.node_log(self.analysis_id, "notice", f"{self.agent.name}: {summary}")


__all__ = ["RunHooks", "public_failure"]
