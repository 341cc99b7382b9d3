"""What one analysis run may use at a node, as a whole: the ``[limits]`` table of policy.toml.

Every bound holds for the run as a whole (all its processes together), not per process: the
node confines each run in its own PID namespace under its own uid and watches the total.
The channel bounds (frames, log lines and bytes, messages) are refused before the node reads
or decodes what exceeds them, so one run cannot exhaust the node agent or the hub::

    [limits]
    cpu_seconds = 600            # CPU time of all the run's processes together
    memory_mib = 2048            # resident memory of all its processes together
    wall_seconds = 1800
    processes = 64               # processes and threads alive at once
    open_files = 4096            # open files of all processes (each gets open_files/processes)
    disk_mib = 512               # its work folder, /tmp and /dev/shm together (one tmpfs)
    max_frame_bytes = 33619968   # one call from the analysis to the node (see below)
    max_log_line_bytes = 16384   # longer lines are cut
    max_log_bytes = 4194304      # output and logs of the run; the rest is dropped
    max_messages = 10000         # messages the run may send
    max_message_bytes = 16777216 # one message, sent or received
    allow_unconfined = false     # true only for synthetic sandbox data: run without bubblewrap

One call carries one release (a message or the final result) from the analysis to its node,
with bytes, arrays and tables in base64 (a third more) inside a little JSON. So a node's
``[disclosure] max_release_bytes`` must fit one call: the policy is refused unless
``max_frame_bytes >= frame_bytes_for(max_release_bytes)``. The defaults (24 MiB releases, frames
of 32 MiB + 64 KiB) meet exactly. A release given as JSON (numbers, text) may take up to a few
times its size on the channel; for those, the frame is the bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from flame_lab.errors import PolicyFileError

MIB = 1024 * 1024
#: Room in one call for its JSON around the released value (method, ids, filename, type, DP).
CALL_ROOM_BYTES = 64 * 1024
#: The default [disclosure] max_release_bytes: the largest release a node lets leave.
DEFAULT_RELEASE_BYTES = 24 * MIB


def frame_bytes_for(release_bytes: int) -> int:
    """The frame bound one call needs to carry a release of ``release_bytes`` (base64 + room)."""
    return 4 * -(-release_bytes // 3) + CALL_ROOM_BYTES


def release_bytes_carried(max_frame_bytes: int) -> int:
    """The largest release (bytes, an array or a table) one call of ``max_frame_bytes`` carries."""
    return max(0, (max_frame_bytes - CALL_ROOM_BYTES) // 4 * 3)


@dataclass(frozen=True)
class ResourceLimits:
    """What one analysis run may use on the node before it is stopped or refused."""

    cpu_seconds: int = 600
    memory_mib: int = 2048
    wall_seconds: int = 1800
    processes: int = 64
    open_files: int = 4096
    disk_mib: int = 512
    max_frame_bytes: int = frame_bytes_for(DEFAULT_RELEASE_BYTES)  # 32 MiB + 64 KiB
    max_log_line_bytes: int = 16 * 1024
    max_log_bytes: int = 4 * MIB
    max_messages: int = 10_000
    max_message_bytes: int = 16 * MIB
    allow_unconfined: bool = False

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            check_limit(f"limits.{key}", value, LIMIT_TYPES[key])
        if self.processes < 2:
            raise PolicyFileError(
                f"limits.processes must be at least 2 (the launcher and the analysis), "
                f"not {self.processes}"
            )

    @property
    def files_per_process(self) -> int:
        """RLIMIT_NOFILE for each process, so that all of them together stay in open_files."""
        return max(1, self.open_files // self.processes)


LIMIT_TYPES: dict[str, type] = {
    "cpu_seconds": int,
    "memory_mib": int,
    "wall_seconds": int,
    "processes": int,
    "open_files": int,
    "disk_mib": int,
    "max_frame_bytes": int,
    "max_log_line_bytes": int,
    "max_log_bytes": int,
    "max_messages": int,
    "max_message_bytes": int,
    "allow_unconfined": bool,
}


def check_limit(name: str, value: Any, kind: type) -> None:
    """A limit is a whole number above 0 (or true/false for a switch); anything else refused."""
    if kind is bool:
        if not isinstance(value, bool):
            raise PolicyFileError(f"{name} must be true or false, not {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyFileError(f"{name} must be a whole number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise PolicyFileError(f"{name} must be greater than 0, not {value!r}")
