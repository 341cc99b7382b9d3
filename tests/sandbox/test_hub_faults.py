"""Fault tests at named points of an upload: the hub is SIGKILLed while the researcher's code or
a node's sealed result is on its way, then restarted with the documented `flame-lab sandbox up`.

The hub freezes at the point (FLAME_LAB_HUB_FAULT, flame_lab.sandbox.hub.faults) and the test
kills it there, so "mid upload" is hit every time, never raced. After the restart: nothing the
hub acknowledged is lost, every analysis ends (executed, or failed naming the node and what
happened), a new analysis completes, and no process of a run outlives its agent's run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import flame_lab as fl
from flame_lab.errors import AnalysisFailed
from flame_lab.sandbox import daemon
from flame_lab.sandbox.hub import faults
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.node import watchdog
from tests.sandbox.test_daemon import cli
from tests.sandbox.test_recovery import (
    MEAN_AGE,
    PATIENCE,
    agent_state,
    draft,
    folder,
    lab,
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
