"""Fault tests at named points of an upload: the hub is SIGKILLed while the researcher's code or
a node's sealed result is on its way, then restarted with the documented `flame-lab sandbox up`.

The hub freezes at the point (FLAME_LAB_HUB_FAULT, flame_lab.sandbox.hub.faults) and the test
kills it there, so "mid upload" is hit every time, never raced. After the restart: nothing the
hub acknowledged is lost, every analysis ends (executed, or failed naming the node and what
happened), a new analysis completes, and no process of a run outlives its agent's run.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import flame_lab as fl
from flame_lab.errors import AnalysisFailed, FlameLabError
from flame_lab.sandbox import daemon
from flame_lab.sandbox.hub import faults
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.node import watchdog
from tests.sandbox.test_agent_kill import _started
from tests.sandbox.test_daemon import cli
from tests.sandbox.test_recovery import (
    MEAN_AGE,
    PATIENCE,
    agent_state,
    draft,
    folder,
    hub_pid,
    lab,
    log_has,
    running_on,
    wait_for,
)

__all__ = ["lab"]  # the fixture, shared with the recovery tests

NODES = ("uk-aachen", "aggregator")


def kill_hub_at(home: Path, point: str) -> None:
    """Wait until the hub froze at ``point``, then SIGKILL it and wait until it is gone."""
    marker = home / faults.FOLDER / point.replace(":", "-")
    wait_for(marker.exists, f"the hub to reach {point}")
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not daemon.status(home)["running"], "the killed hub to be gone")


def restart(home: Path) -> None:
    """The documented recovery: `flame-lab sandbox up`."""
    assert cli("up", "--home", str(home)) == 0


def result_files(home: Path, analysis_id: str) -> list[dict]:
    """The rows of the analysis's RESULT bucket, read from the hub's own store."""
    store = Store(home)
    try:
        link = store.select("analysis-buckets", analysisId=analysis_id, type="RESULT")
        return store.select("bucket-files", bucketId=link[0]["bucketId"]) if link else []
    finally:
        store.close()


def no_run_processes(lab: Path) -> None:
    """Every agent is alive and nothing it started for a run is left."""
    for node in NODES:
        pid = daemon.agent_pid(folder(lab, node))
        assert pid is not None, f"{node}'s agent is gone"
        wait_for(lambda pid=pid: watchdog.tree(pid) == [pid], f"{node}'s runs to end")


class Waiting:
    """The researcher's ``wait()`` in a thread: it advances the analysis (build, distribution)
    and rides out the hub's death and restart, as a notebook's wait would."""

    def __init__(self, run: fl.Analysis) -> None:
        self.run = run
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        try:
            self.outcome = self.run.wait(timeout=PATIENCE)
        except Exception as exc:  # handed to the test, which asserts on it
            self.outcome = exc

    def result(self) -> Any:
        self.thread.join(PATIENCE + 30)
        assert not self.thread.is_alive(), "wait() did not return"
        return self.outcome


def finish_one(expected_n: int | None = None) -> fl.Analysis:
    """A new analysis completes: the federation works after the fault."""
    run = fl.connect().submit(draft(MEAN_AGE.name))
    assert run.wait(timeout=PATIENCE).overall == "executed"
    if expected_n is not None:
        assert run.result()["n"] == expected_n
    return run


def test_hub_killed_mid_code_upload_the_submission_resumes(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(faults.FAULT_VAR, "upload:CODE:receiving@2")  # the second submission
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    before = finish_one()  # acknowledged and finished before the fault
    n = before.result()["n"]
    # the researcher's own process submits (`flame-lab submit`); it gives up on the dead hub
    # after 2 s (FLAME_LAB_HUB_OUTAGE) and ends, leaving its submission for the next look
    submit = subprocess.Popen(
        [sys.executable, "-m", "flame_lab.cli", "submit", str(MEAN_AGE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "FLAME_LAB_HUB_OUTAGE": "2"},
    )
    kill_hub_at(home, "upload:CODE:receiving")
    out, _ = submit.communicate(timeout=PATIENCE)
    assert submit.returncode != 0, out
    assert "hub" in out and "Traceback" not in out, out  # one line naming the hub
    restart(home)
    fed = fl.connect()
    runs = fed.analyses()  # the next look resumes the interrupted submission
    assert len(runs) == 2
    (resumed,) = [r for r in runs if r.id != before.id]
    assert not resumed.record.pending
    status = resumed.wait(timeout=PATIENCE)
    assert status.overall == "executed"
    assert resumed.result()["n"] == n
    assert before.result()["n"] == n  # nothing acknowledged was lost
    no_run_processes(lab)
    finish_one(n)


@pytest.mark.parametrize("stage", ["stored", "committed"])
def test_hub_killed_mid_result_upload_the_retry_stores_it_once(
    lab: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """Killed with the blobs on disk but no rows (stored), or with the rows committed but the
    answer lost (committed): the node's retry after `up` stores the result exactly once."""
    point = f"upload:RESULT:{stage}"
    monkeypatch.setenv(faults.FAULT_VAR, point)
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    run = fl.connect().submit(draft(MEAN_AGE.name))
    waiting = Waiting(run)
    kill_hub_at(home, point)
    restart(home)
    assert getattr(waiting.result(), "overall", waiting.outcome) == "executed"
    files = result_files(home, run.id)
    assert [f["path"] for f in files] == ["result-000.flres"]  # one file, not two
    assert run.result()["n"] > 0
    assert agent_state(lab, "aggregator", run.id).get("reported") is True
    no_run_processes(lab)
    finish_one()


def test_a_result_sealed_while_the_hub_was_away_is_uploaded_when_it_is_back(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub stays away longer than the node waits (FLAME_LAB_HUB_OUTAGE): the aggregator
    keeps the sealed result and uploads it once the hub answers; no re-run, nothing doubled."""
    point = "upload:RESULT:stored"
    monkeypatch.setenv(faults.FAULT_VAR, point)
    monkeypatch.setenv("FLAME_LAB_HUB_OUTAGE", "1")  # the agents' calls give up at once
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    run = fl.connect().submit(draft(MEAN_AGE.name))
    waiting = Waiting(run)
    kill_hub_at(home, point)
    kept = wait_for(
        lambda: agent_state(lab, "aggregator", run.id).get("outbox"),
        "the aggregator to keep the sealed result",
    )
    assert sorted(kept) == ["result-000.flres"]
    wait_for(
        lambda: agent_state(lab, "aggregator", run.id).get("phase") == "executed",
        "the aggregator to finish its run",
    )
    waiting.result()  # gave up on the dead hub after 1 s, as the agents did
    restart(home)
    monkeypatch.delenv("FLAME_LAB_HUB_OUTAGE")
    try:
        status = run.wait(timeout=PATIENCE)
    except AnalysisFailed as exc:
        raise AssertionError(f"the run was lost: {exc}") from None
    assert status.overall == "executed"
    assert [f["path"] for f in result_files(home, run.id)] == ["result-000.flres"]
    assert run.result()["n"] > 0
    state = agent_state(lab, "aggregator", run.id)
    assert state.get("reported") is True and not state.get("outbox")
    lines = [ln.message for ln in run.logs(node="aggregator")]
    assert any("uploaded the sealed result late" in m for m in lines), lines
    no_run_processes(lab)
    finish_one()


# -- several kills with nine analyses in flight ------------------------------------------------
FINAL = ("executed", "failed", "rejected", "cancelled")


def stage_of(status: fl.AnalysisStatus) -> str:
    """Where an analysis stands, in the words this test reports."""
    if status.done:
        return status.overall
    data = next(n for n in status.nodes if n.name == "uk-aachen")
    if data.approval is None:
        return "awaiting approval"
    if any(n.execution in ("started", "executing") for n in status.nodes):
        return "running"
    return status.overall  # pending (being built), approved, running (distributed)


def look(runs: dict[str, fl.Analysis]) -> dict[str, str]:
    """Every analysis's stage; looking also does the researcher's steps (build, distribute)."""
    stages = {}
    for label, run in runs.items():
        try:
            stages[label] = stage_of(run.status())
        except FlameLabError:  # the hub is down or restarting
            stages[label] = "?"
    return stages


def awaiting_admin(run: fl.Analysis) -> bool:
    return any("waiting for the node admin" in ln.message for ln in run.logs(node="uk-aachen"))


def test_repeated_hub_kills_with_nine_analyses_in_flight(lab: Path) -> None:
    """Three SIGKILLs of the hub, each at an observed moment, with nine analyses at mixed
    stages (running, awaiting the node admin, approved, failing by themselves, rejected)."""
    from flame_lab.privacy import dump_policy, load_policy
    from flame_lab.sandbox.admin import decide

    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    policy = folder(lab, "uk-aachen").policy
    dump_policy(replace(load_policy(policy), approval="manual"), policy)  # held until decided
    fed = fl.connect()

    def submit(name: str, **change: str) -> fl.Analysis:
        run = fed.submit(draft(name, **change))
        wait_for(lambda: awaiting_admin(run), f"uk-aachen to ask its admin about {run.id}")
        return run

    def approve(run: fl.Analysis, yes: bool = True) -> None:
        decide(run.id, "uk-aachen", approve=yes, home=home)

    finished = submit(MEAN_AGE.name)  # acknowledged and done before any kill
    approve(finished)
    assert finished.wait(timeout=PATIENCE).overall == "executed"
    expected = finished.result()
    # the data node holds each of these runs a while (a count of 100: above min_records)
    hold = {"time.sleep(120)": "time.sleep(15)", "return 1": "return 100"}
    runs = {f"slow-{i}": submit("slow.py", **hold) for i in range(1, 5)}
    runs |= {f"waits-{i}": submit(MEAN_AGE.name) for i in range(1, 3)}
    runs["late"] = submit("slow.py", **hold)
    runs["broken"] = submit("broken.py")
    runs["rejected"] = submit(MEAN_AGE.name)
    for label in ("slow-1", "slow-2", "slow-3", "slow-4", "broken"):
        approve(runs[label])
    seen: list[dict[str, str]] = []

    def kill_and_restart() -> float:
        pid = hub_pid(lab)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not daemon.status(home)["running"], "the killed hub to be gone")
        started = time.monotonic()
        restart(home)
        return time.monotonic() - started

    # kill 1: four runs under way at the data node, the rest waiting for its admin
    seen.append(
        wait_for(
            lambda: (
                (s := look(runs)) and [s[f"slow-{i}"] for i in range(1, 5)] == ["running"] * 4 and s
            ),
            "four runs under way",
        )
    )
    restarts = [kill_and_restart()]
    # kill 2: just after the admin approved three more (their approval reached the hub)
    for label in ("waits-1", "waits-2", "late"):
        approve(runs[label])
    seen.append(
        wait_for(
            lambda: (
                (s := look(runs))
                and all(
                    s[k] not in ("?", "awaiting approval") for k in ("waits-1", "waits-2", "late")
                )
                and s
            ),
            "the approvals to reach the hub",
        )
    )
    restarts.append(kill_and_restart())
    # kill 3: just after the admin rejected one
    approve(runs["rejected"], yes=False)
    seen.append(
        wait_for(lambda: (s := look(runs)) and s["rejected"] == "rejected" and s, "the rejection")
    )
    restarts.append(kill_and_restart())
    back = time.monotonic()
    final = wait_for(
        lambda: (s := look(runs)) and all(v in FINAL for v in s.values()) and s,
        "every analysis to end",
    )
    recovery = time.monotonic() - back
    counts = {state: sorted(k for k, v in final.items() if v == state) for state in FINAL}
    print(f"\nstages at the kills: {seen}\nup took {restarts}; all final {recovery:.1f} s after")
    print(f"final: { {k: len(v) for k, v in counts.items()} }")
    assert len({stage for stages in seen for stage in stages.values()}) >= 3  # mixed stages
    assert counts["rejected"] == ["rejected"]
    assert counts["failed"] == ["broken"]  # its own bug, nothing the kills did
    reason = runs["broken"].status().failure
    assert reason is not None and reason[0] == "uk-aachen" and "KeyError" in reason[1]
    assert len(counts["executed"]) == 7
    for label in counts["executed"]:
        value = runs[label].result()
        assert value == (100 if label.startswith(("slow", "late")) else expected), label
    assert finished.result() == expected  # nothing acknowledged was lost
    no_run_processes(lab)
    again = submit(MEAN_AGE.name)  # a new analysis completes
    approve(again)
    assert again.wait(timeout=PATIENCE).overall == "executed"
    assert again.result() == expected


# -- the hub's disk fills during a run -----------------------------------------------------------
@pytest.fixture
def hub_disk(lab: Path) -> Iterator[Path]:
    """The sandbox with its hub on a 16 MiB tmpfs of its own, and the node folders on the
    machine's disk (bind-mounted): a hub and its hospitals do not share a disk. Needs root,
    as the confinement tests do."""
    home = lab / "sandbox"
    home.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(home)], check=True)
    (home / "nodes").mkdir()
    (lab / "node-disk").mkdir()
    subprocess.run(["mount", "--bind", str(lab / "node-disk"), str(home / "nodes")], check=True)
    try:
        yield home
    finally:
        daemon.down(home)
        subprocess.run(["umount", "-l", str(home / "nodes")], check=False)
        subprocess.run(["umount", "-l", str(home)], check=False)


def fill(folder: Path) -> Path:
    """Write until the file system has no page left; the filler file, to delete for room."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 16, 1 << 12, 1):  # down to the last byte of the last page
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_the_hub_disk_filling_during_a_run_fails_it_by_name_and_loses_nothing(
    lab: Path, hub_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = "upload:RESULT:receiving@2"  # the second analysis's result, as it arrives
    monkeypatch.setenv(faults.FAULT_VAR, point)
    home = hub_disk
    daemon.up(home, nodes=2)
    before = finish_one()  # acknowledged and done
    expected = before.result()
    run = fl.connect().submit(draft(MEAN_AGE.name))
    waiting = Waiting(run)
    marker = home / faults.FOLDER / "upload-RESULT-receiving"
    wait_for(marker.exists, "the aggregator's result upload to arrive")
    filler = fill(home)  # the hub's disk fills while the aggregator uploads the result
    marker.unlink()  # the hub goes on, on a full disk
    failed = wait_for(
        lambda: agent_state(lab, "aggregator", run.id).get("reason"),
        "the aggregator to end its run",
    )
    assert failed.startswith("aggregator: ") and "disk is full" in failed, failed
    assert list((home / "blobs").glob(".incoming-*")) == []  # nothing half-written
    assert not agent_state(lab, "aggregator", run.id).get("outbox")
    # the documented way out: room again, `flame-lab sandbox gc`, `flame-lab sandbox up`
    filler.unlink()
    assert cli("gc", "--home", str(home)) == 0
    restart(home)
    outcome = waiting.result()
    if not isinstance(outcome, AnalysisFailed):  # wait() gave up first, or saw it end
        with pytest.raises(AnalysisFailed) as caught:
            run.wait(timeout=PATIENCE)
        outcome = caught.value
    assert "aggregator" in str(outcome) and "disk is full" in str(outcome), str(outcome)
    assert run.status().failure[0] == "aggregator"
    assert result_files(home, run.id) == []  # no result, not a partial one
    assert before.result() == expected  # nothing acknowledged was lost
    no_run_processes(lab)
    finish_one(expected["n"])


@pytest.fixture
def node_disk(lab: Path) -> Iterator[Path]:
    """The node folders (state files, ledgers, run folders, logs) on a 16 MiB tmpfs."""
    nodes = lab / "sandbox" / "nodes"
    nodes.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(nodes)], check=True)
    try:
        yield nodes
    finally:
        daemon.down(lab / "sandbox")
        subprocess.run(["umount", "-l", str(nodes)], check=False)


def test_a_node_whose_own_disk_fills_during_a_run_keeps_serving(
    lab: Path, node_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregator cannot write its state file (nor its log) after sealing: it still tells
    the hub, the analysis ends executed, the agent lives on and writes its state once it can."""
    point = "upload:RESULT:receiving@2"
    monkeypatch.setenv(faults.FAULT_VAR, point)
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    before = finish_one()
    expected = before.result()
    agents = {node: daemon.agent_pid(folder(lab, node)) for node in NODES}
    run = fl.connect().submit(draft(MEAN_AGE.name))
    waiting = Waiting(run)
    marker = home / faults.FOLDER / "upload-RESULT-receiving"
    wait_for(marker.exists, "the aggregator's result upload to arrive")
    filler = fill(node_disk)  # the nodes' disk fills while the aggregator uploads its result
    marker.unlink()
    status = waiting.result()
    assert getattr(status, "overall", status) == "executed"
    assert run.result() == expected
    assert agent_state(lab, "aggregator", run.id).get("phase") != "executed"  # not written
    assert {node: daemon.agent_pid(folder(lab, node)) for node in NODES} == agents
    filler.unlink()  # room again: the state file catches up at the agent's next look
    wait_for(
        lambda: agent_state(lab, "aggregator", run.id).get("phase") == "executed",
        "the aggregator's state file to catch up",
    )
    assert log_has(lab, "aggregator", "its state file is written again")
    no_run_processes(lab)
    finish_one(expected["n"])


def kill_the_aggregator_mid_result_upload(lab: Path, analysis: str) -> tuple[fl.Analysis, Waiting]:
    """Submit ``analysis``; SIGKILL the aggregator's agent while the hub receives its sealed
    result (kept on its disk first), wait for the run's processes to die with it; the hub goes
    on (the upload's connection is gone)."""
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    run = fl.connect().submit(draft(analysis))
    waiting = Waiting(run)
    marker = home / faults.FOLDER / "upload-RESULT-receiving"
    wait_for(marker.exists, "the aggregator's result upload to arrive")
    agent = daemon.agent_pid(folder(lab, "aggregator"))
    assert agent is not None and agent_state(lab, "aggregator", run.id).get("outbox")
    run_tree = {pid: _started(pid) for pid in watchdog.tree(agent) if pid != agent}
    assert run_tree  # the analysis is still there, waiting for its upload's answer
    os.kill(agent, signal.SIGKILL)
    wait_for(
        lambda: not [pid for pid, t in run_tree.items() if _started(pid) == t],
        "the run's processes to die with their agent",
    )
    marker.unlink()
    return run, waiting


def test_an_agent_killed_mid_result_upload_uploads_its_sealed_result_and_never_reruns_it(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An iterative analysis (uk-aachen waits for the aggregator's next round or its 'analysis
    finished'): the aggregator's agent dies while the hub receives the sealed result. After
    `up` the restarted agent uploads the same bytes it kept (once at the hub), reports executed
    without running anything again, and uk-aachen, whose 'analysis finished' never came, ends
    its part as executed, saying why."""
    from flame_lab.sandbox.node.ledger import Ledger

    monkeypatch.setenv(faults.FAULT_VAR, "upload:RESULT:receiving")
    home = lab / "sandbox"
    run, waiting = kill_the_aggregator_mid_result_upload(lab, "logistic_regression.py")
    restart(home)
    outcome = waiting.result()
    assert not isinstance(outcome, Exception), outcome
    assert outcome.overall == "executed", outcome
    weights = run.result()  # the sealed result decrypts: the kept bytes reached the hub
    assert isinstance(weights, list) and len(weights) == 4
    assert [f["path"] for f in result_files(home, run.id)] == ["result-000.flres"]
    state = agent_state(lab, "aggregator", run.id)
    assert state["phase"] == "executed" and state["reported"] and not state.get("outbox")
    assert agent_state(lab, "uk-aachen", run.id)["phase"] == "executed"
    said = [ln.message for ln in run.logs(node="uk-aachen")]
    assert any("before its 'analysis finished' message reached this node" in m for m in said)
    said = [ln.message for ln in run.logs(node="aggregator")]
    assert any("restarted after the analysis had sealed its final result" in m for m in said)
    ledger = Ledger(folder(lab, "aggregator").ledger)
    assert ledger.ran(run.record.run_nonce)  # claimed once, by the lost run, never again
    assert sum("running logistic_regression.py" in m for m in said) == 1  # not re-run
    no_run_processes(lab)
    finish_one()


def test_an_agent_killed_mid_result_upload_with_its_kept_result_incomplete_fails_by_name(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the sealed result kept on the aggregator's disk is not whole (a file of
    it is gone): after `up` the run is failed naming the node, the restart and the missing
    file, not re-run (a node runs a nonce once), and nothing of it is uploaded again."""
    from flame_lab.sandbox.node.ledger import Ledger

    monkeypatch.setenv(faults.FAULT_VAR, "upload:RESULT:receiving")
    home = lab / "sandbox"
    run, waiting = kill_the_aggregator_mid_result_upload(lab, MEAN_AGE.name)
    kept = folder(lab, "aggregator").runs / run.id / "result" / "result-000.flres"
    kept.unlink()
    restart(home)
    outcome = waiting.result()
    assert isinstance(outcome, AnalysisFailed), outcome
    assert "node aggregator restarted while the analysis was running" in str(outcome)
    assert "incomplete (missing result-000.flres)" in str(outcome)
    assert run.status().failure[0] == "aggregator"
    # the body had arrived whole before the kill, so the hub may hold it: once, never a part
    assert [f["path"] for f in result_files(home, run.id)] in ([], ["result-000.flres"])
    state = agent_state(lab, "aggregator", run.id)
    assert state["phase"] == "failed" and not state.get("outbox")
    ledger = Ledger(folder(lab, "aggregator").ledger)
    assert ledger.ran(run.record.run_nonce)  # claimed once, by the lost run, never again
    no_run_processes(lab)
    finish_one()


def test_a_progress_report_the_hub_misses_neither_holds_nor_ends_the_run(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress is reported in one try: with the hub gone, uk-aachen's run goes on to its
    message, and what ends it is named (the outage while sending), not the analysis's error."""
    monkeypatch.setenv("FLAME_LAB_HUB_OUTAGE", "1")
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    then = {"time.sleep(120)": "time.sleep(5); self.flame.set_progress(50)", "return 1": "return 9"}
    run = fl.connect().submit(draft("slow.py", **then))
    wait_for(lambda: running_on("uk-aachen", run), "uk-aachen to run the analysis")
    os.kill(hub_pid(lab), signal.SIGKILL)  # while uk-aachen's analysis sleeps
    reason = wait_for(
        lambda: agent_state(lab, "uk-aachen", run.id).get("reason"), "uk-aachen to end its run"
    )
    assert log_has(lab, "uk-aachen", "progress 50% not reported")
    assert reason.startswith("uk-aachen: ") and "FLAME_LAB_HUB_OUTAGE=1 s" in reason, reason
    assert "send a message" in reason, reason
    restart(home)
    monkeypatch.delenv("FLAME_LAB_HUB_OUTAGE")
    with pytest.raises(AnalysisFailed, match="FLAME_LAB_HUB_OUTAGE=1 s"):  # either node's
        run.wait(timeout=PATIENCE)
    no_run_processes(lab)
    finish_one()
