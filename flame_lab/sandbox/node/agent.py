"""A sandbox hospital node: approves, verifies, runs and reports analyses, as a FLAME node does.

The agent meets the hub only over HTTP, through flame_hub, with its own client credentials.
The hub decides nothing here: the agent verifies the signed bundle against researcher keys its
admin trusts and against the analysis it was distributed in (analysis, project, nodes, hub),
records its own decision in the node's ledger (auto policy, or the admin's), runs only a build
whose hash the ledger approved and whose run nonce it never ran, talks only to peers whose
identities are pinned at this node, and seals the aggregator's result to the manifest's
recipients. The hub's approvalStatus is a report of the ledger, never a reason to run.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from flame_lab.errors import (
    BundleError,
    FlameLabError,
    HubError,
    HubUnreachable,
    NotFound,
    PolicyRefused,
)
from flame_lab.hubclient import (
    HubClients,
    HubEndpoints,
    every,
    hub_errors,
    hub_outage,
    long_poll_timeout,
    patiently,
    with_client_credentials,
)
from flame_lab.privacy import NodePolicy, load_policy
from flame_lab.release import node as release_node
from flame_lab.release.ledger import PrivacyBudget
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.heartbeat import Heartbeat
from flame_lab.sandbox.node.layout import NodeFolder, PeerPin
from flame_lab.sandbox.node.ledger import APPROVED, PENDING, Decision, Ledger
from flame_lab.sandbox.node.messenger import HubTransport
from flame_lab.sandbox.node.runner import RunSpec, run_analysis
from flame_lab.sandbox.node.service import NodeFacts, NodeService
from flame_lab.security import bundle as bundles
from flame_lab.security import envelope, payload, statements
from flame_lab.security.keys import NodeIdentity, NodePublicIdentity, load_node_identity
from flame_lab.star.runtime import FinalSubmission

log = logging.getLogger(__name__)

# Between looks at the hub an agent waits on the hub's change feed for its analyses (answered
# at once when something changed), at most CHANGE_WAIT_SECONDS; ticks are MIN_TICK_SECONDS
# apart at the closest. POLL_SECONDS is the sleep instead, against a hub without the feed.
CHANGE_WAIT_SECONDS = 2.0
MIN_TICK_SECONDS = 0.05
POLL_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0  # the longest pause between looks at a hub that does not answer
WATCH_SECONDS = 1.0
WATCHES_PER_SECOND = 10.0  # a run's agents together look at most this often (above 10 nodes)
# The hub calls a node offline after 15 s without a request; a peer must also stay offline for
# this long before a run is stopped, as a loaded hub (50 agents on 2 cores) can lag behind.
OFFLINE_GRACE_SECONDS = 5.0
MAX_COMMENT = 480
FINAL_PHASES = frozenset({"executed", "failed", "rejected"})
# A node's links to analyses that may still need it (rapiq: "!" negates, "," lists values).
OPEN_LINKS = {"execution_status": "!executed,failed", "approval_status": "!rejected"}


class PeerKeyError(FlameLabError):
    """A peer node's key is not pinned here, or the hub shows another key than the pin."""

    default_hint = (
        "Compare the node's public identity with its admin out of band; the sandbox pins "
        "peers from each node's public.json at `sandbox up`."
    )


def _short(text: str) -> str:
    """One line for the hub's comment: a summary first, else a traceback's exception line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Hint:")] or [text.strip()]
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= MAX_COMMENT else line[: MAX_COMMENT - 1] + "…"


@dataclass
class Outage:
    """The agent's view of a hub that does not answer: since when, and how long to back off."""

    failures: int = 0
    since: float = 0.0
    message: str = ""

    def begin(self, message: str) -> bool:
        """Count a failed look; True if it is worth a log line (a new or changed problem)."""
        if not self.failures:
            self.since = time.monotonic()
        self.failures += 1
        fresh = message != self.message
        self.message = message
        return fresh

    def delay(self) -> float:
        return min(BACKOFF_MAX_SECONDS, POLL_SECONDS * 2 ** min(self.failures - 1, 8))

    def end(self) -> float:
        """The outage is over: its length in seconds."""
        lasted = time.monotonic() - self.since
        self.failures, self.message = 0, ""
        return lasted


@dataclass
class Run:
    """One analysis this node is running: its thread and the flag that stops it."""

    thread: threading.Thread
    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    hub_failure: HubError | None = None  # the hub's answer that failed the result's upload
    over: bool = False  # stopped as the aggregator reported the analysis executed


class NodeAgent:
    """One hospital node of the sandbox federation."""

    def __init__(self, home: Path, name: str, hub_url: str, *, keep_state: bool = True) -> None:
        """``keep_state=False``: an admin's short-lived view that leaves agent.json to the agent."""
        self.folder = NodeFolder.of(home, name)
        self.keep_state = keep_state
        secrets = self.folder.read_secrets()
        self.node_id: str = secrets["nodeId"]
        self.identity: NodeIdentity = load_node_identity(
            self.folder.identity, self.folder.read_passphrase()
        )
        # status reports and log lines are signed: the hub can show them, not make them up
        self.signer = statements.Signer(self.identity, self.node_id)
        self._links: dict[str, dict[str, Any]] = {}  # link id -> what this node last reported
        # one status in flight per link: a heartbeat never overtakes the run's own last word
        self._sending: dict[str, threading.Lock] = {}
        self.heartbeat = Heartbeat.from_env()
        self._policy_mtime = -1.0
        self.policy = NodePolicy()
        self.reload_policy()
        self.ledger = Ledger(self.folder.ledger)
        self.hub_identity = self.folder.hub_identity()
        self.pins: dict[str, PeerPin] = self.folder.peer_pins()
        self.clients: HubClients = with_client_credentials(
            HubEndpoints.under(hub_url), secrets["clientId"], secrets["clientSecret"]
        )
        self.state: dict[str, dict[str, Any]] = self.folder.read_state()
        self.runs: dict[str, Run] = {}
        self.patience = hub_outage()
        self._lock = threading.Lock()
        self._nodes: dict[str, Any] = {}
        self._data: NodeData | None = None
        self.disk_problem = ""  # why the state file could not be written last ("" if it was)
        self.refresh_nodes()
        self.type = self._nodes[self.node_id].type

    def __repr__(self) -> str:
        return f"NodeAgent({self.folder.name!r})"

    @property
    def core(self):
        return self.clients.core

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def data(self) -> NodeData:
        if self._data is None:
            self._data = NodeData.load(self.folder.data)
        return self._data

    def reload_policy(self) -> None:
        """Read policy.toml again if the data steward changed it: edits apply to what comes next."""
        try:
            mtime = self.folder.policy.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime == self._policy_mtime:
            return
        self.policy = load_policy(self.folder.policy) if mtime else NodePolicy()
        self.budget = PrivacyBudget(self.folder.budget, self.policy.epsilon_per_researcher)
        self._policy_mtime = mtime
        self.described = False  # the data description names the policy: publish it again

    def publish_description(self) -> None:
        """Tell the hub what this node holds (columns, types, count bands, codes, policy),
        never a row; researchers read it as the data dictionary. Best effort."""
        from flame_lab import datadict
        from flame_lab.sandbox.node.synthetic import DICTIONARY_FILE

        notes = None
        notes_file = self.folder.data / DICTIONARY_FILE
        if notes_file.is_file():
            try:
                notes = json.loads(notes_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("%s: %s is unreadable; described without it", self.name, notes_file)
        self.described = True  # one try per policy; a hub that was away hears at the next
        try:
            description = datadict.describe(
                self.name,
                tables=self.data.s3,
                resources=self.data.fhir.by_type(),
                policy=self.policy.to_dict(),
                notes=notes if isinstance(notes, dict) else None,
                record_count=self.data.record_count,
                described_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            with hub_errors("publish this node's data description"):
                response = self.clients.core_http.put(
                    f"nodes/{self.node_id}/dataset", json=description.to_dict()
                )
            if response.status_code not in (200, 202):
                log.warning("%s: the hub refused the data description", self.name)
        except HubUnreachable as exc:
            self.described = False
            log.warning("%s: %s", self.name, exc.message)
        except FlameLabError as exc:
            log.warning("%s: %s", self.name, exc.message)

    # -- hub records -------------------------------------------------------------------------
    def refresh_nodes(self) -> None:
        with hub_errors("list the federation's nodes"):
            self._nodes = {str(n.id): n for n in every(self.core.get_nodes)}

    def peer_key(self, node_id: str) -> ec.EllipticCurvePublicKey:
        """A peer's messaging key from this node's pin, never from the hub's node record."""
        pin = self.pins.get(node_id)
        if pin is None:
            raise PeerKeyError(
                f"node {self._name_of(node_id)} has no pinned identity at {self.name}: "
                "refusing to exchange messages with it"
            )
        return pin.identity.ecdh_key

    def _name_of(self, node_id: str) -> str:
        node = self._nodes.get(node_id)
        return f"{node.name} ({node_id})" if node is not None else node_id

    def check_peers(self, participants: tuple[str, ...]) -> None:
        """Every other participant is pinned here, and the hub shows the pinned key for it."""
        self.pins = self.folder.peer_pins()
        self.refresh_nodes()
        for node_id in participants:
            if node_id == self.node_id:
                continue
            pinned = self.peer_key(node_id)
            node = self._nodes.get(node_id)
            try:
                shown = NodePublicIdentity.ecdh_key_from_hub(node.public_key) if node else None
            except FlameLabError:
                shown = None
            if shown is None or shown.public_numbers() != pinned.public_numbers():
                raise PeerKeyError(
                    f"the hub's key for node {self._name_of(node_id)} differs from the identity "
                    f"pinned for it at {self.name}: refusing to exchange messages with it"
                )

    def _save(self, analysis_id: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            entry = self.state.setdefault(analysis_id, {})
            entry.update(changes)
            if self.keep_state:
                self._write_state()
            return dict(entry)

    def _write_state(self) -> None:
        """The state file. This node's own disk full (or failing) is no reason to stop serving:
        the state stays in memory, the hub is still told, and the file is written again at
        the next change or look. Logged once per problem."""
        try:
            self.folder.write_state(self.state)
        except OSError as exc:
            problem = exc.strerror or str(exc)
            if problem != self.disk_problem:
                log.error(
                    "%s: cannot write its state file %s (%s); kept in memory until it can",
                    self.name,
                    self.folder.state,
                    problem,
                )
            self.disk_problem = problem
            return
        if self.disk_problem:
            log.info("%s: its state file is written again", self.name)
        self.disk_problem = ""

    def node_log(self, analysis_id: str, level: str, message: str) -> None:
        try:
            with hub_errors("send a log line"):
                signed = self.signer.log(analysis_id, level, message)
                self.core.create_analysis_node_log(analysis_id, self.node_id, level, signed)
        except FlameLabError:
            log.warning("could not send a log line of %s to the hub", analysis_id)

    def _track(self, link: Any) -> None:
        """Remember a link's reported state, as a base for this node's signed status."""
        if str(link.id) not in self._links:
            found = statements.open_status(
                link.comment,
                analysis_id=str(link.analysis_id),
                node_id=self.node_id,
                approval=None,
                execution=None,
                progress=0,
                key=None,
            )
            self._links[str(link.id)] = {
                "analysis": str(link.analysis_id),
                "approval": link.approval_status,
                "execution": link.execution_status,
                "progress": int(link.execution_progress or 0),
                "text": found.text,
            }

    def _update(
        self, link_id: str, *, patient: bool = True, beat: bool = False, **fields: Any
    ) -> None:
        """Report to the hub, the whole status signed in the comment; idempotent, so retried
        through a hub outage (FLAME_LAB_HUB_OUTAGE) unless ``patient=False`` (one try).
        ``beat``: a heartbeat, the last status said again (skipped if another is in flight)."""
        if link_id not in self._links:
            self._track(self._patiently("read this node's link", lambda: self._link(link_id)))
        with self._lock:
            sending = self._sending.setdefault(link_id, threading.Lock())
        if not sending.acquire(blocking=not beat):
            return
        try:
            self._send_status(link_id, patient, beat, fields)
        finally:
            sending.release()
        self.heartbeat.said(link_id)

    def _send_status(self, link_id: str, patient: bool, beat: bool, fields: dict) -> None:
        with self._lock:
            known = self._links[link_id]
            if beat and known["execution"] in ("started", "executing"):
                # said again as the node last said it (a progress the hub missed included)
                fields = {"execution_status": known["execution"]}
                fields["execution_progress"] = int(known["progress"] or 0)
            names = {
                "approval_status": "approval",
                "execution_status": "execution",
                "execution_progress": "progress",
                "comment": "text",
            }
            for name, value in fields.items():
                if name in names:
                    known[names[name]] = value
            fields = {
                **fields,
                "comment": self.signer.status(
                    known["analysis"],
                    known["approval"],
                    known["execution"],
                    int(known["progress"] or 0),
                    str(known["text"] or ""),
                ),
            }
        doing = "update this node's analysis status"
        if not patient:
            with hub_errors(doing, self.clients.endpoints.core_url):
                self.core.update_analysis_node(link_id, **fields)
            return
        self._patiently(doing, lambda: self.core.update_analysis_node(link_id, **fields))

    def beat(self) -> None:
        """A signed "still here" for each analysis this node is busy with (running it, or
        waiting for its admin) that it said nothing of for a heartbeat interval; one try."""
        with self._lock:
            busy = [
                link_id
                for link_id, known in self._links.items()
                if known["analysis"] in self.runs
                or self.state.get(known["analysis"], {}).get("phase") == "awaiting-admin"
            ]
        for link_id in self.heartbeat.due(busy):
            try:
                self._update(link_id, patient=False, beat=True)
            except FlameLabError as exc:
                log.info("%s: a heartbeat did not reach the hub: %s", self.name, exc.message)

    def _report_progress(self, link_id: str, progress: int) -> None:
        """A run's progress, one try: an analysis is neither held through a hub outage for it
        nor ended by one (the next report, at the latest the end's, carries it)."""
        try:
            self._update(link_id, patient=False, execution_progress=progress)
        except FlameLabError as exc:
            log.warning("%s: progress %d%% not reported: %s", self.name, progress, exc.message)

    def _link(self, link_id: str) -> Any:
        link = self.core.get_analysis_node(link_id)
        if link is None:
            raise NotFound(f"the hub no longer knows this node's link {link_id}")
        return link

    def _patiently(self, doing: str, call: Callable[[], Any]) -> Any:
        return patiently(doing, call, self.patience, url=self.clients.endpoints.core_url)

    # -- the loop ------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        self.node_log_startup()
        version: int | None = None
        outage = Outage()
        while not stop.is_set():
            ticked = time.monotonic()
            try:
                self.tick()
                if not self.folder.ready.exists():
                    self.folder.ready.write_text(str(os.getpid()))
            except FlameLabError as exc:
                # the hub is away (or refuses): say so once, then back off, not 4 lines a second
                if outage.begin(exc.message):
                    log.warning("%s: %s (retrying with backoff)", self.name, exc.message)
                stop.wait(outage.delay())
                continue
            except (OSError, sqlite3.Error) as exc:  # its own disk: keep serving, look again
                log.error(
                    "%s: %s (looking again in %g s)",
                    self.name,
                    _disk_failure(exc),
                    BACKOFF_MAX_SECONDS,
                )
                stop.wait(BACKOFF_MAX_SECONDS)
                continue
            if outage.failures:
                log.info("%s: the hub answers again after %.0f s", self.name, outage.end())
            self.beat()
            stop.wait(max(0.0, ticked + MIN_TICK_SECONDS - time.monotonic()))
            if not stop.is_set():
                version = self.wait_for_change(version, stop)
        for run in list(self.runs.values()):
            run.reason = "the node agent shut down"
            run.stop.set()
        for run in list(self.runs.values()):
            run.thread.join(timeout=15)

    def wait_for_change(self, version: int | None, stop: threading.Event) -> int | None:
        """Until the hub reports a change to this node's analyses after ``version`` (at most
        CHANGE_WAIT_SECONDS); the hub's new version. Without the hub's feed: sleep, then poll."""
        params = {"wait": f"{CHANGE_WAIT_SECONDS:g}"}
        if version is not None:
            params["after"] = str(version)
        try:
            with hub_errors("wait for changes to this node's analyses"):
                response = self.clients.core_http.get(
                    f"nodes/{self.node_id}/changes",
                    params=params,
                    timeout=long_poll_timeout(self.clients, CHANGE_WAIT_SECONDS),
                )
            if response.status_code == 200:
                return int(response.json()["data"]["version"])
        except (FlameLabError, ValueError, KeyError, TypeError):
            pass
        stop.wait(POLL_SECONDS)
        return version

    def node_log_startup(self) -> None:
        log.info("node %s (%s) serving %s", self.name, self.type, self.clients.endpoints)

    def tick(self) -> None:
        """One look at the hub: every analysis this node takes part in gets its next step."""
        self.reload_policy()
        if self.disk_problem and self.keep_state:
            with self._lock:
                self._write_state()
        if not self.described:
            self.publish_description()
        with hub_errors("list this node's analyses"):
            # the ones still open: a long-lived node's finished history would grow every tick
            links = every(
                self.core.find_analysis_nodes, filter=OPEN_LINKS | {"node_id": self.node_id}
            )
        present = set()
        for link in links:
            analysis_id = str(link.analysis_id)
            present.add(analysis_id)
            try:
                self.step(link)
            except FlameLabError as exc:
                log.warning("%s: analysis %s: %s", self.name, analysis_id, exc.message)
            except (OSError, sqlite3.Error) as exc:  # this node's own disk: the next look retries
                log.error("%s: analysis %s: %s", self.name, analysis_id, _disk_failure(exc))
        for analysis_id, run in list(self.runs.items()):
            if analysis_id not in present and not run.stop.is_set():
                run.reason = "the analysis was cancelled (it is gone from the hub)"
                run.stop.set()

    def step(self, link: Any) -> None:
        analysis_id = str(link.analysis_id)
        entry = self.state.get(analysis_id, {})
        if analysis_id in self.runs:
            return
        self._track(link)
        if entry.get("phase") in FINAL_PHASES:
            self.converge(link, entry)  # listed as open: the hub has not heard how it ended
            return
        decision = self.ledger.for_analysis(analysis_id)
        # the approval this node signs is its ledger's, never the hub's (which may be forged,
        # or the hub's own for an aggregator); the admin may have decided meanwhile
        self._links[str(link.id)]["approval"] = (
            decision.state if decision is not None and decision.state != PENDING else None
        )
        if decision is None:
            if link.approval_status == "rejected":
                self._save(analysis_id, phase="rejected")
                return
            with hub_errors(f"read analysis {analysis_id}"):
                analysis = self.core.get_analysis(analysis_id)
            if analysis is not None and analysis.configuration_locked:
                self.review(link, analysis)
            return  # else the researcher is still configuring it
        if decision.state != APPROVED:
            self.report(link, decision)
            if decision.state == PENDING and link.approval_status == "approved":
                self._refuse_hub_approval(link, decision)
            return
        if link.approval_status != "approved":
            if link.approval_status == "rejected":  # the hub says no: never run on doubt
                self._save(analysis_id, phase="rejected")
            else:
                self.report(link, decision)
            return
        if link.execution_status in ("started", "executing"):
            unsealed = self._resume_sealed(link, entry)
            if unsealed is None:
                return  # sealed before the agent stopped: uploaded and reported executed
            self._fail(
                link,
                f"node {self.name} restarted while the analysis was running (its agent had "
                f"stopped, and the run's processes with it){unsealed}; not re-run, as a node "
                "runs each submission once",
            )
            return
        if link.execution_status is not None:
            self._save(analysis_id, phase=link.execution_status)
            return
        with hub_errors(f"read analysis {analysis_id}"):
            analysis = self.core.get_analysis(analysis_id)
        if analysis is not None and analysis.distribution_status == "executed":
            self.start(link, analysis)

    def _resume_sealed(self, link: Any, entry: dict[str, Any]) -> str | None:
        """After a restart: an aggregator whose run had sealed its final result (whole on this
        node's disk, or uploaded) finishes it, uploading the same bytes and reporting executed,
        never running anything again (None). Else what of the result is missing ("" if the
        node seals nothing), for the failure's reason."""
        if self.type != "aggregator":
            return ""
        analysis_id = str(link.analysis_id)
        kept: dict[str, str] = entry.get("outbox") or {}
        folder = self._outbox(analysis_id)
        if not kept and not entry.get("resultUploaded"):
            return "; its final result had not been sealed"
        missing = sorted(name for name in kept if not (folder / name).is_file())
        if missing:
            return (
                "; the sealed result kept on its disk is incomplete (missing "
                + ", ".join(missing)
                + ")"
            )
        self._save(analysis_id, phase="executed", reported=False, resumed=True)
        self.node_log(
            analysis_id,
            "notice",
            f"{self.name}: restarted after the analysis had sealed its final result; the "
            "result kept on this node's disk goes to the hub as it was sealed (not re-run)",
        )
        self.converge(link, self.state[analysis_id])
        return None

    def converge(self, link: Any, entry: dict[str, Any]) -> None:
        """Tell the hub how an analysis ended here while it could not be told (the hub was
        down or stalled): the node's state file is the truth, the hub catches up."""
        analysis_id, phase = str(link.analysis_id), entry.get("phase")
        reason = str(entry.get("reason") or "")
        if phase == "rejected" and link.approval_status != "rejected":
            fields: dict[str, Any] = {"approval_status": "rejected"}
        elif phase == "failed" and link.execution_status != "failed":
            fields = {"execution_status": "failed"}
        elif phase == "executed" and link.execution_status != "executed":
            try:
                self._send_kept_result(analysis_id)
            except HubUnreachable:
                raise  # the next tick tries again
            except FlameLabError as exc:  # refused for good (e.g. a full disk): said, not retried
                self._drop_kept_result(analysis_id)
                reason = f"{self.name}: the hub refused the sealed result kept here: {exc.message}"
                self._save(analysis_id, phase="failed", reason=reason)
                phase = "failed"
                fields = {"execution_status": "failed"}
            else:
                fields = {"execution_status": "executed", "execution_progress": 100}
        else:
            return
        if reason:
            fields["comment"] = _short(reason)
        self._update(str(link.id), **fields)
        self._save(analysis_id, reported=True)
        log.info("%s: told the hub that analysis %s ended %s", self.name, analysis_id, phase)
        self.node_log(
            analysis_id,
            "error" if phase == "failed" else "info",
            f"{self.name}: reported late ({phase}"
            + (f": {reason}" if reason else "")
            + "); "
            + (
                "its agent had restarted after the result was sealed"
                if entry.get("resumed")
                else "the hub could not be told when it happened"
            ),
        )

    def _refuse_hub_approval(self, link: Any, decision: Decision) -> None:
        """The hub reports an approval this node never gave: say so; fail once it is sent out."""
        analysis_id = str(link.analysis_id)
        with hub_errors(f"read analysis {analysis_id}"):
            analysis = self.core.get_analysis(analysis_id)
        if analysis is None or analysis.distribution_status is None:
            return  # the hub approves aggregators at creation; it matters once it distributes
        self._fail(
            link,
            f"the hub reports {self.name}'s approval, but this node's admin has not approved "
            f"bundle {decision.bundle_hash[:16]}: it does not run",
        )

    # -- approval ------------------------------------------------------------------------------
    def fetch_bundle(self, analysis_id: str, built_hash: str | None) -> bundles.SignedBundle:
        """The analysis's code as the hub serves it: before the build, the CODE bucket; after,
        the immutable build, whose hash must be the one the hub announced."""
        with hub_errors(f"find the code of analysis {analysis_id}"):
            found = self.core.find_analysis_buckets(
                filter={"analysis_id": analysis_id, "type": "CODE"}
            )
        if not found:
            raise NotFound(f"analysis {analysis_id} has no CODE bucket yet")
        with hub_errors(f"download the code of analysis {analysis_id}"):
            response = self.clients.storage_http.get(f"buckets/{found[0].bucket_id}/stream")
        if response.status_code != 200:
            raise NotFound(f"the hub answered {response.status_code} for the code tar")
        if built_hash is not None and response.headers.get("X-Build-Hash") != built_hash:
            raise BundleError("the hub served code that is not the announced build")
        return bundles.SignedBundle.from_bucket_files(_read_tar(response.content))

    def verify(self, signed: bundles.SignedBundle) -> bundles.Manifest:
        return bundles.verify(signed, self.folder.trusted_researchers())

    def expected_binding(self, analysis: Any, links: list[Any] | None = None) -> bundles.Binding:
        """What a bundle distributed in ``analysis`` must be signed for, as this node sees it."""
        analysis_id = str(analysis.id)
        if links is None:
            with hub_errors(f"list the nodes of analysis {analysis_id}"):
                links = every(self.core.find_analysis_nodes, filter={"analysis_id": analysis_id})
        return bundles.Binding(
            analysis_id,
            str(analysis.project_id),
            tuple(str(x.node_id) for x in links),
            self.hub_identity,
        )

    def check(
        self, signed: bundles.SignedBundle, analysis: Any, links: list[Any] | None = None
    ) -> bundles.Manifest:
        """Signed by a trusted researcher, intact, in date, and bound to this very analysis."""
        manifest = self.verify(signed)
        binding = self.expected_binding(analysis, links)
        bundles.check_binding(manifest, binding, hub_aliases=(self.clients.endpoints.core_url,))
        if self.node_id not in binding.node_ids:
            raise bundles.BindingMismatch(f"the analysis does not list node {self.name}")
        return manifest

    def review(self, link: Any, analysis: Any) -> None:
        """Verify a locked analysis's code and note it in the ledger; the auto policy approves."""
        analysis_id = str(link.analysis_id)
        try:
            signed = self.fetch_bundle(analysis_id, None)
            manifest = self.check(signed, analysis)
        except BundleError as exc:
            self.refuse(link, f"the code did not verify: {exc.message}")
            return
        decision = self.ledger.receive(
            signed.bundle_hash, analysis_id, str(analysis.name or ""), manifest.signer
        )
        if decision.state == PENDING and self.policy.approval == "auto":
            decision = self.ledger.decide(
                signed.bundle_hash,
                True,
                f"verified: signed by researcher {manifest.signer}",
                "policy: auto",
                signed.files,
            )
        self._save(analysis_id, bundleHash=signed.bundle_hash, signer=manifest.signer)
        self.report(link, decision)

    def report(self, link: Any, decision: Decision) -> None:
        """Tell the hub what the ledger decided, signed (once; again if the hub shows other)."""
        analysis_id = str(link.analysis_id)
        if decision.state == PENDING:
            if self.state.get(analysis_id, {}).get("phase") != "awaiting-admin":
                self._save(analysis_id, phase="awaiting-admin")
                self.node_log(
                    analysis_id,
                    "notice",
                    f"{self.name}: the code verified (signed by {decision.signer}); waiting for "
                    f"the node admin: flame-lab node review {analysis_id} --node {self.name}, "
                    "then node approve|reject",
                )
            return
        approve = decision.state == APPROVED
        told = self.state.get(analysis_id, {}).get("decisionReported")
        if link.approval_status != decision.state or told != decision.state:
            self.decide(link, approve, decision.reason or f"{decision.state} by {self.name}")
        elif not approve:
            self._save(analysis_id, phase="rejected")

    def refuse(self, link: Any, reason: str) -> None:
        """Reject code that did not verify here (no ledger entry: it never could run)."""
        self.decide(link, False, reason)

    def decide(self, link: Any, approve: bool, reason: str) -> None:
        """Report this node's decision to the hub, with its reason as the comment."""
        analysis_id = str(link.analysis_id)
        self._track(link)
        state = "approved" if approve else "rejected"
        self._update(str(link.id), approval_status=state, comment=reason)
        self._save(analysis_id, phase=state, decisionReported=state)
        self.node_log(
            analysis_id,
            "info" if approve else "warn",
            f"{self.name} {'approved' if approve else 'rejected'} the analysis: {reason}",
        )

    # -- running -------------------------------------------------------------------------------
    def start(self, link: Any, analysis: Any) -> None:
        analysis_id = str(link.analysis_id)
        run = Run(threading.Thread(target=lambda: None))
        run.thread = threading.Thread(
            target=self._run_guarded,
            args=(link, analysis, run),
            name=f"run-{analysis_id[:8]}",
            daemon=True,
        )
        self.runs[analysis_id] = run
        self._save(analysis_id, phase="running")
        run.thread.start()

    def _run_guarded(self, link: Any, analysis: Any, run: Run) -> None:
        analysis_id = str(link.analysis_id)
        try:
            self._run(link, analysis, run)
        except FlameLabError as exc:  # the hub shows it as this node's reason
            self._fail(link, exc.message)
        except (OSError, sqlite3.Error) as exc:
            log.exception("%s: analysis %s: its own disk failed", self.name, analysis_id)
            self._fail(link, _disk_failure(exc))
        except Exception as exc:  # the node must report, not die silently
            log.exception("%s: analysis %s crashed the agent's run", self.name, analysis_id)
            self._fail(link, f"the node failed internally ({type(exc).__name__})")
        finally:
            self.runs.pop(analysis_id, None)

    def _fail(self, link: Any, reason: str) -> None:
        """Fail here first (the state file), then tell the hub; if the hub cannot be told now,
        ``converge`` tells it once it answers again."""
        analysis_id = str(link.analysis_id)
        if self.state.get(analysis_id, {}).get("outbox"):
            self._drop_kept_result(analysis_id)  # a failed run's result never leaves
        self._save(analysis_id, phase="failed", reason=reason, reported=False)
        self.node_log(analysis_id, "error", f"{self.name}: {reason}")
        try:
            self._update(str(link.id), execution_status="failed", comment=_short(reason))
        except FlameLabError:
            log.warning(
                "could not report the failure of %s yet; will when the hub answers", analysis_id
            )
            return
        self._save(analysis_id, reported=True)

    def _run(self, link: Any, analysis: Any, run: Run) -> None:
        analysis_id = str(link.analysis_id)
        link_id = str(link.id)
        self._update(link_id, execution_status="started", execution_progress=0)
        # reads before the run: ridden through a hub restart (FLAME_LAB_HUB_OUTAGE), not fatal
        signed = self._patiently(
            f"download the code of analysis {analysis_id}",
            lambda: self.fetch_bundle(analysis_id, analysis.build_hash),
        )
        links = self._patiently(
            f"list the nodes of analysis {analysis_id}",
            lambda: every(self.core.find_analysis_nodes, filter={"analysis_id": analysis_id}),
        )
        manifest = self.check(signed, analysis, links)
        self.ledger.require_approved(signed.bundle_hash)
        participants = tuple(str(x.node_id) for x in links)
        self._patiently("check the peers' keys", lambda: self.check_peers(participants))
        self.ledger.claim_run(manifest.run_nonce, analysis_id, signed.bundle_hash)
        folder = self.folder.runs / analysis_id
        shutil.rmtree(folder, ignore_errors=True)
        code_dir, work_dir = folder / "code", folder / "work"
        for path, content in signed.files.items():
            target = code_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        # the whole CODE bucket, manifest too, as a FLAME image build puts it in /opt/code
        (code_dir / bundles.MANIFEST_NAME).parent.mkdir(parents=True, exist_ok=True)
        (code_dir / bundles.MANIFEST_NAME).write_bytes(signed.manifest_bytes)
        work_dir.mkdir(parents=True)

        aggregator = next((p for p in participants if self._type(p) == "aggregator"), self.node_id)
        facts = NodeFacts(
            node_id=self.node_id,
            role="aggregator" if self.type == "aggregator" else "default",
            participant_ids=participants,
            aggregator_id=aggregator,
            analysis_id=analysis_id,
            project_id=str(analysis.project_id),
        )
        transport = HubTransport(
            self.clients,
            analysis_id,
            self.node_id,
            self.identity,
            self.peer_key,
            on_rejected=lambda why: self.node_log(analysis_id, "warn", why),
        )
        data = self.data if facts.role == "default" else None
        hooks = release_node.RunHooks(
            self, analysis_id, manifest, signed.bundle_hash, folder, stop=run
        )
        service = NodeService(
            facts,
            data,
            self.policy,
            transport,
            on_log=hooks.analysis_log.write,
            on_node_log=lambda level, text: self.node_log(analysis_id, level, text),
            on_progress=lambda p: self._report_progress(link_id, int(p)),
            on_final=hooks.sealed(self._sealer(analysis_id, manifest, signed.bundle_hash, run)),
            on_refusal=hooks.refused,
            charge=hooks.charge,
            node_name=self.name,
        )
        self._update(link_id, execution_status="executing")
        self.node_log(analysis_id, "info", f"{self.name}: running {manifest.entrypoint}")
        watcher = threading.Thread(
            target=self._watch, args=(analysis_id, participants, run, aggregator), daemon=True
        )
        watcher.start()
        outcome = run_analysis(
            RunSpec(
                code_dir,
                manifest.entrypoint,
                work_dir,
                self.policy.limits,
                interpreter=self._image_python(analysis_id, analysis),
            ),
            service,
            service.output,
            stop=run.stop,
        )
        run.stop.set()
        hooks.finish()
        self.node_log(analysis_id, "debug", f"{self.name}: confinement {outcome.confinement}")
        shutil.rmtree(work_dir, ignore_errors=True)
        sealed = facts.role == "aggregator" and self._result_sealed(analysis_id)
        # the aggregator's result is at the hub, its "analysis finished" never came (its agent
        # restarted after sealing): this node's part is over, not failed
        over = run.over and outcome.stopped and facts.role != "aggregator"
        failure = run.hub_failure or transport.failure
        if failure is not None and not outcome.ok and not (sealed or over):
            raise FlameLabError(f"{self.name}: {failure.message}")  # the cause, not a traceback
        if over:
            self.node_log(analysis_id, "notice", f"{self.name}: stopped its part: {run.reason}")
        elif failure is not None and not outcome.ok:
            # the final result is sealed (and uploaded, or kept to upload): the hub failed only
            # the telling of the others that the analysis is over; the run's work is done
            log.warning("%s: %s after the result was sealed", self.name, failure.message)
        elif outcome.stopped:
            raise FlameLabError(run.reason or "the node stopped the analysis")
        elif not outcome.ok:
            raise FlameLabError(release_node.public_failure(outcome.failure or ""))
        if facts.role == "aggregator" and service.submission is None:
            raise FlameLabError("the aggregator finished without submitting a final result")
        self._save(analysis_id, phase="executed", reported=False)
        self.node_log(analysis_id, "info", f"{self.name}: finished")
        try:
            self._send_kept_result(analysis_id)  # the result first: "executed" means it is there
            self._update(link_id, execution_status="executed", execution_progress=100)
        except FlameLabError:
            log.warning(
                "could not report %s as executed yet; will when the hub answers", analysis_id
            )
            return
        self._save(analysis_id, reported=True)

    def _image_python(self, analysis_id: str, analysis: Any) -> Path | None:
        """With image_environments: the Python of the analysis's master image's stand-in."""
        if not self.policy.image_environments:
            return None
        from flame_lab.images.environments import environment_for

        image = self._patiently(
            "read the analysis's master image",
            lambda: self.core.get_master_image(str(analysis.master_image_id)),
        )
        if image is None:
            raise FlameLabError("the analysis names no master image this hub knows")
        env = environment_for(str(image.virtual_path), self.folder.root.parent.parent / "images")
        for note in env.notes:
            self.node_log(analysis_id, "notice", f"{self.name}: image stand-in: {note}")
        self.node_log(analysis_id, "info", f"{self.name}: running in {env.image}'s stand-in")
        return env.python

    def _type(self, node_id: str) -> str:
        if node_id not in self._nodes:
            self.refresh_nodes()
        node = self._nodes.get(node_id)
        return node.type if node is not None else "default"

    def _watch(
        self, analysis_id: str, participants: tuple[str, ...], run: Run, aggregator: str = ""
    ) -> None:
        """Stop the run when the analysis is cancelled, another node failed, or went offline
        (offline for OFFLINE_GRACE_SECONDS on end: a busy hub or machine delays polls), or the
        aggregator reported it executed while this data node still runs (for as long)."""
        offline_since: dict[str, float] = {}
        done_since: float | None = None
        # every agent of a run watches: keep the hub's load from it flat as federations grow
        period = max(WATCH_SECONDS, len(participants) / WATCHES_PER_SECOND)
        while not run.stop.wait(period):
            try:
                with hub_errors("watch the analysis"):
                    analysis = self.core.get_analysis(analysis_id)
                    links = every(
                        self.core.find_analysis_nodes, filter={"analysis_id": analysis_id}
                    )
                    # the hub includes each link's node (with its online flag)
                    nodes = {str(n.node.id): n.node for n in links if n.node is not None}
                    if len(nodes) < len(links):
                        nodes = {str(n.id): n for n in every(self.core.get_nodes)}
            except FlameLabError:
                continue
            reason = ""
            if analysis is None:
                reason = "the analysis was cancelled (it is gone from the hub)"
            for other in links:
                other_id = str(other.node_id)
                if other_id == self.node_id or reason:
                    continue
                name = nodes[other_id].name if other_id in nodes else other_id
                if other.execution_status == "failed":
                    said = statements.unsigned_text(other.comment or "") or "no reason given"
                    reason = f"node {name} failed: {said}"
                elif other.execution_status in ("started", "executing") and not (
                    other_id in nodes and nodes[other_id].online
                ):
                    since = offline_since.setdefault(other_id, time.monotonic())
                    if time.monotonic() - since >= OFFLINE_GRACE_SECONDS:
                        reason = f"node {name} went offline during the run"
                elif other_id == aggregator and self._signed_executed(analysis_id, other):
                    # normally its "analysis finished" message ends this run first
                    done_since = done_since or time.monotonic()
                    if time.monotonic() - done_since >= OFFLINE_GRACE_SECONDS:
                        run.over = True
                        reason = (
                            f"node {name}, the aggregator, reported the analysis executed "
                            "(its final result is at the hub) before its 'analysis finished' "
                            "message reached this node"
                        )
                else:
                    offline_since.pop(other_id, None)
            if reason:
                run.reason = reason
                run.stop.set()

    def _signed_executed(self, analysis_id: str, link: Any) -> bool:
        """The peer itself signed "executed" (by its pinned key): this node ends its part on
        that word only, never on the hub's."""
        pin = self.pins.get(str(link.node_id))
        if pin is None or link.execution_status != "executed":
            return False
        said = statements.open_status(
            link.comment,
            analysis_id=analysis_id,
            node_id=str(link.node_id),
            approval=link.approval_status,
            execution=link.execution_status,
            progress=int(link.execution_progress or 0),
            key=pin.identity,
        )
        return said.verified is True

    def _sealer(
        self, analysis_id: str, manifest: bundles.Manifest, bundle_hash: str, run: Run
    ) -> Callable[[FinalSubmission], dict[str, str]]:
        def seal_and_upload(submission: FinalSubmission) -> dict[str, str]:
            files = []
            for sequence, released in enumerate(submission.results):
                value = released.value
                if isinstance(value, (bytes, bytearray)):
                    data, content_type = payload.encode_bytes(value)
                else:
                    data, content_type = payload.encode(value)
                if not self.policy.node_sealing:  # as a real FLAME node: stored as written
                    files.append(
                        {
                            "file_name": f"result-{sequence:03d}",
                            "content": data,
                            "content_type": content_type,
                        }
                    )
                    continue
                blob = envelope.seal(
                    data,
                    analysis_id=analysis_id,
                    node_id=self.node_id,
                    bundle_hash=bundle_hash,
                    run_nonce=manifest.run_nonce,
                    sequence=sequence,
                    count=len(submission.results),
                    content_type=content_type,
                    recipients=manifest.recipients,
                    node=self.identity,
                )
                files.append(
                    {
                        "file_name": f"result-{sequence:03d}.flres",
                        "content": blob,
                        "content_type": "application/octet-stream",
                    }
                )
            try:
                self._keep_result(analysis_id, files)
            except OSError as exc:  # no safety net on a full disk; the upload may still work
                log.error("%s: cannot keep the sealed result: %s", self.name, _disk_failure(exc))
                self._drop_kept_result(analysis_id)
            try:
                self._upload_result(analysis_id, files, self._patiently)
            except HubUnreachable as exc:
                # sealed and kept here: uploaded as soon as the hub answers (converge), never
                # sealed or run again
                log.warning(
                    "%s: %s; the sealed result is kept to upload later", self.name, exc.message
                )
                return {"status": "success", "upload": "kept at the node until the hub answers"}
            except BaseException as exc:  # refused (a full disk, no bucket): it does not leave
                self._drop_kept_result(analysis_id)
                if isinstance(exc, HubError):
                    run.hub_failure = exc
                raise
            self._save(analysis_id, outbox=None)
            self.node_log(
                analysis_id,
                "info",
                f"{self.name}: sealed {len(files)} result file(s) for "
                f"{len(manifest.recipients)} recipient(s)"
                if self.policy.node_sealing
                else f"{self.name}: stored {len(files)} result file(s) as written "
                "(node_sealing = false)",
            )
            return {"status": "success"}

        return seal_and_upload

    # -- a sealed result the hub did not take yet ------------------------------------------------
    def _outbox(self, analysis_id: str) -> Path:
        return self.folder.runs / analysis_id / "result"

    def _keep_result(self, analysis_id: str, files: list[dict[str, Any]]) -> None:
        """The sealed files on this node's disk (fsync'd) before any upload: a hub that is away
        then costs a late upload of the same bytes, never the result or a second sealing."""
        folder = self._outbox(analysis_id)
        folder.mkdir(parents=True, exist_ok=True)
        for item in files:
            tmp = folder / f".{item['file_name']}.tmp"
            with open(tmp, "wb") as out:
                out.write(item["content"])
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, folder / item["file_name"])
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._save(analysis_id, outbox={f["file_name"]: f["content_type"] for f in files})

    def _drop_kept_result(self, analysis_id: str) -> None:
        self._save(analysis_id, outbox=None)
        shutil.rmtree(self._outbox(analysis_id), ignore_errors=True)

    def _result_sealed(self, analysis_id: str) -> bool:
        """The aggregator sealed its final result: uploaded, or kept to upload."""
        entry = self.state.get(analysis_id, {})
        return bool(entry.get("outbox")) or bool(entry.get("resultUploaded"))

    def _upload_result(
        self, analysis_id: str, files: list[dict[str, Any]], call: Callable[..., Any]
    ) -> None:
        """One multipart upload; the hub stores all files or none, and a retry replaces the
        same paths (same bytes, same hashes): never a second result."""
        found = call(
            "find the RESULT bucket",
            lambda: self.core.find_analysis_buckets(
                filter={"analysis_id": analysis_id, "type": "RESULT"}
            ),
        )
        if not found:
            raise PolicyRefused("the hub has no RESULT bucket for this analysis")
        call(
            "upload the sealed result",
            lambda: self.clients.storage.upload_to_bucket(found[0].bucket_id, *files),
        )
        self._save(analysis_id, resultUploaded=True)

    def _send_kept_result(self, analysis_id: str) -> None:
        """Upload a result sealed while the hub was away (one try; the next tick tries again)."""
        kept = self.state.get(analysis_id, {}).get("outbox")
        if not kept:
            return
        folder = self._outbox(analysis_id)
        files = [
            {"file_name": name, "content": (folder / name).read_bytes(), "content_type": kind}
            for name, kind in sorted(kept.items())
        ]

        def once(doing: str, call: Callable[[], Any]) -> Any:
            with hub_errors(doing, self.clients.endpoints.core_url):
                return call()

        self._upload_result(analysis_id, files, once)
        self._drop_kept_result(analysis_id)
        self.node_log(
            analysis_id,
            "info",
            f"{self.name}: uploaded the sealed result late ({len(files)} file(s)); the hub "
            "could not take it when it was sealed",
        )


def _disk_failure(exc: BaseException) -> str:
    """What a failed write to the node's own disk says, e.g. "the node's own disk is full"."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(exc, sqlite3.Error) and "full" in detail.lower()
    )
    return f"the node's own disk is {'full' if full else 'failing'} ({detail})"


def _read_tar(data: bytes) -> dict[str, bytes]:
    """Regular files of a tar, by name; nothing is extracted to disk by tarfile itself."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    raise BundleError(f"the code tar holds a non-file entry {member.name!r}")
                handle = tar.extractfile(member)
                if handle is None:
                    raise BundleError(f"cannot read {member.name!r} from the code tar")
                files[member.name] = handle.read()
    except tarfile.TarError as exc:
        raise BundleError(f"the code tar is damaged: {exc}") from None
    return files


def main_loop(home: Path, name: str, url: str, stop: threading.Event | None = None) -> None:
    """The agent process: retry until the hub answers, then serve until stopped."""
    stop = stop or threading.Event()
    while True:
        try:
            agent = NodeAgent(home, name, url)
            break
        except FlameLabError as exc:
            log.warning("node %s cannot start yet: %s", name, exc.message)
            if stop.wait(1.0):
                return
    agent.run_forever(stop)
