"""How long an analysis waits for a node that has gone quiet, decided on the researcher's side.

A node is *heard from* when the client sees a statement it has not seen before that the node
signed (a status or a log line whose (session, seq) is new: security/statements.py). The hub's
word (online flags, an approval it shows but the node did not sign, an old statement shown
again) never counts. An analysis that needs a node (to review it, start it or finish it) fails
once that node has been silent for FLAME_LAB_NODE_SILENCE; a node whose signed log says it
verified the code and waits for its admin gets FLAME_LAB_APPROVAL_WAIT instead. A flame_lab
node signs a heartbeat while busy (sandbox/node/heartbeat.py), so its default is minutes; a node
that signs nothing (a real FLAME node) and the hub's build keep the old hour. The state kept
per node lives in the submission record (``SubmissionRecord.watch``), so the clock runs across
kernels and processes, and the verdict, once given, is kept there too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from flame_lab.clock import seconds_from_env

NODE_SILENCE_VAR = "FLAME_LAB_NODE_SILENCE"
APPROVAL_WAIT_VAR = "FLAME_LAB_APPROVAL_WAIT"
# a signing node re-signs its status every FLAME_LAB_HEARTBEAT (60 s) while busy: ten minutes
# are several missed heartbeats plus a hub outage (FLAME_LAB_HUB_OUTAGE, 120 s) and a look
DEFAULT_NODE_SILENCE = 600.0
# what the hub shows of a node that signs nothing moves only when its state does: longer than a
# node's default wall time (1800 s) plus the outage limits, so a long quiet run is not cut short
DEFAULT_UNSIGNED_SILENCE = 3600.0
# people approve: a week covers a weekend and a holiday
DEFAULT_APPROVAL_WAIT = 7 * 86400.0

IN_PROGRESS = ("starting", "started", "executing")
# how often the logs of a node that has not decided are read: a signed line there says it has
# the code and its admin decides (FLAME_LAB_APPROVAL_WAIT applies, not FLAME_LAB_NODE_SILENCE)
REVIEW_LOG_INTERVAL = 60.0
REVIEW, START, RUN = "review", "start", "run"
# every data node approved: the researcher's commands and the hub build and distribute it
DISTRIBUTE = "distribute"
HUB = "hub"  # the watch entry of the hub's part (build and distribution states)


@dataclass(frozen=True)
class Limits:
    """The bounds in seconds; ``grace``: what a node gets at least once the hub answers again
    after this client saw it away, to report what it did meanwhile (FLAME_LAB_HUB_OUTAGE);
    ``unsigned``: the silence allowed a node that signs nothing (no heartbeat), and the hub."""

    silence: float = DEFAULT_NODE_SILENCE
    approval: float = DEFAULT_APPROVAL_WAIT
    grace: float = 120.0
    unsigned: float = DEFAULT_UNSIGNED_SILENCE

    @classmethod
    def from_env(cls) -> Limits:
        from flame_lab.hubclient import hub_outage

        silence = seconds_from_env(NODE_SILENCE_VAR, DEFAULT_NODE_SILENCE)
        given = NODE_SILENCE_VAR in os.environ  # an operator's limit is for every node
        return cls(
            silence,
            seconds_from_env(APPROVAL_WAIT_VAR, DEFAULT_APPROVAL_WAIT),
            hub_outage().limit,
            silence if given else DEFAULT_UNSIGNED_SILENCE,
        )

    def silence_for(self, entry: dict[str, Any]) -> float:
        """A node judged by what the hub shows (it signs nothing) gets the longer silence."""
        return self.unsigned if entry.get("unsigned") else self.silence


def duration(seconds: float) -> str:
    """A wait in words a person reads at a glance: 45 s, 12 min, 3.0 h, 7.0 d."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def phase_of(node: Any, distributed: bool) -> str:
    """What the analysis needs from ``node`` now (REVIEW, START, RUN), or "" if nothing.
    Only what the node signed counts: a status it did not sign is treated as no status."""
    trusted = node.verified is not False
    approval = node.approval if trusted else None
    execution = node.execution if trusted else None
    if approval == "rejected" or execution in ("executed", "failed"):
        return ""
    if node.type == "default" and approval != "approved":
        return REVIEW
    if execution in IN_PROGRESS:
        return RUN
    return START if distributed else ""


def observe(
    entry: dict[str, Any],
    now: float,
    phase: str,
    stamp: tuple[str, int] | None = None,
    mark: str | None = None,
) -> bool:
    """Note one look at a node in its record entry; True if the entry changed. ``stamp``: the
    (session, seq) of a statement the node signed; ``mark``: for a node that signs nothing,
    what the hub shows of it (any change counts as hearing from it)."""
    changed = False
    if entry.get("phase") != phase:
        entry["phase"], entry["since"] = phase, now
        changed = True
    if stamp is not None and heard_new(entry, stamp):
        entry["heard"] = now
        changed = True
    if mark is not None:
        entry["unsigned"] = True
    if mark is not None and entry.get("mark") != mark:
        if "mark" in entry:
            entry["heard"] = now
        entry["mark"] = mark
        changed = True
    return changed


def heard_new(entry: dict[str, Any], stamp: tuple[str, int]) -> bool:
    """Record a signed statement's (session, seq); True if it is newer than any seen before
    from that session (a statement shown again, or an older one, is not news)."""
    session, seq = stamp
    seen = entry.setdefault("seen", {})
    if seq <= int(seen.get(session, 0)):
        return False
    seen[session] = seq
    return True


def after_gap(watch: dict[str, dict[str, Any]], now: float, limits: Limits) -> None:
    """After the hub was away (nobody could report), every node has at least ``grace`` left
    before it is given up on."""
    for entry in watch.values():
        floor = now - limits.silence_for(entry) + limits.grace
        entry["floor"] = max(float(entry.get("floor", 0.0)), floor)


def quiet_since(entry: dict[str, Any]) -> float:
    return max(
        float(entry.get("since", 0.0)),
        float(entry.get("heard", 0.0)),
        float(entry.get("floor", 0.0)),
    )


def rank(entry: dict[str, Any], name: str) -> tuple[int, str]:
    """Order nodes by how early in the analysis their wait is: a node that never reviewed or
    started is why the others (a waiting aggregator) wait, so it is named first."""
    order = {REVIEW: 0, DISTRIBUTE: 1, START: 2, RUN: 3}
    return order.get(entry.get("phase", ""), 4), name


def overdue(entry: dict[str, Any], name: str, now: float, limits: Limits) -> str | None:
    """Why the analysis stops waiting for this node (None: it waits on)."""
    phase = entry.get("phase", "")
    if not phase:
        return None
    if phase == REVIEW and entry.get("admin"):
        waited = now - float(entry.get("since", now))
        if waited < limits.approval:
            return None
        return (
            f"the admin of {name} did not approve or reject the analysis within "
            f"{duration(waited)} (limit {APPROVAL_WAIT_VAR}={limits.approval:g} s)"
        )
    silent, allowed = now - quiet_since(entry), limits.silence_for(entry)
    if silent < allowed:
        return None
    if phase == DISTRIBUTE:
        return (
            "the hub did not build and distribute the analysis after every data node approved: "
            f"its build and distribution states did not move for {duration(silent)} "
            f"(limit {NODE_SILENCE_VAR}={allowed:g} s); the analysis was cancelled at "
            "the hub"
        )
    doing = {
        REVIEW: f"{name} did not take up the analysis for review",
        START: f"{name} did not start the analysis",
        RUN: f"{name} fell silent while running the analysis",
    }[phase]
    return (
        f"{doing}: nothing it signed arrived for {duration(silent)} "
        f"(limit {NODE_SILENCE_VAR}={allowed:g} s); the analysis was cancelled at the hub"
    )


def countdown(entry: dict[str, Any], now: float, limits: Limits) -> str:
    """How long until the bound ends the wait for this node, for ``waiting`` ("" if none); in
    whole minutes or coarser, so that the text changes seldom (monitors redraw on a change)."""
    phase = entry.get("phase", "")
    if not phase:
        return ""
    if phase == REVIEW and entry.get("admin"):
        left = limits.approval - (now - float(entry.get("since", now)))
        return f"gives up after {_coarse(left)} more ({APPROVAL_WAIT_VAR})"
    left = limits.silence_for(entry) - (now - quiet_since(entry))
    return f"gives up after {_coarse(left)} more of silence ({NODE_SILENCE_VAR})"


def _coarse(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} min"
    return duration(seconds)
