"""A stale pid file whose pid now belongs to another sandbox's process is not this sandbox's:
`down` and `up` never stop (nor count on) a stranger. Pids recycle fast (pid_max 32768)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flame_lab.sandbox import daemon
from flame_lab.sandbox.node.layout import NodeFolder

# a process whose command line looks like a flame_lab agent or hub of some sandbox
SLEEPER = "import sys, time; time.sleep(120)"


@pytest.fixture
def stranger() -> Iterator[callable]:
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", SLEEPER, "flame_lab", *args])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def sandbox(tmp_path: Path) -> tuple[Path, NodeFolder]:
    home = tmp_path / "sandbox"
    folder = NodeFolder.of(home, "uk-aachen")
    folder.root.mkdir(parents=True)
    (home / daemon.INFO_FILE).write_text(json.dumps({"nodes": [{"name": "uk-aachen"}]}))
    return home, folder


def test_another_sandboxs_agent_is_not_this_nodes_agent(tmp_path: Path, stranger) -> None:
    home, folder = sandbox(tmp_path)
    other = stranger("--home", str(tmp_path / "elsewhere"), "--node", "uk-aachen")
    folder.pid.write_text(str(other.pid))  # stale: our agent died, its pid went to another's
    assert daemon.agent_pid(folder) is None
    daemon.down(home)
    assert other.poll() is None  # still running: not ours to stop
    ours = stranger("--home", str(home), "--node", "uk-aachen", "--url", "http://x")
    folder.pid.write_text(str(ours.pid))
    assert daemon.agent_pid(folder) == ours.pid
    twin = stranger("--home", str(home), "--node", "uk-koeln")  # our sandbox, another node
    folder.pid.write_text(str(twin.pid))
    assert daemon.agent_pid(folder) is None


def test_another_sandboxs_hub_is_not_stopped_by_down(tmp_path: Path, stranger) -> None:
    home, _ = sandbox(tmp_path)
    other = stranger("-m", daemon.HUB_MODULE, "--home", str(tmp_path / "elsewhere"))
    (home / daemon.PID_FILE).write_text(str(other.pid))
    assert daemon.down(home) is False
    assert other.poll() is None
    assert not (home / daemon.PID_FILE).exists()  # the stale file is gone


def test_a_process_caught_mid_exec_is_read_again_not_taken_for_dead(monkeypatch) -> None:
    """Right after a spawn, /proc/PID/cmdline can be empty for a moment (the exec has not set
    up the new arguments yet): `up` looked then and said the agent 'exited before it served
    the hub'. An empty command line of a live process is read again."""
    real = Path.read_bytes
    reads = {"cmdline": 0}

    def mid_exec(path: Path) -> bytes:
        if path.name == "cmdline":
            reads["cmdline"] += 1
            if reads["cmdline"] <= 3:
                return b""
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", mid_exec)
    assert daemon.command_line(os.getpid()) == real(Path(f"/proc/{os.getpid()}/cmdline")).decode(
        errors="replace"
    ).split("\0")
    assert reads["cmdline"] == 4


def test_a_zombie_has_no_command_line_and_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass", "flame_lab"])
    deadline = time.monotonic() + 60
    while _state(child.pid) != "Z":  # exited, not yet waited for
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    try:
        assert daemon.command_line(child.pid) is None
        assert not daemon._alive(child.pid)
    finally:
        child.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
