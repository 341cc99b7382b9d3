"""The bound on a silent node against a real sandbox: the aggregator's agent is killed, the
analysis waits for it to start, and once FLAME_LAB_NODE_SILENCE has passed (on a clock the test
moves, not by waiting) the researcher's side fails it naming the aggregator, deletes it at the
hub, and the agent that `sandbox up` brings back never starts it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import flame_lab as fl
from flame_lab import deadlines
from flame_lab.sandbox import daemon
from tests.sandbox.test_recovery import (
    MEAN_AGE,
    PATIENCE,
    agent_state,
    draft,
    folder,
    lab,
    wait_for,
)

__all__ = ["lab"]  # the fixture: a private researcher home, its sandbox stopped at the end


class ShiftedClock:
    """The machine's clocks, with wall-clock time moved forward by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def test_a_node_that_never_comes_back_fails_the_analysis_and_never_runs_it(lab: Path) -> None:
    home = lab / "sandbox"
    daemon.up(home, nodes=2)  # uk-aachen and the aggregator
    pid = daemon.agent_pid(folder(lab, "aggregator"))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: daemon.agent_pid(folder(lab, "aggregator")) is None,
        "the aggregator's agent to be gone",
    )

    fed = fl.connect(start=False)
    fed.clock = clock = ShiftedClock()
    run = fed.submit(draft(MEAN_AGE.name))
    aggregator = next(i for i, n in run.record.nodes.items() if n == "aggregator")

    def waits_for_the_aggregator_to_start() -> bool:
        status = run.status()  # also the researcher's steps: build, distribution
        return run.record.watch.get(aggregator, {}).get("phase") == "start" and any(
            "aggregator" in why for why in status.waiting
        )

    wait_for(waits_for_the_aggregator_to_start, "uk-aachen to approve and the analysis to wait")
    clock.offset = deadlines.DEFAULT_NODE_SILENCE + 1
    final = run.status()
    assert final.overall == "failed"
    assert final.failure[0] == "aggregator"
    assert "aggregator did not start the analysis" in final.failure[1]
    assert fed.store.load(run.id).withdrawn
    assert fed.core.get_analysis(run.id) is None  # deleted at the hub

    daemon.up(home, nodes=2)  # the documented recovery brings the agent back
    new_pid = daemon.agent_pid(folder(lab, "aggregator"))
    assert new_pid is not None and new_pid != pid
    again = fl.connect(start=False).submit(draft(MEAN_AGE.name))
    assert again.wait(timeout=PATIENCE).overall == "executed"  # the aggregator works again
    assert agent_state(lab, "aggregator", run.id) == {}  # and it never touched the failed one
    assert fl.attach(run.id).status().overall == "failed"  # whatever the hub says now
