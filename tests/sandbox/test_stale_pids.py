"""A stale pid file whose pid now belongs to another sandbox's process is not this sandbox's:
`down` and `up` never stop (nor count on) a stranger. Pids recycle fast (pid_max 32768)."""

from __future__ import annotations

import json
import subprocess
import sys
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
