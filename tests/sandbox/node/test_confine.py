"""An analysis runs without the node's network, user, keys, or unbounded resources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from flame_lab.sandbox.node.confine import MARKER

IS_ROOT = os.geteuid() == 0


def _confined(code: str, *options: str, cwd=None) -> subprocess.CompletedProcess:
    argv = [
        sys.executable,
        "-m",
        "flame_lab.sandbox.node.confine",
        *options,
        "--",
        sys.executable,
        "-I",
        "-c",
        code,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd)


def _report(proc: subprocess.CompletedProcess) -> dict:
    line = next(line for line in proc.stderr.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER) :])


def test_the_wrapper_reports_what_it_applied():
    proc = _confined("print('hi')", "--cpu-seconds", "30", "--memory-mb", "1024")
    assert proc.returncode == 0 and proc.stdout == "hi\n"
    report = _report(proc)
    assert report["cpu_seconds"] == 30 and report["memory_mb"] == 1024
    assert report["network_isolated"] is IS_ROOT
    assert report["user_dropped"] is IS_ROOT
    if not IS_ROOT:
        assert "not running as root" in report["notes"]


def test_the_analysis_has_no_network_when_run_as_root():
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
        "    print('reached')\n"
        "except OSError as e:\n"
        "    print('errno', e.errno)\n"
    )
    proc = _confined(code)
    if IS_ROOT:
        # ENETUNREACH: a fresh network namespace has only a loopback that is down
        assert proc.stdout.strip() == "errno 101"
    else:
        assert "network" in _report(proc)["notes"]


def test_the_analysis_cannot_read_a_file_only_the_node_may_read(tmp_path):
    secret = tmp_path / "identity.json"
    secret.write_text("private")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    code = f"open({str(secret)!r}).read(); print('read it')"
    proc = _confined(code)
    if IS_ROOT:
        assert proc.returncode != 0 and "PermissionError" in proc.stderr
        assert "read it" not in proc.stdout
    else:
        assert not _report(proc)["user_dropped"]


def test_a_memory_hog_hits_the_limit():
    proc = _confined("x = bytearray(512 * 1024 * 1024)", "--memory-mb", "256")
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


def test_a_cpu_hog_is_stopped_by_the_kernel():
    proc = _confined("while True: pass", "--cpu-seconds", "1")
    assert proc.returncode == -signal.SIGXCPU


def test_a_wrapper_without_a_command_refuses():
    proc = subprocess.run(
        [sys.executable, "-m", "flame_lab.sandbox.node.confine"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no command" in proc.stderr


@pytest.mark.parametrize("keep", [True])
def test_keep_user_leaves_the_user_unchanged(keep):
    proc = _confined("import os; print(os.geteuid())", "--keep-user")
    assert proc.stdout.strip() == str(os.geteuid())
    assert _report(proc)["user_dropped"] is False


def test_only_exposed_paths_of_a_private_folder_stay_visible(tmp_path):
    private = tmp_path / "home"
    (private / "run").mkdir(parents=True)
    (private / "keys.json").write_text("node secrets")
    (private / "keys.json").chmod(0o644)  # readable, but it must not even be visible
    private.chmod(0o700)
    run = private / "run"
    if IS_ROOT:
        os.chown(run, 65534, 65534)
    code = (
        "import os\n"
        f"open({str(run / 'out.txt')!r}, 'w').write('ok')\n"
        f"print(os.path.exists({str(private / 'keys.json')!r}))\n"
    )
    proc = _confined(code, "--expose", str(run))
    assert proc.returncode == 0, proc.stderr
    assert (run / "out.txt").read_text() == "ok"
    assert proc.stdout.strip() == ("False" if IS_ROOT else "True")


def test_an_analysis_runs_in_the_confined_interpreter_itself(tmp_path):
    entry = tmp_path / "entry.py"
    entry.write_text(
        "import os, socket, sys\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    network = 'reachable'\n"
        "except OSError:\n"
        "    network = 'unreachable'\n"
        "print(os.getuid(), network, sys.argv[0] == __file__, __name__)\n"
    )
    tmp_path.chmod(0o755)
    entry.chmod(0o644)
    argv = [sys.executable, "-u", "-P", "-m", "flame_lab.sandbox.node.confine"]
    argv += ["--expose", str(tmp_path), "--analysis", str(entry)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    uid, network, is_entry, name = proc.stdout.split()
    assert (is_entry, name) == ("True", "__main__")
    if IS_ROOT:
        assert (int(uid), network) == (65534, "unreachable")
    assert _report(proc)["user_dropped"] is IS_ROOT


def test_a_wrapper_takes_an_analysis_or_a_command_not_both(tmp_path):
    argv = [sys.executable, "-m", "flame_lab.sandbox.node.confine", "--analysis", "x.py"]
    proc = subprocess.run([*argv, "--", "/bin/true"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--analysis or a command" in proc.stderr
