"""Run one verified analysis in a confined subprocess and serve its runtime calls.

:func:`run_analysis` starts ``python -m flame_lab.sandbox.node.confine --analysis entry.py``
(confined, then bootstrapped in the same interpreter) with a clean environment and one
inherited socket, answers the analysis's calls with a
:class:`~flame_lab.sandbox.node.service.NodeService`, streams its output lines, enforces the
wall-clock limit and says plainly why a run failed (the analysis's own traceback, or the limit
it hit).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flame_lab.errors import SandboxError
from flame_lab.limits import ResourceLimits
from flame_lab.sandbox.node import confine, slots, watchdog
from flame_lab.sandbox.node.bounds import RunBounds
from flame_lab.sandbox.node.confine import MARKER, NOBODY
from flame_lab.sandbox.node.ipc import Channel, ChannelClosed, serve
from flame_lab.sandbox.node.service import NodeService
from flame_lab.star.compat import COMPAT_DIR
from flame_lab.star.runtime import RUNTIME_ENV

log = logging.getLogger(__name__)
OnOutput = Callable[[str, str], None]
KEPT_STDERR_LINES = 500  # for the analysis's own traceback
MAX_KEPT_LINE = 4096  # of a line kept for the traceback once the log budget is spent
WATCH_SECONDS = 0.1  # between looks at the run's totals
_FRAME = re.compile(r'^  File "(?P<path>.+)", line \d+, in ')
_MEMORY_ERRORS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc")


@dataclass(frozen=True)
class RunSpec:
    """One run: the verified code folder and entrypoint, a fresh private folder, the limits."""

    code_dir: Path
    entrypoint: str
    work_dir: Path
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    # a master image's stand-in (flame_lab.images.environments): its Python and its root
    interpreter: Path | None = None

    @property
    def entry_path(self) -> Path:
        return Path(self.code_dir) / self.entrypoint


@dataclass
class RunOutcome:
    """How a run ended, in terms an agent can report to the hub and the researcher."""

    returncode: int | None
    timed_out: bool = False
    signal: str | None = None
    memory_error: bool = False
    confinement: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    refusal: str | None = None
    stopped: bool = False
    peak_processes: int = 0

    @property
    def ok(self) -> bool:
        """The analysis ended by itself with status 0 and the node refused nothing."""
        return (
            self.returncode == 0 and not (self.timed_out or self.stopped) and self.failure is None
        )


def clean_environment(work_dir: Path, channel_fd: int) -> dict[str, str]:
    """The analysis's whole environment: nothing of the agent's (tokens, FLAME_LAB_*) leaks."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work_dir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        RUNTIME_ENV: f"fd:{channel_fd}",
    }
    if _needs_compat():
        env["PYTHONPATH"] = str(COMPAT_DIR)
    return env


def _needs_compat() -> bool:
    """True unless this interpreter can import a real ``flame`` (not flame_lab's stand-in)."""
    try:
        spec = importlib.util.find_spec("flame")
    except (ImportError, ValueError):
        return False
    if spec is None:
        return True
    origin = spec.origin or next(iter(spec.submodule_search_locations or []), "")
    return str(origin).startswith(str(COMPAT_DIR))


def _prepare_folders(spec: RunSpec, uid: int | None, owns_work: bool) -> None:
    code_dir, work_dir = Path(spec.code_dir), Path(spec.work_dir)
    if not spec.entry_path.is_file():
        raise SandboxError(
            f"The entrypoint {spec.entrypoint!r} is not a file in {code_dir}",
            hint="Name one of the analysis's .py files as its entrypoint.",
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    if uid is None:
        return
    # the analysis runs as the slot's uid: it may only read its code, and owns its work folder
    # (under bubblewrap that is a fresh tmpfs laid over it)
    if owns_work:
        os.chown(work_dir, uid, uid)
        work_dir.chmod(0o700)
    for folder, dirs, files in os.walk(code_dir):
        for name in dirs:
            _add_mode(Path(folder) / name, stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            _add_mode(Path(folder) / name, stat.S_IROTH)
    _add_mode(code_dir, stat.S_IROTH | stat.S_IXOTH)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _command(spec: RunSpec, uid: int, bwrap: str | None) -> list[str]:
    """bubblewrap (when there is one) around the launcher, which runs the analysis."""
    limits = spec.limits
    disk = limits.disk_mib * 1024 * 1024
    launcher = [
        str(spec.interpreter or sys.executable),
        "-u",
        "-P",  # no cwd on sys.path: the work folder cannot shadow flame_lab's modules
        "-m",
        "flame_lab.sandbox.node.confine",
        "--uid",
        str(uid),
        "--cpu-seconds",
        str(limits.cpu_seconds),
        "--memory-mb",
        str(limits.memory_mib),
        "--processes",
        str(limits.processes),
        "--open-files",
        str(limits.files_per_process),
        "--file-bytes",
        str(disk),
    ]
    image = (str(Path(spec.interpreter).parent.parent),) if spec.interpreter else ()
    if bwrap is None:
        launcher += ["--expose", str(Path(spec.code_dir).resolve())]
        launcher += ["--expose", str(Path(spec.work_dir).resolve())]
        for root in image:
            launcher += ["--expose", root]
        return [*launcher, "--analysis", str(spec.entry_path.resolve())]
    prefix = confine.bwrap_argv(
        bwrap, Path(spec.code_dir), Path(spec.work_dir), disk, readonly=image
    )
    return [*prefix, *launcher, "--in-bwrap", "--analysis", str(spec.entry_path.resolve())]


class _Output:
    """Reads one stream of the analysis line by line and forwards the lines it may."""

    def __init__(
        self,
        stream: IO[bytes],
        name: str,
        forward: OnOutput,
        lock: threading.Lock,
        bounds: RunBounds,
    ):
        self.stream = stream
        self.name = name
        self.forward = forward
        self.lock = lock
        self.bounds = bounds
        self.lines: deque[str] = deque(maxlen=KEPT_STDERR_LINES)
        self.confinement: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._pump, name=f"analysis-{name}", daemon=True)
        self.thread.start()

    def _readline(self) -> bytes:
        """One line of at most max_log_line_bytes (+1 to see the cut); the rest is skipped."""
        limit = self.bounds.limits.max_log_line_bytes + 1
        raw = self.stream.readline(limit)
        if len(raw) == limit and not raw.endswith(b"\n"):
            skipped = 0
            while True:  # drain the rest of the line without keeping it
                more = self.stream.readline(1 << 16)
                skipped += len(more)
                if not more or more.endswith(b"\n"):
                    break
            raw += f" ... ({skipped} more bytes)".encode()
        return raw

    def _pump(self) -> None:
        first = True
        while True:
            raw = self._readline()
            if not raw:
                break
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if first and self.name == "stderr" and line.startswith(MARKER):
                first = False
                with contextlib.suppress(ValueError):
                    found = json.loads(line[len(MARKER) :])
                    self.confinement = found if isinstance(found, dict) else {}
                off = self.confinement.get("off")
                if off and isinstance(off, list):
                    with self.lock:
                        self.forward(
                            "stderr",
                            "node: protections OFF for this run: " + "; ".join(map(str, off)),
                        )
                continue
            first = False
            kept, notice = self.bounds.admit_log(line)
            self.lines.append(kept if kept is not None else line[:MAX_KEPT_LINE])
            if kept is None and notice is None:
                continue  # over the run's budget: read (so the pipe never fills) and drop
            with self.lock:
                try:
                    self.forward(self.name, kept if kept is not None else notice)
                except Exception:  # a broken callback must not stop reading (the pipe fills)
                    log.exception("on_output failed for a line of the analysis's %s", self.name)
        self.stream.close()


def _plan(limits: ResourceLimits) -> tuple[str | None, str]:
    """bubblewrap's path (or None) and why a run goes unconfined; refuses when it may not."""
    why = confine.unavailable()
    if not why:
        return confine.bwrap_path(), ""
    if not limits.allow_unconfined:
        raise SandboxError(
            f"This node refuses to run the analysis without confinement: {why}.",
            hint="Install bubblewrap (apt-get install bubblewrap) and run the node agent as "
            "root. Only a node holding synthetic data may set limits.allow_unconfined = true.",
        )
    return None, why


def run_analysis(
    spec: RunSpec,
    service: NodeService,
    on_output: OnOutput,
    stop: threading.Event | None = None,
) -> RunOutcome:
    """Run the analysis confined, serve ``service`` to it, and report how it ended.

    ``on_output(stream, line)`` gets each line of stdout/stderr ("stdout" | "stderr"), one call
    at a time, from reader threads. Blocks until the analysis ended or was stopped (``stop``
    set by the agent, e.g. when the analysis was cancelled or another node failed). Every
    process of the run is gone when it returns; a run never outlives its caller's process.
    """
    bwrap, why_unconfined = _plan(spec.limits)
    slot = slots.acquire() if os.geteuid() == 0 else None
    try:
        return _run(spec, service, on_output, stop, bwrap, why_unconfined, slot)
    finally:
        if slot is not None:
            slot.release()


def _run(
    spec: RunSpec,
    service: NodeService,
    on_output: OnOutput,
    stop: threading.Event | None,
    bwrap: str | None,
    why_unconfined: str,
    slot: slots.Slot | None,
) -> RunOutcome:
    uid = slot.uid if slot is not None else NOBODY
    _prepare_folders(spec, slot.uid if slot is not None else None, owns_work=bwrap is None)
    bounds = service.apply_limits(spec.limits)
    if why_unconfined:
        log.warning("running an analysis WITHOUT bubblewrap (%s)", why_unconfined)
        on_output("stderr", f"node: this run is not confined by bubblewrap: {why_unconfined}")
    parent, child = socket.socketpair()
    env = clean_environment(Path(spec.work_dir).resolve(), child.fileno())
    try:
        proc = subprocess.Popen(
            _command(spec, uid, bwrap),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(child.fileno(),),
            cwd=str(spec.work_dir),
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        parent.close()
        raise SandboxError(
            f"The node could not start the analysis process: {exc.strerror or exc}",
            hint="Check the node's Python installation and the run folder.",
        ) from None
    finally:
        child.close()
    lock = threading.Lock()
    assert proc.stdout is not None and proc.stderr is not None
    out = _Output(proc.stdout, "stdout", on_output, lock, bounds)
    err = _Output(proc.stderr, "stderr", on_output, lock, bounds)
    refused: list[ChannelClosed | None] = []
    channel = Channel(parent, max_frame=spec.limits.max_frame_bytes)
    server = threading.Thread(
        target=lambda: refused.append(serve(channel, service.methods())),
        name="analysis-rpc",
        daemon=True,
    )
    server.start()
    ended = _Watch(spec.limits)
    try:
        while proc.poll() is None:
            if stop is not None and stop.is_set():
                ended.stopped = True
                break
            if refused and refused[0] is not None:
                ended.channel = refused[0].message
                break
            if ended.over(proc.pid):
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=WATCH_SECONDS)
    finally:
        _kill_group(proc.pid)
        proc.wait()
        if slot is not None:
            slot.empty()
        service.close()
        with contextlib.suppress(OSError):
            parent.shutdown(socket.SHUT_RDWR)
        for thread in (out.thread, err.thread, server):
            thread.join(timeout=10)
        parent.close()
    if refused and refused[0] is not None and not ended.channel:
        ended.channel = refused[0].message
    if ended.stopped and proc.returncode == 0:
        ended.stopped = False  # it had finished by itself as the stop came
    returncode = proc.returncode
    if bwrap is not None and 128 < returncode < 128 + 65:
        returncode = -(returncode - 128)  # bubblewrap's reaper reports a signal as 128 + n
    outcome = _outcome(spec, returncode, ended, err, service)
    outcome.peak_processes = ended.peak_processes
    if why_unconfined:
        outcome.confinement.setdefault("off", []).insert(0, f"bubblewrap ({why_unconfined})")
    return outcome


@dataclass
class _Watch:
    """Why the node ended a run, and the run's peak process count."""

    limits: ResourceLimits
    started: float = field(default_factory=time.monotonic)
    timed_out: bool = False
    stopped: bool = False
    cpu: bool = False
    memory: bool = False
    channel: str = ""
    peak_processes: int = 0

    def over(self, pid: int) -> bool:
        """True once the run as a whole passed a limit (wall time, CPU or memory)."""
        if time.monotonic() - self.started > self.limits.wall_seconds:
            self.timed_out = True
            return True
        used = watchdog.usage(pid)
        self.peak_processes = max(self.peak_processes, used.processes)
        if used.cpu_seconds > self.limits.cpu_seconds:
            self.cpu = True
        else:
            limit = self.limits.memory_mib * 1024 * 1024
            self.memory = used.rss_bytes > limit and watchdog.memory(used) > limit
        return self.cpu or self.memory


def _kill_group(pid: int) -> None:
    """Stop the analysis and anything it started (it leads its own session; under bubblewrap
    the run's PID namespace dies with it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _outcome(
    spec: RunSpec, returncode: int, ended: _Watch, err: _Output, service: NodeService
) -> RunOutcome:
    limits = spec.limits
    signame = _signal_name(returncode)
    traceback_text, last_line = user_traceback(list(err.lines), Path(spec.code_dir))
    memory = ended.memory or any(marker in last_line for marker in _MEMORY_ERRORS)
    refusal = service.refusal.message if service.refusal is not None else None
    outcome = RunOutcome(
        returncode=returncode,
        timed_out=ended.timed_out,
        signal=signame,
        memory_error=memory,
        confinement=err.confinement,
        refusal=refusal,
        stopped=ended.stopped,
    )
    if ended.stopped:
        outcome.failure = "The node stopped the analysis."
    elif ended.channel:
        outcome.failure = f"The node stopped the analysis: {ended.channel}."
    elif outcome.confinement.get("off") and outcome.confinement.get("engine") == "bubblewrap":
        outcome.failure = (
            "The node stopped the run before the analysis started: these protections did not "
            "hold: " + ", ".join(map(str, outcome.confinement["off"])) + "."
        )
    elif not outcome.confinement and returncode != 0:
        detail = " | ".join(list(err.lines)[-3:]) or f"status {returncode}"
        outcome.failure = f"The node could not start the confined analysis: {detail}"
    elif ended.timed_out:
        outcome.failure = (
            f"The analysis ran longer than this node allows ({limits.wall_seconds} s of wall "
            "time, limits.wall_seconds) and was stopped."
        )
    elif ended.cpu or signame == "SIGXCPU":
        outcome.failure = (
            f"The analysis used more CPU time than this node allows ({limits.cpu_seconds} s "
            "for all its processes together, limits.cpu_seconds) and was stopped."
        )
    elif ended.memory:
        outcome.failure = (
            f"The analysis ran out of memory: its processes together held more than this node "
            f"allows ({limits.memory_mib} MiB, limits.memory_mib) and were stopped."
        )
    elif memory:
        outcome.failure = (
            f"The analysis ran out of memory: this node allows {limits.memory_mib} MiB "
            "(limits.memory_mib).\n" + traceback_text
        ).rstrip()
    elif refusal is not None:
        outcome.failure = f"PolicyRefused: the node refused to release a result: {refusal}"
        if returncode != 0 and traceback_text:
            outcome.failure += "\n" + traceback_text
    elif returncode != 0:
        if traceback_text:
            outcome.failure = traceback_text
        elif signame is not None:
            outcome.failure = f"The analysis was killed by {signame}."
        else:
            outcome.failure = f"The analysis exited with status {returncode}."
    return outcome


def _signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def user_traceback(stderr_lines: list[str], code_dir: Path) -> tuple[str, str]:
    """The last traceback in ``stderr_lines`` keeping only frames in ``code_dir``; and its
    last line (the exception). Empty strings when there is no traceback."""
    starts = [
        i for i, line in enumerate(stderr_lines) if line == "Traceback (most recent call last):"
    ]
    if not starts:
        return "", ""
    root = os.path.realpath(code_dir)
    kept: list[str] = [stderr_lines[starts[-1]]]
    keep_frame = False
    in_exception = False
    for line in stderr_lines[starts[-1] + 1 :]:
        match = None if in_exception else _FRAME.match(line)
        if match:
            path = os.path.realpath(match.group("path"))
            keep_frame = path == root or path.startswith(root + os.sep)
            if keep_frame:
                kept.append(line)
        elif not in_exception and line.startswith("    "):
            if keep_frame:
                kept.append(line)
        else:
            in_exception = True
            kept.append(line)
    last = next((line for line in reversed(kept) if line.strip()), "")
    return "\n".join(kept), last
