"""A real node agent, SIGKILLed mid-run, takes every process of its run with it (no orphans),
including a daemon the analysis started to outlive it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import flame_lab as fl
from flame_lab.sandbox import daemon
from flame_lab.sandbox.node import confine, slots, watchdog
from tests.sandbox.test_recovery import PATIENCE, draft, folder, lab, running_on, wait_for

__all__ = ["lab"]  # the fixture, shared with the recovery tests

DAEMON = (
    "        import os\n"
    "        if os.fork() == 0:\n"
    "            os.setsid()\n"
    "            if os.fork() == 0:\n"
    "                while True:\n"
    "                    time.sleep(0.1)\n"
    "            os._exit(0)\n"
    '        self.flame.flame_log("waiting", log_type="info")\n'
)


def _started(pid: int) -> int | None:
    """The process's start time (pid and start time name one process, even if pids recycle)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            line = next(ln for ln in fh if ln.startswith("Uid:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1])


def test_killing_a_real_agent_leaves_no_process_of_its_run(lab: Path) -> None:
    if confine.unavailable():
        return  # without bubblewrap the sandbox's fallback cannot promise this (it says so)
    daemon.up(lab / "sandbox", nodes=2)
    old = '        self.flame.flame_log("waiting", log_type="info")\n'
    run = fl.connect().submit(draft("slow.py", **{old: DAEMON}))
    wait_for(lambda: running_on("uk-aachen", run), "uk-aachen to run the analysis")
    agent = int(folder(lab, "uk-aachen").pid.read_text())
    run_tree = {pid: _started(pid) for pid in watchdog.tree(agent) if pid != agent}
    run_uids = {_uid(pid) for pid in run_tree} - {None, 0}
    assert len(run_uids) == 1 and min(run_uids) >= slots.FIRST_UID, (run_tree, run_uids)
    (uid,) = run_uids
    wait_for(lambda: len(slots.processes_of(uid)) == 2, "the analysis and its daemon")
    os.kill(agent, signal.SIGKILL)
    wait_for(lambda: not slots.processes_of(uid), "the run's processes to die", PATIENCE)
    # bubblewrap's own processes (root) too: none of the run's tree is left
    wait_for(
        lambda: not [pid for pid, t in run_tree.items() if _started(pid) == t],
        "bubblewrap's processes to die",
    )
