"""The launcher applies the limits and the run's uid, checks what holds, and fails closed;
bubblewrap's command line gives the run nothing of the host it does not need."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from flame_lab.sandbox.node import confine
from flame_lab.sandbox.node.confine import MARKER

IS_ROOT = os.geteuid() == 0
UID = 60999  # a uid no slot hands out in these tests


def _launch(tmp_path: Path, code: str, *options: str) -> subprocess.CompletedProcess:
    """The launcher without bubblewrap (the fallback), running ``code`` as the analysis."""
    tmp_path.chmod(0o755)
    entry = tmp_path / "entry.py"
    entry.write_text(code)
    entry.chmod(0o644)
    argv = [sys.executable, "-u", "-P", "-m", "flame_lab.sandbox.node.confine", "--uid", str(UID)]
    argv += [*options, "--expose", str(tmp_path), "--analysis", str(entry)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _report(proc: subprocess.CompletedProcess) -> dict:
    line = next(line for line in proc.stderr.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER) :])


def test_the_fallback_names_every_protection_that_is_off(tmp_path):
    proc = _launch(tmp_path, "print('hi')", "--cpu-seconds", "30", "--memory-mb", "1024")
    assert proc.returncode == 0 and proc.stdout == "hi\n", proc.stderr
    report = _report(proc)
    assert report["engine"] == "none"
    assert report["cpu_seconds"] == 30 and report["memory_mb"] == 1024
    off = " ".join(report["off"])
    assert "PID namespace" in off and "read-only root" in off and "/tmp" in off
    assert report["network_isolated"] is IS_ROOT and report["user_dropped"] is IS_ROOT
    if not IS_ROOT:
        assert "no network" in off and "a separate user" in off


def test_the_fallback_as_root_still_drops_the_user_and_the_network(tmp_path):
    code = (
        "import os, socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
        "    print(os.getuid(), 'reached')\n"
        "except OSError as e:\n"
        "    print(os.getuid(), 'errno', e.errno)\n"
    )
    proc = _launch(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    if IS_ROOT:  # ENETUNREACH: a fresh network namespace has only a loopback that is down
        assert proc.stdout.split() == [str(UID), "errno", "101"]
    else:
        assert proc.stdout.split()[0] == str(os.getuid())


def test_rlimits_stop_a_memory_and_a_cpu_hog(tmp_path):
    proc = _launch(tmp_path, "x = bytearray(512 * 1024 * 1024)", "--memory-mb", "256")
    assert proc.returncode != 0 and "MemoryError" in proc.stderr
    proc = _launch(tmp_path, "while True: pass", "--cpu-seconds", "1")
    assert proc.returncode == -signal.SIGXCPU


def test_the_in_bwrap_launcher_fails_closed_when_a_protection_does_not_hold(tmp_path):
    """Started outside bubblewrap, the launcher finds no PID namespace and the host's network,
    and refuses to run the analysis at all."""
    proc = _launch(tmp_path, "print('analysis ran')", "--in-bwrap")
    assert proc.returncode == 70
    assert "analysis ran" not in proc.stdout
    assert "confinement incomplete" in proc.stderr
    assert "own PID namespace" in _report(proc)["off"]


def test_bubblewrap_gets_a_minimal_read_only_root(tmp_path):
    code, work = tmp_path / "run" / "code", tmp_path / "run" / "work"
    argv = confine.bwrap_argv("/usr/bin/bwrap", code, work, 64 * 1024 * 1024)
    text = " ".join(argv)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent"):
        assert flag in argv
    assert "--unshare-user" not in argv  # a real uid per run, not root mapped in a namespace
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--bind" not in argv and "--dev-bind /dev " not in text  # nothing writable of the host
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    for path in binds:
        assert not path.startswith(("/home", "/srv", "/opt", "/var", "/etc", "/root/.ssh"))
    assert str(code.resolve()) in binds and str(work.resolve()) not in binds
    assert str(tmp_path) not in binds  # the run folder's neighbours are not there
    size = argv.index("--size")
    assert argv[size + 1] == str(64 * 1024 * 1024) and argv[size + 4 : size + 6] == [
        "--tmpfs",
        "/tmp",
    ]


def test_without_bubblewrap_the_node_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("FLAME_LAB_BWRAP", str(tmp_path / "no-such-bwrap"))
    why = confine.unavailable()
    assert why and ("bubblewrap" in why or "root" in why)
