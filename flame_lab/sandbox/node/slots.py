"""Run slots: one unprivileged uid per concurrent run on this machine, shared by all agents.

A slot is held through an exclusive ``flock`` on its lock file, so two runs (of one agent or of
two nodes on the same host) never share a uid, and a slot frees itself when its agent dies.
Whoever takes a slot first kills whatever still runs under its uid: leftovers of a run whose
agent was killed never meet the next run. The process limit (RLIMIT_NPROC) counts per uid, so
with one uid per run it bounds the run as a whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from flame_lab.errors import SandboxError

FIRST_UID = 60001
SLOTS = 512
LOCK_DIRS = (Path("/run/flame-lab-slots"), Path("/tmp/flame-lab-slots-root"))  # noqa: S108
REAP_SECONDS = 10.0


@dataclass
class Slot:
    """One held run slot: its uid and the open lock file that holds it."""

    uid: int
    fd: int

    def empty(self) -> None:
        """Kill whatever still runs under the slot's uid (the run is over)."""
        reap(self.uid)

    def release(self) -> None:
        """Reap what is left under the uid, then let another run take it."""
        reap(self.uid)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _lock_dir() -> Path:
    for folder in LOCK_DIRS:
        with contextlib.suppress(FileExistsError, FileNotFoundError, PermissionError):
            os.mkdir(folder, 0o700)
        try:
            info = os.lstat(folder)
        except OSError:
            continue
        # only a folder of root's that nobody else may write holds locks we can trust
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022:
            return folder
    raise SandboxError(
        "The node found no safe folder for its run slot locks.",
        hint=f"Let root create {LOCK_DIRS[0]} (mode 0700).",
    )


def acquire(uids: range = range(FIRST_UID, FIRST_UID + SLOTS)) -> Slot:
    """The first free slot, its uid emptied of any leftover process."""
    folder = _lock_dir()
    for uid in uids:
        fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        reap(uid)
        return Slot(uid, fd)
    raise SandboxError(
        f"All {SLOTS} run slots of this machine are busy.",
        hint="Wait for running analyses to end.",
    )


def reap_unheld() -> int:
    """Kill what runs under any slot's uid that no agent holds (left by a killed agent); an
    agent calls it as it starts. How many processes there were."""
    try:
        folder = _lock_dir()
    except SandboxError:
        return 0
    killed = 0
    for entry in os.scandir(folder):
        uid_text = entry.name.removesuffix(".lock")
        if not (entry.name.endswith(".lock") and uid_text.isdigit()):
            continue
        fd = os.open(entry.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a run holds it
        else:
            killed += reap(int(uid_text))
        finally:
            os.close(fd)
    return killed


def processes_of(uid: int) -> list[int]:
    """Every live process whose real or effective uid is ``uid`` (zombies count as gone)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        uids = state = ""
        for line in text.splitlines():
            if line.startswith("Uid:"):
                uids = line
            elif line.startswith("State:"):
                state = line
        if uids and uid in {int(x) for x in uids.split()[1:3]} and "Z" not in state.split()[1:2]:
            found.append(int(entry.name))
    return found


def reap(uid: int) -> int:
    """SIGKILL every process of ``uid`` until none is left; how many there were."""
    killed: set[int] = set()
    deadline = time.monotonic() + REAP_SECONDS
    while True:
        left = processes_of(uid)
        if not left:
            return len(killed)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        if time.monotonic() > deadline:
            raise SandboxError(
                f"Processes of run uid {uid} survive SIGKILL: {sorted(left)}",
                hint="Look at them with `ps -u {uid}`; the slot stays unused until they end.",
            )
        time.sleep(0.02)
