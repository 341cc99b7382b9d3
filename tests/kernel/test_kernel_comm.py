"""In a real ipykernel, the monitor keeps sending widget updates while the kernel is idle."""

from __future__ import annotations

import re
import time
from queue import Empty

import pytest
from jupyter_client.manager import start_new_kernel

CODE = """
from types import SimpleNamespace
from IPython.display import display
from flame_lab.federation import AnalysisStatus, NodeState
from flame_lab.kernel.widgets import Monitor

class Climbing:
    '''An analysis that gains 5 % per poll until it is executed.'''
    id = "an-kernel"
    federation = SimpleNamespace(name="sandbox")
    record = SimpleNamespace(submitted_at="2026-11-28T01:00:00+00:00")
    polls = 0

    def status(self, advance=True):
        self.polls += 1
        progress = min(100, 5 * self.polls)
        state = "executed" if progress == 100 else "executing"
        node = NodeState("n1", "uk-aachen", "default", "approved", state, progress, None)
        overall = "executed" if progress == 100 else "running"
        return AnalysisStatus("an-kernel", "climb", overall, progress, (node,),
                              result_available=progress == 100)

    def logs(self, node=None, level=None, **_options):
        return []

monitor = Monitor(Climbing(), interval=0.05)
monitor.poll_once()
display(monitor)
monitor.start()
"""

BUSY_CELL = """
second = Monitor(Climbing(), interval=0.05)
second.poll_once()
display(second)
second.start()
second.join(timeout=60)  # this cell stays busy while the poller draws
assert second.view.done
"""


def bar_value(state: dict) -> int | None:
    """The progress a bar's update draws (its HTML holds <progress value="N">)."""
    found = re.search(r'<progress[^>]*value="(\d+)"', str(state.get("value", "")))
    return int(found.group(1)) if found else None


def updates_of(message: dict) -> dict | None:
    if message["msg_type"] != "comm_msg":
        return None
    data = message["content"]["data"]
    return data.get("state") if data.get("method") == "update" else None


@pytest.fixture
def kernel():
    manager, client = start_new_kernel(startup_timeout=120)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_the_monitor_keeps_sending_comm_updates_while_the_kernel_is_idle(kernel):
    msg_id = kernel.execute(CODE)
    reply = kernel.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]

    idle_seen = False
    bar_values_after_idle: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            message = kernel.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if (
            message["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
            and message["parent_header"].get("msg_id") == msg_id
        ):
            idle_seen = True
            continue
        state = updates_of(message)
        value = bar_value(state) if state else None
        if idle_seen and value is not None:
            bar_values_after_idle.append(value)
            if value == 100:
                break
    assert idle_seen, "the kernel never went idle"
    assert len(bar_values_after_idle) >= 3, bar_values_after_idle
    assert bar_values_after_idle == sorted(bar_values_after_idle)
    assert bar_values_after_idle[-1] == 100


def test_the_monitor_sends_updates_while_another_cell_is_running(kernel):
    kernel.execute(CODE)
    msg_id = kernel.execute(BUSY_CELL)
    values_while_busy: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            message = kernel.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if (
            message["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
            and message["parent_header"].get("msg_id") == msg_id
        ):
            break
        if message["msg_type"] == "error":
            pytest.fail(str(message["content"]))
        state = updates_of(message)
        value = bar_value(state) if state else None
        if value is not None:
            values_while_busy.append(value)
    assert values_while_busy.count(100) >= 1
    assert len(values_while_busy) >= 6, values_while_busy


SNAPSHOT_CELL = """
third = Monitor(Climbing(), interval=0.05)
third.poll_once()
third.handle = display(third, display_id=True)
third.start()
third.join(timeout=60)
assert third.view.done
"""


def test_the_display_gets_its_snapshot_again_at_state_transitions_only(kernel):
    kernel.execute(CODE.replace("monitor.start()", "monitor.stop()"))
    msg_id = kernel.execute(SNAPSHOT_CELL)
    shown: list[dict] = []
    comm_updates = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            message = kernel.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if message["msg_type"] == "error":
            pytest.fail(str(message["content"]))
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
        if message["msg_type"] in ("display_data", "update_display_data"):
            shown.append(message)
        elif updates_of(message) is not None:
            comm_updates += 1
    first, *updates = shown
    display_id = first["content"]["transient"]["display_id"]
    assert all(m["msg_type"] == "update_display_data" for m in updates)
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    *running, final = updates
    # while it runs: the widget and a snapshot of the state, redrawn per 10 % of progress
    assert running and all(
        "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        and "flame-snapshot" in m["content"]["data"]["text/html"]
        for m in running
    )
    assert len(running) <= 11 < comm_updates
    # at the end: static HTML only
    assert "application/vnd.jupyter.widget-view+json" not in final["content"]["data"]
    assert "flame-final-executed" in final["content"]["data"]["text/html"]
