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
    running_on,
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


def test_busy_nodes_heartbeats_keep_a_long_run_alive_and_a_dead_node_is_given_up_on(
    lab: Path, monkeypatch
) -> None:
    """Real agents beat (FLAME_LAB_HEARTBEAT made short): on a clock moved well past
    FLAME_LAB_NODE_SILENCE the silent run is waited for, as each look hears a new signed
    statement from each node; once uk-aachen's agent is killed its beats stop, and the next
    limit of silence fails the analysis naming it."""
    monkeypatch.setenv("FLAME_LAB_HEARTBEAT", "0.2")
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    fed = fl.connect(start=False)
    fed.clock = clock = ShiftedClock()
    run = fed.submit(draft("slow.py"))  # uk-aachen sleeps 120 s before it says anything
    wait_for(lambda: running_on("uk-aachen", run), "uk-aachen to run the analysis")
    ids = {n: i for i, n in run.record.nodes.items()}
    step = deadlines.DEFAULT_NODE_SILENCE / 2

    def heard_since(moved: float, *names: str):
        def check() -> bool:
            assert run.status().overall == "running"
            return all(run.record.watch[ids[n]].get("heard", 0) >= moved for n in names)

        return check

    for _ in range(3):  # one and a half limits of silence: the heartbeats are heard
        clock.offset += step
        wait_for(heard_since(clock.now(), "uk-aachen", "aggregator"), "a heartbeat of each")
    seqs = run.record.watch[ids["uk-aachen"]]["seen"]
    assert len(seqs) == 1 and next(iter(seqs.values())) >= 4  # one session, re-signed
    pid = daemon.agent_pid(folder(lab, "uk-aachen"))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    clock.offset += step
    wait_for(heard_since(clock.now(), "aggregator"), "a heartbeat of the aggregator")
    clock.offset += step + 1
    final = run.status()
    assert final.overall == "failed" and final.failure[0] == "uk-aachen", final.failure
    assert "uk-aachen fell silent while running the analysis" in final.failure[1]
    assert fed.core.get_analysis(run.id) is None  # deleted at the hub
