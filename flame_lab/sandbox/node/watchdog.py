"""What a run uses as a whole: the sum over every process of its tree, read from /proc.

rlimits hold per process; the node adds up CPU time and memory (PSS) over the run's whole
process tree (bubblewrap's reaper adopts every orphan, so daemons stay in the tree; reaped
children's time is in their reaper's ``cutime``) and stops the run when a total passes its limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Usage:
    """Totals over one process tree at one moment."""

    processes: int = 0
    cpu_seconds: float = 0.0
    rss_bytes: int = 0
    pids: list[int] = field(default_factory=list)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                found += [int(x) for x in fh.read().split()]
        except OSError:
            continue
    return found


def tree(root: int) -> list[int]:
    """``root`` and all its descendants alive now."""
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


def usage(root: int) -> Usage:
    """CPU (own plus reaped children's) and resident memory summed over ``root``'s tree."""
    total = Usage()
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
        total.processes += int(fields[17])  # num_threads: RLIMIT_NPROC counts threads
        total.cpu_seconds += sum(int(x) for x in fields[11:15]) / TICKS
        total.rss_bytes += int(fields[21]) * PAGE
        total.pids.append(pid)
    return total


def memory(used: Usage) -> int:
    """The tree's memory as PSS, read only when its RSS sum (always >= PSS) is high enough to
    matter, since reading it costs far more."""
    return sum(_pss(pid, 0) for pid in used.pids)


def _pss(pid: int, rss: int) -> int:
    """The process's proportional share of memory (shared pages split among their users, so
    a forked tree is not counted many times over); its RSS when that cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss
