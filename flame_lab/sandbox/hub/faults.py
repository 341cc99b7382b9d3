"""Fault points for tests: the hub freezes at a named step so that a test can SIGKILL it there.

``FLAME_LAB_HUB_FAULT`` lists points (comma-separated), e.g. ``upload:RESULT:stored``, each
optionally ``@N``: the Nth time this hub process passes it (default the first). When the
hub reaches one, it writes ``<home>/faults/<point>`` (its pid) and stops answering anyone (the
IO loop is held) until it is killed, or until the test deletes that file (to change the world
meanwhile, e.g. fill the disk, then let the hub go on). A point whose file is there is passed:
a hub restarted after a kill does not stop again. Unset, this costs a dictionary lookup. The
points:

- ``upload:<TYPE>:receiving``: part of an upload's body arrived (TYPE: CODE, RESULT, TEMP);
- ``upload:<TYPE>:stored``: the upload's blobs are on disk, its rows are not written;
- ``upload:<TYPE>:committed``: the rows are committed, the uploader has no answer yet.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

FAULT_VAR = "FLAME_LAB_HUB_FAULT"
FOLDER = "faults"
log = logging.getLogger("flame_lab.sandbox.hub")


_passed: dict[str, int] = {}


def armed() -> dict[str, int]:
    """Armed points and the pass at which each fires."""
    points = {}
    for item in os.environ.get(FAULT_VAR, "").split(","):
        name, _, nth = item.strip().partition("@")
        if name:
            points[name] = int(nth) if nth.isdigit() else 1
    return points


def reach(point: str, home: Path) -> None:
    """At ``point``: if a test armed it and it has not fired in this sandbox, freeze here."""
    nth = armed().get(point)
    if nth is None:
        return
    _passed[point] = _passed.get(point, 0) + 1
    if _passed[point] != nth:
        return
    marker = Path(home) / FOLDER / point.replace(":", "-")
    if marker.exists():
        return
    marker.parent.mkdir(exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, marker)
    log.warning("fault point %s reached (%s): the hub holds here", point, FAULT_VAR)
    while marker.exists():  # the IO loop is held: nothing answers, as a hub that hangs
        time.sleep(0.05)
    log.warning("fault point %s released", point)
