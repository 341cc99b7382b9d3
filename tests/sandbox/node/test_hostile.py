"""A hostile analysis, each harm tried for real: the run is stopped or contained, with a reason.

Each test runs the harm through ``run_analysis`` as a node would. Where this machine cannot
confine a run (no bubblewrap, not root), each asserts instead that the node refuses to run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from flame_lab.errors import SandboxError
from flame_lab.limits import ResourceLimits
from flame_lab.sandbox.node import confine, slots, watchdog
from flame_lab.sandbox.node.runner import RunOutcome
from tests.sandbox.node.test_runner import Run

CONFINED = not confine.unavailable()
BASE = ResourceLimits(cpu_seconds=20, memory_mib=1024, wall_seconds=60)
GONE_SECONDS = 15.0  # a bound for a broken teardown, never reached when things work
CONNECT = "from flame_lab.sandbox.node.runtime_client import connect_fd\n"
RUNTIME = "rt = connect_fd(__import__('os').environ['FLAME_LAB_RUNTIME'][3:])\n"


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def hostile(run: Run, code: str, **limits) -> RunOutcome | None:
    """The run's outcome; None (after checking the node refused) where it cannot confine."""
    chosen = ResourceLimits(**{**BASE.__dict__, **limits})
    if not CONFINED:
        with pytest.raises(SandboxError, match="refuses to run the analysis without"):
            run(textwrap.dedent(code), chosen)
        return None
    return run(textwrap.dedent(code), chosen)


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + GONE_SECONDS
    while time.monotonic() < deadline:
        if not [p for p in pids if _alive(p)]:
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_daemon_left_behind_dies_with_its_run(run):
    outcome = hostile(
        run,
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                open("/tmp/daemon-up", "w").close()
                while True:
                    time.sleep(0.1)
            os._exit(0)
        while not os.path.exists("/tmp/daemon-up"):
            time.sleep(0.01)
        print("uid", os.getuid())
        """,
    )
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    uid = outcome.confinement["uid"]
    assert run.printed() == [f"uid {uid}"]
    assert slots.processes_of(uid) == []  # nothing of the run is left when run_analysis returns


def test_a_hostile_run_cannot_signal_anything_outside_its_run(run):
    victim = subprocess.Popen(["sleep", "120"], user=slots.FIRST_UID + slots.SLOTS + 7)
    try:
        outcome = hostile(
            run,
            f"""
            import os, signal
            for target in (-1, {victim.pid}, {os.getpid()}):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
            print("visible pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
            """,
        )
        if outcome is None:
            return
        assert victim.poll() is None, "a process outside the run was killed"
        assert outcome.ok, outcome.failure  # kill(-1) reaches no one: the reaper is exempt
        assert max(eval(run.printed()[0].split(" ", 2)[2])) < 10  # noqa: S307
    finally:
        victim.kill()
        victim.wait()


def test_a_fork_bomb_is_held_to_the_process_limit_and_stopped(run):
    outcome = hostile(
        run,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        processes=12,
        cpu_seconds=3,
    )
    if outcome is None:
        return
    assert not outcome.ok
    assert "CPU time" in outcome.failure and "together" in outcome.failure
    assert 2 < outcome.peak_processes <= 12 + 2  # + bubblewrap's monitor and reaper
    assert slots.processes_of(outcome.confinement["uid"]) == []


def test_memory_spread_over_processes_counts_as_one_run(run):
    outcome = hostile(
        run,
        """
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                break
        hog = b"x" * (120 * 1024 * 1024)  # each process alone stays below the limit
        time.sleep(60)
        """,
        memory_mib=300,
    )
    if outcome is None:
        return
    assert outcome.memory_error and not outcome.timed_out
    assert "together" in outcome.failure and "300 MiB" in outcome.failure


def test_cpu_spread_over_processes_counts_as_one_run(run):
    outcome = hostile(
        run,
        """
        import os
        for _ in range(3):
            if os.fork() == 0:
                break
        while True:
            pass
        """,
        cpu_seconds=2,
    )
    if outcome is None:
        return
    assert outcome.signal != "SIGXCPU"  # no single process reached the limit: the total did
    assert "together" in outcome.failure and "2 s" in outcome.failure


def test_filling_tmp_shm_and_the_work_folder_stops_at_the_disk_limit(run):
    code = """
        import os
        written = 0
        for folder in ("/tmp", "/dev/shm", "/var/tmp", os.getcwd()):
            try:
                with open(os.path.join(folder, "fill-{marker}"), "ab") as fh:
                    for _ in range(64):
                        fh.write(b"x" * (1024 * 1024))
                        fh.flush()
                        written += 1024 * 1024
            except OSError as exc:
                print("stopped", exc.errno)
        print("written", written)
        print("found", sorted(os.listdir("/tmp")))
    """
    marker = f"{os.getpid()}-{time.monotonic_ns()}"
    outcome = hostile(run, code.replace("{marker}", marker), disk_mib=8)
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    printed = run.printed()
    assert "stopped 28" in printed  # ENOSPC
    written = int(next(line for line in printed if line.startswith("written")).split()[1])
    assert written <= 8 * 1024 * 1024
    for host in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not Path(host, f"fill-{marker}").exists()  # nothing reached the host
    run.output.clear()
    again = run(
        "import os\n"
        "print([f for _, _, files in os.walk('/tmp') for f in files if f.startswith('fill-')])\n",
        BASE,
    )
    assert again.ok and run.printed() == ["[]"]  # the next run starts empty


def test_open_files_of_all_processes_together_stay_within_the_limit(run):
    outcome = hostile(
        run,
        """
        import os
        child = False
        for _ in range(3):
            if os.fork() == 0:
                child = True
                break
        opened = 0
        try:
            while True:
                os.open("/dev/null", os.O_RDONLY)
                opened += 1
        except OSError as exc:  # one write per line: four processes share the pipe
            os.write(1, f"opened {opened} {exc.errno}\\n".encode())
        if child:
            os._exit(0)
        for _ in range(3):
            os.wait()
        """,
        open_files=64,
        processes=8,
    )
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    counts = [int(line.split()[1]) for line in run.printed() if line.startswith("opened")]
    assert len(counts) == 4 and all(line.endswith(" 24") for line in run.printed())  # EMFILE
    assert max(counts) < 64 // 8  # per process: open_files / processes, minus its own


@pytest.fixture
def listener():
    """A TCP server on the host's loopback that counts connections."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_the_network_is_out_of_reach_even_the_hosts_loopback(run, listener):
    port, accepted = listener
    outcome = hostile(
        run,
        f"""
        import socket
        for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 53), ("::1", {port})):
            try:
                socket.create_connection((host, port), timeout=2).close()
                print("reached", host)
            except OSError as exc:
                print("refused", host, exc.errno)
        """,
    )
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    assert not any(line.startswith("reached") for line in run.printed())
    assert accepted == []


@pytest.fixture
def other_node():
    """Another node's rows and key in a folder every user may read (as a provisioning folder
    can be)."""
    folder = Path(tempfile.mkdtemp(prefix="flame-lab-other-node-"))
    folder.chmod(0o755)
    (folder / "rows.csv").write_text("patient,age\nalice,44\n")
    (folder / "identity.json").write_text("NODE-PRIVATE-KEY")
    for path in folder.iterdir():
        path.chmod(0o644)
    yield folder
    shutil.rmtree(folder)


def test_host_folders_other_nodes_and_keys_are_not_even_visible(run, other_node):
    paths = [
        other_node / "rows.csv",
        other_node / "identity.json",
        Path("/etc/passwd"),
        Path("/etc/shadow"),
        Path("/home"),
        Path("/srv"),
        Path("/opt"),
        Path("/root/.ssh"),
        Path("/var/lib"),
        Path(sys.prefix) / "pyvenv.cfg",  # the one thing here it may read
    ]
    outcome = hostile(
        run,
        f"""
        import os
        for path in {[str(p) for p in paths]!r}:
            print(path, os.path.exists(path))
        print("proc", len([p for p in os.listdir("/proc") if p.isdigit()]))
        try:
            open("/usr/lib/flame-lab-probe", "w")
        except OSError as exc:
            print("usr", exc.errno)
        """,
    )
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    seen = dict(line.rsplit(" ", 1) for line in run.printed()[: len(paths)])
    assert seen.pop(str(paths[-1])) == "True"
    assert set(seen.values()) == {"False"}, seen
    assert int(run.printed()[len(paths)].split()[1]) < 10  # only the run's own processes
    assert run.printed()[-1] in ("usr 30", "usr 13")  # read-only file system (or no access)


def test_a_frame_larger_than_the_bound_stops_the_run_before_it_is_read(run):
    outcome = hostile(
        run,
        """
        import os, socket, struct, time
        fd = int(os.environ["FLAME_LAB_RUNTIME"][3:])
        sock = socket.socket(fileno=fd)
        sock.sendall(struct.pack(">I", 2**31) + b"{")  # announces 2 GiB, sends one byte
        time.sleep(60)
        """,
        max_frame_bytes=1024 * 1024,
    )
    if outcome is None:
        return
    assert not outcome.ok and not outcome.timed_out
    assert "2147483648 bytes" in outcome.failure
    assert "max_frame_bytes" in outcome.failure


def test_a_real_call_above_the_frame_bound_is_refused(run):
    outcome = hostile(
        run,
        CONNECT
        + RUNTIME
        + """
rt.flame_log("x" * (3 * 1024 * 1024), "info")
""",
        max_frame_bytes=1024 * 1024,
    )
    if outcome is None:
        return
    assert not outcome.ok and "max_frame_bytes" in outcome.failure
    assert run.logs == []


def test_a_log_flood_is_cut_to_the_runs_budget(run):
    outcome = hostile(
        run,
        CONNECT
        + RUNTIME
        + """
import sys
print("y" * 200_000)
for i in range(50_000):
    print("flood line", i)
for i in range(1000):
    rt.flame_log("flood row %d" % i, "info")
""",
        max_log_bytes=64 * 1024,
        max_log_line_bytes=1024,
    )
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    forwarded = [line for _, line in run.output] + [text for _, text in run.logs]
    notices = [line for line in forwarded if "max_log_bytes" in line]
    assert len(notices) == 1
    assert sum(len(line) + 1 for line in forwarded) <= 64 * 1024 + len(notices[0]) + 1
    assert "bytes cut" in run.output[0][1] or "more bytes" in run.output[0][1]
    assert len(run.output[0][1]) < 2 * 1024


def test_messages_per_run_and_their_size_are_bounded(run):
    outcome = hostile(
        run,
        CONNECT
        + RUNTIME
        + """
for size in (10, 10, 200_000, 10, 10):
    try:
        rt.send_message(["agg"], "round", {"n": 30, "pad": "p" * size})
        print("sent", size)
    except Exception as exc:
        print("refused", size, type(exc).__name__, str(exc).splitlines()[0])
""",
        max_messages=3,
        max_message_bytes=100_000,
    )
    if outcome is None:
        return
    assert outcome.ok, outcome.failure
    printed = run.printed()
    assert printed[:2] == ["sent 10", "sent 10"]
    assert printed[2].startswith("refused 200000 StarError") and "max_message_bytes" in printed[2]
    assert printed[3] == "sent 10"
    assert printed[4].startswith("refused 10 StarError") and "max_messages" in printed[4]
    received = 0
    while run.aggregator.receive(timeout=0.5) is not None:
        received += 1
    assert received == 3


AGENT = """
import sys
from pathlib import Path
from flame_lab.limits import ResourceLimits
from tests.sandbox.node.test_runner import Run

run = Run(Path(sys.argv[1]))
code = '''
import os, time
if os.fork() == 0:
    os.setsid()
    while True:
        time.sleep(0.1)
print("running as", os.getuid(), flush=True)
while True:
    time.sleep(0.1)
'''
def show(stream, line):
    print(line, flush=True)
(run.code / "entry.py").write_text(code)
from flame_lab.sandbox.node.runner import RunSpec, run_analysis
spec = RunSpec(run.code, "entry.py", run.tmp / "work", ResourceLimits(wall_seconds=120))
run_analysis(spec, run.service, show)
"""


def test_killing_the_agent_kills_its_run_and_every_process_of_it(tmp_path):
    if not CONFINED:
        return  # the refusal without confinement is covered above
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    root = Path(__file__).resolve().parents[3]
    agent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert agent.stdout is not None
        line = agent.stdout.readline()
        assert line.startswith("running as"), line
        uid = int(line.split()[2])
        run_tree = [p for p in watchdog.tree(agent.pid) if p != agent.pid]
        assert len(run_tree) >= 3 and len(slots.processes_of(uid)) == 2
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        assert _gone(run_tree), "processes of the run outlived the agent"
        assert slots.processes_of(uid) == []
    finally:
        agent.kill()
        agent.wait()


def test_a_new_agent_reaps_what_a_killed_one_left_under_a_slots_uid():
    spare = range(slots.FIRST_UID + slots.SLOTS + 20, slots.FIRST_UID + slots.SLOTS + 30)
    first = slots.acquire(spare)
    leftover = subprocess.Popen(["sleep", "120"], user=first.uid)
    try:
        os.close(first.fd)  # the agent died without cleaning up: the lock is free, the uid not
        again = slots.acquire(range(first.uid, first.uid + 1))
        try:
            assert again.uid == first.uid
            assert leftover.wait(timeout=GONE_SECONDS) == -signal.SIGKILL
        finally:
            again.release()
    finally:
        leftover.kill()
        leftover.wait()


def test_a_starting_agent_reaps_what_runs_under_a_slot_nobody_holds():
    if os.geteuid() != 0:
        return  # slots are a root node's; without root there is no uid to reap
    spare = range(slots.FIRST_UID + slots.SLOTS + 40, slots.FIRST_UID + slots.SLOTS + 50)
    held = slots.acquire(spare)
    leftover = subprocess.Popen(["sleep", "120"], user=held.uid)
    try:
        os.close(held.fd)  # its agent was killed: the lock is free, the process is not
        slots.reap_unheld()
        assert leftover.wait(timeout=GONE_SECONDS) == -signal.SIGKILL
    finally:
        leftover.kill()
        leftover.wait()


def _fake_bwrap(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-bwrap"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_a_bubblewrap_that_confines_nothing_is_caught_before_the_analysis_runs(
    run, tmp_path, monkeypatch
):
    if os.geteuid() != 0:
        return  # without root the node refuses before it looks for bubblewrap
    # drops every bubblewrap option and runs the launcher on the bare host
    fake = _fake_bwrap(tmp_path, 'while [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    monkeypatch.setenv("FLAME_LAB_BWRAP", fake)
    outcome = run("print('analysis ran')\n", BASE)
    assert not outcome.ok and run.printed() == []
    assert "did not hold" in outcome.failure and "own PID namespace" in outcome.failure


def test_a_bubblewrap_that_cannot_work_here_makes_the_node_refuse(run, tmp_path, monkeypatch):
    """As in a container that forbids namespaces: the node's probe finds out before a run."""
    if os.geteuid() != 0:
        return
    fake = _fake_bwrap(tmp_path, "echo 'bwrap: Creating new namespace failed' >&2\nexit 1\n")
    monkeypatch.setenv("FLAME_LAB_BWRAP", fake)
    with pytest.raises(SandboxError, match="Creating new namespace failed") as info:
        run("print('analysis ran')\n", BASE)
    assert "refuses to run the analysis without confinement" in info.value.message
    assert run.printed() == []
