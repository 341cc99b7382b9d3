"""Start an analysis process confined as far as this machine allows, then run it.

Run as ``python -u -P -m flame_lab.sandbox.node.confine [options] --analysis ENTRY.py`` (the
analysis runs in this same interpreter, through the bootstrap: one interpreter start per
run) or ``... -- argv...`` (exec'd): a wrapper rather than a ``preexec_fn`` because the node
agent is multi-threaded. What was applied is printed as one JSON line on stderr before the
analysis starts, so the node can log it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
NOBODY = 65534
MARKER = "flame-lab-confinement:"


@dataclass
class Confinement:
    """What the wrapper managed to apply; a node logs it with the run."""

    network_isolated: bool = False
    user_dropped: bool = False
    cpu_seconds: int | None = None
    memory_mb: int | None = None
    notes: str = ""


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
    an empty tmpfs over such a folder and binding only the needed paths back into it.
    Everything else in that folder (keys, databases, credentials) disappears from view."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    blocked: dict[str, set[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}):
        folder = _blocking_ancestor(path)
        if folder:
            blocked.setdefault(folder, set()).add(path)
    for folder, needed in blocked.items():
        # keep only the outermost needed paths: an inner one comes back with its parent
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


def _unshare_network() -> str:
    if _libc.unshare(CLONE_NEWNET) != 0:
        return os.strerror(ctypes.get_errno())
    return ""


def apply(
    cpu_seconds: int | None, memory_mb: int | None, uid: int | None, expose_paths: list[str]
) -> Confinement:
    """Limits first (they hold for the user we become), then network, then the user."""
    done = Confinement(cpu_seconds=cpu_seconds, memory_mb=memory_mb)
    notes = []
    if cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() == 0:
        error = _unshare_network()
        done.network_isolated = not error
        if error:
            notes.append(f"network not isolated: unshare failed ({error})")
        if uid is not None:
            try:
                expose(expose_paths)
            except OSError as exc:
                notes.append(f"analysis keeps the node's user: {exc}")
            else:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                done.user_dropped = True
    else:
        notes.append(
            "not running as root: the analysis keeps the node's user and network "
            "(no network namespace, no separate user)"
        )
    done.notes = "; ".join(notes)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="confine")
    parser.add_argument("--cpu-seconds", type=int)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--uid", type=int, default=NOBODY)
    parser.add_argument("--keep-user", action="store_true")
    parser.add_argument("--expose", action="append", default=[], help="a path the analysis needs")
    parser.add_argument("--analysis", help="an entry file to run here through the bootstrap")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if bool(command) == bool(args.analysis):
        parser.error("no command to run" if not command else "give --analysis or a command")
    program = sys.executable if args.analysis else command[0]
    needed = [sys.prefix, sys.base_prefix, os.path.dirname(program), *sys.path, *args.expose]
    needed += os.environ.get("PYTHONPATH", "").split(os.pathsep)
    uid = None if args.keep_user else args.uid
    done = apply(args.cpu_seconds, args.memory_mb, uid, [p for p in needed if p])
    sys.stderr.write(MARKER + json.dumps(asdict(done)) + "\n")
    sys.stderr.flush()
    if args.analysis:
        # imported only now, as the unprivileged user, inside the namespaces and limits
        from flame_lab.sandbox.node import bootstrap

        bootstrap.main([args.analysis])
        return
    os.execv(command[0], command)  # noqa: S606 - argv from the node agent, no shell


if __name__ == "__main__":
    main()
