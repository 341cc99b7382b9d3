"""Confine one analysis run: bubblewrap around it, and the launcher that starts it inside.

The node agent runs ``bwrap [what bwrap_argv builds] -- python -u -P -m
flame_lab.sandbox.node.confine --in-bwrap ... --analysis ENTRY.py``. bubblewrap (the engine
behind Flatpak) gives the run a fresh PID namespace (the whole tree dies with it, and with the
agent: ``--die-with-parent``), no network, a minimal read-only root (the Python installation,
flame_lab and the run's code; no host /home, /srv, /opt, /var, no node or provisioning folder)
and one size-limited tmpfs at /tmp for its work folder, /tmp, /var/tmp and /dev/shm together. This
launcher then sets the rlimits, becomes the run slot's own uid (no capabilities left,
``no_new_privs``), checks what holds, prints it as one JSON line on stderr and runs the analysis
through the bootstrap in the same interpreter (one interpreter start per run).

Without bubblewrap or root (``--fallback``) it applies what it can (rlimits; as root a network
namespace, a private view of the needed folders and the slot's uid) and lists what is off.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
NOBODY = 65534
MARKER = "flame-lab-confinement:"
BWRAP = "/usr/bin/bwrap"
DEVICES = ("null", "zero", "full", "random", "urandom")
NAMESPACES = (
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
)
TMP = "/tmp"  # noqa: S108 - the run's own tmpfs, inside its mount namespace
TMP_ALIASES = ("/var/tmp", "/dev/shm")  # noqa: S108 - point at TMP
WORK_IN_TMP = "/tmp/work"  # noqa: S108 - where a work folder outside /tmp lives in the run


@dataclass
class Confinement:
    """What the launcher applied and checked; a node logs it with the run."""

    engine: str = "none"
    uid: int | None = None
    pid_namespace: bool = False
    network_isolated: bool = False
    user_dropped: bool = False
    no_new_privs: bool = False
    cpu_seconds: int | None = None
    memory_mb: int | None = None
    processes: int | None = None
    open_files_per_process: int | None = None
    file_bytes: int | None = None
    off: list[str] = field(default_factory=list)
    notes: str = ""


def bwrap_path() -> str | None:
    """The bubblewrap binary, if installed (FLAME_LAB_BWRAP overrides, for tests)."""
    chosen = os.environ.get("FLAME_LAB_BWRAP", "")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap") or (BWRAP if os.access(BWRAP, os.X_OK) else None)


def unavailable() -> str:
    """Why this node cannot confine a run with bubblewrap ('' when it can)."""
    if os.geteuid() != 0:
        return "the node agent does not run as root (bubblewrap needs it to give a run its uid)"
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    return _probe(bwrap)


@functools.cache
def _probe(bwrap: str) -> str:
    """Whether bubblewrap can build a run's namespaces on this host (a container may forbid
    it); tried once per agent process. '' when it can, else bubblewrap's own words."""
    argv = [bwrap, *NAMESPACES, "--ro-bind", "/usr", "/usr", *_top_links()]
    argv += ["--proc", "/proc", "--size", "1048576", "--tmpfs", TMP, "--", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not start here ({exc})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"status {done.returncode}"])[-1]
        return f"bubblewrap cannot confine a run on this host ({last})"
    return ""


def _top_links() -> list[str]:
    """/bin, /lib and friends: symlinks into /usr (merged /usr) or read-only folders."""
    argv: list[str] = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    return argv


# -- the bubblewrap command -------------------------------------------------------------------
def readonly_paths() -> list[str]:
    """What a run needs to read: this Python installation (and venv) and flame_lab itself."""
    import flame_lab

    wanted = [sys.base_prefix, sys.prefix, str(Path(flame_lab.__file__).resolve().parent)]
    found: list[str] = []
    for path in sorted({os.path.realpath(p) for p in wanted if os.path.isdir(p)}):
        if path == "/usr" or path.startswith("/usr/"):
            continue  # bound as a whole
        if not any(path.startswith(p + "/") for p in found):
            found.append(path)
    return found


def _dirs(path: str, made: set[str]) -> list[str]:
    """``--dir`` for each missing ancestor of ``path``, passable by every user."""
    argv: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder not in made:
            made.add(folder)
            argv += ["--perms", "0755", "--dir", folder]
    return argv


def bwrap_argv(
    bwrap: str, code_dir: Path, work_dir: Path, disk_bytes: int, readonly: tuple[str, ...] = ()
) -> list[str]:
    """The bubblewrap part of a run's command line (the launcher's command follows '--')."""
    argv = [bwrap, *NAMESPACES, "--hostname", "flame-run"]
    # the launcher's only privileges: becoming the slot's uid and gid
    argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    argv += ["--ro-bind", "/usr", "/usr", *_top_links()]
    made = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
    argv += ["--proc", "/proc", "--perms", "0755", "--dir", "/dev"]
    for device in DEVICES:
        argv += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
    argv += ["--symlink", "/proc/self/fd", "/dev/fd"]
    # one tmpfs holds everything the run may write: /tmp, /var/tmp, /dev/shm, its work folder
    argv += ["--size", str(disk_bytes), "--perms", "01777", "--tmpfs", TMP]
    argv += ["--perms", "0755", "--dir", "/var"]
    for alias in TMP_ALIASES:
        argv += ["--symlink", TMP, alias]
    made |= {"/dev", TMP, "/var"}
    for path in [*readonly_paths(), *(os.path.realpath(p) for p in readonly)]:
        argv += [*_dirs(path, made), "--ro-bind", path, path]
    code, work = str(Path(code_dir).resolve()), str(Path(work_dir).resolve())
    argv += [*_dirs(code, made), "--ro-bind", code, code]
    if work.startswith(TMP + "/"):
        argv += [*_dirs(work, made), "--perms", "01777", "--dir", work]
    else:
        argv += ["--perms", "01777", "--dir", WORK_IN_TMP]
        argv += [*_dirs(work, made), "--symlink", WORK_IN_TMP, work]
    argv += ["--chdir", work, "--"]
    return argv


# -- the fallback's own isolation (no bubblewrap) ----------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None):
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _blocking_ancestor(path: str) -> str | None:
    """The first folder above ``path`` that other users cannot pass through."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        folder = "/" + "/".join(parts[:depth])
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def expose(paths: list[str]) -> None:
    """In a private mount namespace, let the unprivileged user reach ``paths`` (the Python
    installation, flame_lab, the run folder) through folders such as a 0700 home, by laying
    an empty tmpfs over such a folder and binding only the needed paths back into it."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    blocked: dict[str, set[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}):
        folder = _blocking_ancestor(path)
        if folder:
            blocked.setdefault(folder, set()).add(path)
    for folder, needed in blocked.items():
        keep = [p for p in sorted(needed) if not any(p.startswith(q + "/") for q in needed)]
        stash = tempfile.mkdtemp(prefix="flame-lab-stash-")
        for i, path in enumerate(keep):
            os.mkdir(f"{stash}/{i}")
            _mount(path, f"{stash}/{i}", None, MS_BIND | MS_REC)
        _mount("tmpfs", folder, "tmpfs", 0, "mode=0755")
        for i, path in enumerate(keep):
            os.makedirs(path, exist_ok=True)
            _mount(f"{stash}/{i}", path, None, MS_BIND | MS_REC)
            _libc.umount2(f"{stash}/{i}".encode(), MNT_DETACH)
        shutil.rmtree(stash, ignore_errors=True)
        for path in keep:
            if _blocking_ancestor(path):
                raise OSError(f"{path} still sits below a folder others cannot enter")


# -- the launcher ---------------------------------------------------------------------------
def _rlimits(args: argparse.Namespace, done: Confinement) -> None:
    """Per-process rlimits chosen so that the run as a whole stays within its limits: the
    process count holds for the slot's uid (one run), files are split among processes."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if args.cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (args.cpu_seconds, args.cpu_seconds + 1))
        done.cpu_seconds = args.cpu_seconds
    if args.memory_mb:
        limit = args.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        done.memory_mb = args.memory_mb
    if args.open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.open_files, args.open_files))
        done.open_files_per_process = args.open_files
    if args.file_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_bytes, args.file_bytes))
        done.file_bytes = args.file_bytes
    if args.processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (args.processes, args.processes))
        done.processes = args.processes


def _become(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _status_field(name: str) -> str:
    # bytes: after the uid change the codec modules may be out of reach (fallback mode)
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(name.encode() + b":"):
                return line.split(b":", 1)[1].strip().decode("ascii")
    return ""


def _interfaces() -> set[str]:
    try:
        with open("/proc/net/dev", "rb") as fh:
            lines = list(fh)[2:]
    except OSError:
        return {"unknown"}
    return {line.split(b":")[0].strip().decode("ascii") for line in lines if b":" in line}


def _in_bwrap(args: argparse.Namespace) -> Confinement:
    """Inside bubblewrap: limits, the slot's uid, then check that each protection holds."""
    done = Confinement(engine="bubblewrap")
    _rlimits(args, done)
    done.pid_namespace = os.getpid() <= 3  # bubblewrap's reaper is 1 in a fresh namespace
    done.network_isolated = _interfaces() <= {"lo"}
    _become(args.uid)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    done.uid = os.getuid()
    done.user_dropped = os.getuid() == os.geteuid() == args.uid and args.uid != 0
    done.no_new_privs = _status_field("NoNewPrivs") == "1"
    checks = {
        "a separate user": done.user_dropped,
        "no capabilities": int(_status_field("CapEff") or "1", 16) == 0,
        "no_new_privs": done.no_new_privs,
        "own PID namespace": done.pid_namespace,
        "no network": done.network_isolated,
    }
    done.off = [name for name, ok in checks.items() if not ok]
    return done


def _fallback(args: argparse.Namespace, needed: list[str]) -> Confinement:
    """Without bubblewrap: rlimits always; as root a network namespace, a private view of the
    needed folders and the slot's uid. Every protection missing is named in ``off``."""
    done = Confinement(engine="none")
    _rlimits(args, done)
    off = ["own PID namespace (a process that leaves the run's group outlives it"]
    off[0] += ", until the run's uid is reaped as it ends)" if os.geteuid() == 0 else ")"
    off.append("minimal read-only root (the host's world-readable files are visible)")
    off.append("private size-limited /tmp and /dev/shm (disk_mib is not enforced)")
    notes = []
    if os.geteuid() == 0:
        if _libc.unshare(CLONE_NEWNET) != 0:
            off.append("no network")
            notes.append(f"unshare failed ({os.strerror(ctypes.get_errno())})")
        else:
            done.network_isolated = True
        try:
            expose(needed)
        except OSError as exc:
            off.append("a separate user")
            notes.append(f"analysis keeps the node's user: {exc}")
        else:
            _become(args.uid)
            done.user_dropped = True
            done.uid = args.uid
    else:
        off += ["no network", "a separate user"]
        notes.append("not running as root: the analysis keeps the node's user and network")
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    parent = os.getppid()
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after the uid change, which clears it
    if os.getppid() != parent:
        raise SystemExit(70)  # the node agent is already gone
    done.no_new_privs = _status_field("NoNewPrivs") == "1"
    done.off = off
    done.notes = "; ".join(notes)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="confine")
    parser.add_argument("--in-bwrap", action="store_true", help="started by bubblewrap")
    parser.add_argument("--uid", type=int, default=NOBODY)
    parser.add_argument("--cpu-seconds", type=int)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--open-files", type=int, help="per process")
    parser.add_argument("--file-bytes", type=int)
    parser.add_argument("--expose", action="append", default=[], help="a path the analysis needs")
    parser.add_argument("--analysis", required=True, help="the entry file to run")
    args = parser.parse_args(argv)
    if args.in_bwrap:
        done = _in_bwrap(args)
        if done.off:  # fail closed: a promised protection that does not hold stops the run
            sys.stderr.write(MARKER + json.dumps(asdict(done)) + "\n")
            sys.stderr.write("confinement incomplete: " + ", ".join(done.off) + " did not hold\n")
            raise SystemExit(70)
    else:
        needed = [sys.prefix, sys.base_prefix, *sys.path, *args.expose]
        needed += os.environ.get("PYTHONPATH", "").split(os.pathsep)
        done = _fallback(args, [p for p in needed if p])
    sys.stderr.write(MARKER + json.dumps(asdict(done)) + "\n")
    sys.stderr.flush()
    # imported only now, as the run's user, inside the namespaces and limits
    from flame_lab.sandbox.node import bootstrap

    bootstrap.main([args.analysis])


if __name__ == "__main__":
    main()
