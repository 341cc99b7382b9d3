"""The researcher's API: connect to a federation, submit a draft, follow it, open its result.

```python
import flame_lab as fl
fed = fl.connect()                 # the sandbox by default, started if not running
run = fed.submit(draft)            # sign, upload, lock; build and distribution follow
run.wait(); run.result()           # verified and decrypted here, in this process
```
Every step talks to the hub through PrivateAIM's flame_hub client, so the same calls work
against the sandbox and a real FLAME Hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flame_lab import config, deadlines
from flame_lab.clock import SYSTEM, Clock
from flame_lab.draft import Draft
from flame_lab.errors import (
    AnalysisFailed,
    FlameLabError,
    HubError,
    HubUnreachable,
    ImageError,
    KeyFileMissing,
    NotFound,
    ResultNotReady,
    SandboxError,
    TamperedResult,
)
from flame_lab.hubclient import (
    HubClients,
    HubEndpoints,
    HubOutage,
    every,
    hub_errors,
    hub_outage,
    long_poll_timeout,
    patiently,
    with_password,
    with_token,
)
from flame_lab.images.catalog import DEFAULT_IMAGE
from flame_lab.records import SubmissionRecord, SubmissionStore, this_writer, writer_alive
from flame_lab.security import bundle as bundles
from flame_lab.security import envelope, selfseal, statements
from flame_lab.security.keys import (
    PASSPHRASE_ENV,
    Identity,
    NodePublicIdentity,
    PublicIdentity,
    get_passphrase,
    load_identity,
    read_public,
)
from flame_lab.security.replay import SqliteReplayGuard
from flame_lab.star.results import decode_node_result, decode_sealed_payload

LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
IN_PROGRESS = ("starting", "started", "executing")
TERMINAL = frozenset({"executed", "failed", "rejected", "cancelled"})
BUCKET_WAIT_SECONDS = 30.0
# Analysis.wait() holds one request this long at most on a hub with a change feed (sandbox).
CHANGE_WAIT_SECONDS = 2.0
SUBMISSION_TAG = "flame_lab submission "  # + the local token, in the hub analysis's description
RETRY_HINT = (
    "Start the hub again (sandbox: `flame-lab sandbox up`) and repeat; a longer "
    "FLAME_LAB_HUB_OUTAGE waits longer."
)

_identities: dict[Path, Identity] = {}


def researcher_identity(path: Path | None = None) -> Identity:
    """The researcher's identity, unlocked once per process (passphrase kept only in memory)."""
    path = path or config.identity_file()
    if path not in _identities:
        if not path.exists():
            raise KeyFileMissing(
                f"no flame_lab identity at {path}",
                hint="Create one with `flame-lab keys init` (or `%flame keys init` in a notebook).",
            )
        _identities[path] = load_identity(path, get_passphrase())
    return _identities[path]


def unlocked_identity(path: Path | None = None, *, prompt: bool = False) -> Identity | None:
    """The researcher's identity if it is unlocked (or unlockable without asking), else None;
    with ``prompt`` it asks for the passphrase as ``researcher_identity`` does."""
    path = path or config.identity_file()
    if path in _identities:
        return _identities[path]
    if not (prompt or PASSPHRASE_ENV in os.environ) or not path.exists():
        return None
    try:
        return researcher_identity(path)
    except FlameLabError:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60] or "analysis"


# -- records shown to people -------------------------------------------------------------
@dataclass(frozen=True)
class NodeInfo:
    """A hospital node of the federation, as the researcher may see it."""

    id: str
    name: str
    type: str
    online: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NodeState:
    """One node's part in one analysis."""

    node_id: str
    name: str
    type: str
    approval: str | None
    execution: str | None
    progress: int
    comment: str | None
    online: bool | None = None  # as the hub sees the node now (None: the hub did not say)
    waiting: str = ""  # what the analysis waits for at this node, in words
    # True: the node signed exactly this status; False: it did not (the comment then starts
    # "(unverified) " and overall_status ignores its claims of progress); None: no pinned key
    verified: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain_wait(node: NodeState, distributed: bool, analysis_id: str) -> str:
    """Why an unfinished analysis waits at ``node``, naming it ("" if it does not wait there)."""
    offline = node.online is False
    if node.approval == "rejected" or node.execution in ("executed", "failed"):
        return ""
    if node.approval is None and node.type == "default":
        if offline:
            return f"{node.name} is offline: it reviews the analysis once its node is back"
        return (
            f"waiting for {node.name} to approve (a node with manual approval waits for its "
            f"admin; sandbox: flame-lab sandbox approve {analysis_id} --node {node.name})"
        )
    if node.execution in IN_PROGRESS:
        return f"{node.name} is offline while running the analysis" if offline else ""
    if offline:
        return f"{node.name} {'approved but ' if node.approval else ''}is offline: it cannot start"
    if distributed:
        return f"waiting for {node.name} to start"
    return ""


@dataclass(frozen=True)
class AnalysisStatus:
    """Where an analysis stands: overall and per node."""

    analysis_id: str
    name: str
    overall: str  # pending | approved | running | executed | failed | rejected | cancelled
    progress: int
    nodes: tuple[NodeState, ...]
    build: str | None = None
    distribution: str | None = None
    failure: tuple[str, str] | None = None  # (node name, reason)
    result_available: bool = False

    @property
    def done(self) -> bool:
        return self.overall in TERMINAL

    @property
    def waiting(self) -> list[str]:
        """What the analysis waits for, node by node, in words (empty once it is final)."""
        return [] if self.done else [n.waiting for n in self.nodes if n.waiting]

    def verdict_lines(self) -> list[str]:
        """The failure, when no node line shows it: the researcher's side gave up on a node
        that never said it failed ("uk-koeln did not start the analysis: ...")."""
        if not self.failure:
            return []
        name, reason = self.failure
        shown_there = any(
            n.name == name and (n.execution == "failed" or n.approval == "rejected")
            for n in self.nodes
        )
        return [] if shown_there else [f"{self.overall} at {name}: {reason}"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [n.to_dict() for n in self.nodes]
        data["waiting"] = self.waiting
        data["failure"] = (
            {"nodeName": self.failure[0], "reason": self.failure[1]} if self.failure else None
        )
        return data

    def to_text(self) -> str:
        """The state as a few lines: overall, then one line per node."""
        from flame_lab.textsafe import shown

        lines = [f"{shown(self.name, multiline=False)} ({self.analysis_id}): {self.overall}"]
        lines[0] += f" {self.progress}%"
        for n in self.nodes:
            line = (
                f"  {shown(n.name, multiline=False):<16} {n.approval or 'pending':<9} "
                f"{n.execution or '-':<10} {n.progress:>3}%"
            )
            if n.comment and (n.execution == "failed" or n.approval == "rejected"):
                last = [x for x in n.comment.splitlines() if x.strip()][-1:] or [""]
                line += f"  {shown(last[0].strip(), multiline=False)[:160]}"
            lines.append(line)
        lines += [f"  {shown(why, multiline=False)}" for why in self.waiting]
        lines += [f"  {shown(why, multiline=False)}" for why in self.verdict_lines()]
        if self.result_available:
            lines.append(f"  result ready: %flame result {self.analysis_id}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        from flame_lab.rendering import build_view, render_html

        view = build_view(self, [], federation="", submitted_at=None, now=datetime.now(UTC))
        return render_html(view)


@dataclass(frozen=True)
class LogLine:
    time: str
    node_id: str
    node_name: str
    level: str
    message: str
    # True: signed by the node; False: not (the message then starts "(unverified) "); None: no
    # pinned key for the node, or the hub's own line
    verified: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _own_reason(node: NodeState, default: str) -> str:
    """The node's comment without its own name in front ("failed at X: X: ..." reads twice)."""
    comment = node.comment or default
    own = f"{node.name}: "
    return comment[len(own) :] if comment.startswith(own) and len(comment) > len(own) else comment


def overall_status(
    nodes: Sequence[NodeState], distribution: str | None, cancelled: bool
) -> tuple[str, tuple[str, str] | None]:
    """One word for the whole analysis, and the first failing node's reason."""
    if cancelled:
        return "cancelled", None
    for node in nodes:
        if node.approval == "rejected":
            return "rejected", (node.name, _own_reason(node, "rejected by the node"))
    for node in nodes:
        if node.execution == "failed":
            return "failed", (node.name, _own_reason(node, "failed without a reason"))
    # a node's claims of progress count only if it signed them (or nothing can be checked)
    if nodes and all(n.execution == "executed" and n.verified is not False for n in nodes):
        return "executed", None
    if distribution == "executed" or any(n.execution in IN_PROGRESS for n in nodes):
        return "running", None
    defaults = [n for n in nodes if n.type == "default"]
    if defaults and all(n.approval == "approved" and n.verified is not False for n in defaults):
        return "approved", None
    return "pending", None


def _online(link: Any) -> bool | None:
    """The online flag of the node a hub's analysis-node link includes (None if absent)."""
    node = getattr(link, "node", None)
    online = getattr(node, "online", None) if node is not None else None
    return bool(online) if online is not None else None


# -- connecting ----------------------------------------------------------------------------
def connect(
    target: str | None = None,
    *,
    core_url: str | None = None,
    auth_url: str | None = None,
    storage_url: str | None = None,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    project: str | None = None,
    sandbox_home: str | Path | None = None,
    start: bool = True,
) -> Federation:
    """The sandbox (default, started if needed), a hub URL, or the active profile's hub."""
    if core_url or (target and target != config.SANDBOX):
        if target and not core_url:
            endpoints = HubEndpoints.under(target)
        else:
            if not (core_url and auth_url and storage_url):
                raise HubError(
                    "a real hub needs its core, auth and storage URLs",
                    hint="Pass core_url=, auth_url= and storage_url=, or one hub URL.",
                )
            endpoints = HubEndpoints(core_url, auth_url, storage_url)
        return _connect_hub(endpoints, token, user, password, project, name=target or core_url)
    if target is None and sandbox_home is None:
        profile = config.active_profile()
        if not profile.is_sandbox:
            endpoints = HubEndpoints(profile.core_url, profile.auth_url, profile.storage_url)
            extra = profile.extra
            return _connect_hub(
                endpoints,
                token or extra.get("token"),
                user or extra.get("user"),
                password,
                project or extra.get("project"),
                name=profile.name,
            )
    return _connect_sandbox(sandbox_home, start)


def _connect_hub(
    endpoints: HubEndpoints,
    token: str | None,
    user: str | None,
    password: str | None,
    project: str | None,
    name: str,
) -> Federation:
    if token:
        clients = with_token(endpoints, token)
    elif user:
        clients = with_password(
            endpoints,
            user,
            password or get_passphrase(f"Password for {user} at {endpoints.auth_url}: "),
        )
    else:
        raise HubError(
            "no way to log in to the hub",
            hint="Pass token= (e.g. from JupyterHub) or user= (the password is asked for).",
        )
    fed = Federation(name, endpoints, clients, sandbox_home=None)
    fed.select_project(project)
    return fed


def _connect_sandbox(home: str | Path | None, start: bool) -> Federation:
    from flame_lab.sandbox import daemon

    info = daemon.status(home)
    if not info["running"]:
        if not start:
            raise SandboxError(
                "the sandbox federation is not running", hint="Start it: `flame-lab sandbox up`."
            )
        daemon.up(home)
        info = daemon.status(home)
    endpoints = HubEndpoints(info["coreUrl"], info["authUrl"], info["storageUrl"])
    clients = with_password(endpoints, info["username"], info["password"])
    fed = Federation("sandbox", endpoints, clients, sandbox_home=Path(info["home"]))
    fed.project_id = info["projectId"]
    fed.hub_identity = info.get("hubId") or fed.hub_id
    for node in info["nodes"]:
        data = json.loads(Path(node["publicIdentityFile"]).read_text(encoding="utf-8"))
        fed.node_keys[node["id"]] = NodePublicIdentity.from_dict(data)
    fed.trust_in_sandbox()
    return fed


class Federation:
    """One hub and its nodes, as seen by this researcher."""

    def __init__(
        self,
        name: str,
        endpoints: HubEndpoints,
        clients: HubClients,
        *,
        sandbox_home: Path | None,
        store: SubmissionStore | None = None,
    ) -> None:
        self.name = name
        self.endpoints = endpoints
        self.clients = clients
        self.sandbox_home = sandbox_home
        self.store = store or SubmissionStore()
        self.project_id: str | None = None
        # the hub's name in signed bundles; nodes refuse bundles signed for another hub
        self.hub_identity: str = endpoints.core_url
        self.node_keys: dict[str, NodePublicIdentity] = {}
        self._node_cache: dict[str, NodeInfo] = {}
        # the sandbox hub's change feed; turned off at the first 404 (a hub without it)
        self.change_feed = True
        self.clock: Clock = SYSTEM  # tests inject one: outages and bounds without real waits

    def __repr__(self) -> str:
        return f"Federation({self.name!r}, {self.hub_url!r})"

    @property
    def hub_url(self) -> str:
        return self.endpoints.core_url

    @property
    def hub_id(self) -> str:
        """Names the hub across restarts: the sandbox by its folder, a real hub by its URL."""
        return f"sandbox:{self.sandbox_home}" if self.sandbox_home else self.hub_url

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox_home is not None

    @property
    def core(self):
        return self.clients.core

    @property
    def storage(self):
        return self.clients.storage

    def _call(self, doing: str):
        return hub_errors(doing, self.hub_url)

    def _patiently(
        self,
        doing: str,
        call: Callable[[], Any],
        *,
        hint: str = RETRY_HINT,
        reconcile: Callable[[], Any] | None = None,
    ) -> Any:
        """``call`` ridden through a hub outage up to FLAME_LAB_HUB_OUTAGE (backoff 0.25 s to
        5 s); only for calls safe to repeat, or with ``reconcile`` to find what a lost try did."""
        return patiently(
            doing,
            call,
            hub_outage(),
            url=self.hub_url,
            clock=self.clock,
            hint=hint,
            reconcile=reconcile,
        )

    # -- projects and nodes ------------------------------------------------------------------
    def select_project(self, project: str | None) -> None:
        with self._call("list projects"):
            projects = every(self.core.get_projects)
        if project:
            chosen = [p for p in projects if project in (str(p.id), p.name)]
        else:
            chosen = projects if len(projects) == 1 else []
        if len(chosen) != 1:
            names = ", ".join(sorted(p.name for p in projects)) or "none"
            raise HubError(
                f"cannot tell which project to use (projects: {names})",
                hint="Pass project='NAME' to connect(), or set it in the profile.",
            )
        self.project_id = str(chosen[0].id)

    def nodes(self) -> list[NodeInfo]:
        """The project's approved nodes."""
        with self._call("list the project's nodes"):
            links = every(self.core.find_project_nodes, filter={"project_id": self.project_id})
            all_nodes = {str(n.id): n for n in every(self.core.get_nodes)}
        result = []
        for link in links:
            node = all_nodes.get(str(link.node_id))
            if node is not None and link.approval_status == "approved":
                result.append(NodeInfo(str(node.id), node.name, node.type, bool(node.online)))
        self._node_cache = {n.id: n for n in result}
        return sorted(result, key=lambda n: (n.type != "default", n.name))

    def datasets(self, node: str | None = None) -> Any:
        """What each data node holds, as the node describes it: tables with columns, types,
        units and value sets or ranges, FHIR resource types and codes, count bands, the node's
        policy; never a row. A ``DataDictionary`` (text, HTML, ``.to_frame()``)."""
        from dataclasses import replace

        from flame_lab import datadict
        from flame_lab.jsonscan import nesting_depth

        nodes = [n for n in self.nodes() if n.type == "default"]
        if node is not None:
            nodes = [n for n in nodes if node in (n.id, n.name)]
            if not nodes:
                names = ", ".join(n.name for n in self.nodes() if n.type == "default")
                raise NotFound(f"no data node {node!r} here", hint=f"Data nodes: {names}")
        found, missing = [], []
        for info in nodes:
            with self._call(f"read the data description of node {info.name}"):
                response = self.clients.core_http.get(f"nodes/{info.id}/dataset")
            raw = response.content
            if response.status_code != 200:
                missing.append(info.name)
                continue
            if len(raw) > datadict.MAX_DESCRIPTION_BYTES or nesting_depth(raw, 32) > 32:
                raise datadict.DataDictionaryError(
                    f"the data description of node {info.name} is too large or too deep"
                )
            try:
                data = json.loads(raw)["data"]
            except (ValueError, KeyError, TypeError):
                raise datadict.DataDictionaryError(
                    f"the data description of node {info.name} is not JSON"
                ) from None
            # the node's name is the hub's, not what the description says of itself
            found.append(replace(datadict.DatasetDescription.from_dict(data), node=info.name))
        return datadict.DataDictionary(found, missing=missing)

    def _node_names(self) -> dict[str, NodeInfo]:
        if not self._node_cache:
            self.nodes()
        return self._node_cache

    # -- sandbox trust ----------------------------------------------------------------------
    def trust_in_sandbox(self) -> None:
        """Act as each sandbox node's admin: trust the local researcher's public key."""
        path = config.identity_file()
        if self.sandbox_home is None or not path.exists():
            return
        public = read_public(path)
        if not isinstance(public, PublicIdentity):
            return
        for folder in sorted((self.sandbox_home / "nodes").glob("*/")):
            trusted = folder / "trusted"
            trusted.mkdir(mode=0o700, exist_ok=True)
            target = trusted / f"{public.key_id}.json"
            if not target.exists():
                target.write_text(json.dumps(public.to_dict(), indent=2), encoding="utf-8")

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        draft: Draft,
        nodes: Iterable[str] | None = None,
        name: str | None = None,
        recipients: Sequence[PublicIdentity] = (),
        *,
        identity: Identity | None = None,
        master_image: str | None = None,
        sealed: bool = False,
    ) -> Analysis:
        """Create the analysis, sign the draft for it, upload the code and lock it.

        The analysis comes first: the signed manifest names its id, project, nodes and hub,
        so that no node runs this code in any other analysis. ``master_image`` (a virtual
        path such as ``python/ml``) is the image the nodes run the analysis in: a draft
        importing what it lacks is refused here; by default ``python/base``, or the first
        offered image that has what the draft imports. ``sealed=True``: the analysis's own
        aggregator seals the result to the recipients before the SDK stores it
        (flame_lab.security.selfseal), for hubs whose nodes store results as written; the
        image must hold flame_lab (deploy/master-image/).
        """
        image_id, image_path = self._choose_image(draft, master_image, sealed)
        files, entrypoint = draft.files, draft.entrypoint
        if sealed:
            _check_sealable(draft, image_path)
            files, entrypoint = selfseal.wrap(files, entrypoint)
        identity = identity or researcher_identity()
        self.trust_in_sandbox()
        chosen = self._choose_nodes(nodes)
        everyone = [identity.public, *[r for r in recipients if r.key_id != identity.key_id]]
        display = name or f"analysis {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
        # noted here before the hub creates anything (a full disk refuses now); the hub's
        # analysis carries the token, so an interrupted submit is found and removed later
        token = self.store.begin(self.hub_id, display)
        analysis = self._create_once(token, display, image_id)
        analysis_id = str(analysis.id)
        try:
            binding = bundles.Binding(
                analysis_id, str(self.project_id), tuple(n.id for n in chosen), self.hub_identity
            )
            signed = bundles.build(files, entrypoint, identity, everyone, binding=binding)
        except FlameLabError:
            self._remove_at_hub(analysis_id)
            self.store.end(token)
            raise
        aggregator = next(n for n in chosen if n.type == "aggregator")
        record = SubmissionRecord(
            analysis_id=analysis_id,
            name=display,
            hub_url=self.hub_url,
            hub=self.hub_id,
            project_id=str(self.project_id),
            bundle_hash=signed.bundle_hash,
            run_nonce=signed.manifest.run_nonce,
            signer=identity.key_id,
            recipients=[r.key_id for r in everyone],
            nodes={n.id: n.name for n in chosen},
            aggregator_id=aggregator.id,
            node_keys={
                i: k.to_dict() for i, k in self.node_keys.items() if i in {n.id for n in chosen}
            },
            submitted_at=_now(),
            entrypoint=entrypoint,
            master_image=image_path,
            files=sorted(files),
            # sealed=True: the analysis seals; a node may seal on top, but need not
            sealed=not sealed and (self.is_sandbox or aggregator.id in self.node_keys),
            analysis_sealed=sealed,
            pending=True,
            writer=this_writer(),
        )
        try:
            self.store.save_bundle(analysis_id, signed.to_bucket_files())
            self.store.save(record)
        except FlameLabError:
            self._remove_at_hub(analysis_id)
            self.store.end(token)
            raise
        self.store.end(token)
        try:
            self._patiently(
                f"submit analysis {analysis_id}: upload and lock its code",
                lambda: self._configure(analysis_id, chosen, signed, entrypoint),
                hint=_resume_hint(analysis_id),
            )
        except HubOutage:
            # kept pending with its signed bundle, and no longer this process's to finish: the
            # next look (or fed.resume) uploads and locks it once the hub answers
            record.writer = ""
            with contextlib.suppress(FlameLabError):
                self.store.save(record)
            raise
        except FlameLabError:
            self._remove_at_hub(analysis_id)
            record.cancelled_at = _now()
            record.pending = False
            self.store.save(record)
            self.store.drop_bundle(analysis_id)
            raise
        self._submitted(record)
        return Analysis(self, record)

    def _create_once(self, token: str, display: str, image_id: str) -> Any:
        """Create the analysis at the hub, riding out an outage without creating it twice: after
        a try whose answer was lost, the hub is searched for the submission's token first, and
        any second analysis a stalled try created after all is deleted."""
        tries: list[int] = []

        def create() -> Any:
            tries.append(1)
            return self.core.create_analysis(
                self.project_id,
                name=_slug(display),
                display_name=display,
                description=f"submitted by flame_lab (signed bundle; {SUBMISSION_TAG}{token})",
                master_image_id=image_id,
            )

        try:
            analysis = self._patiently(
                "submit: create the analysis",
                create,
                reconcile=lambda: next(iter(self._tagged(token)), None),
                hint="If the hub created it after all, the next look (`flame-lab status`, "
                "`%flame status`, fed.analyses()) deletes it; submit again once the hub answers.",
            )
        except HubOutage:
            self.store.release(token)  # the next look removes what a lost try may have made
            raise
        if len(tries) != 1:  # a lost try may yet have created one: keep exactly one
            self._patiently(
                "submit: remove a duplicate the outage created",
                lambda: self._drop_duplicates(token, str(analysis.id)),
                hint=f"Run fed.analyses() once the hub answers; it removes duplicates of {token}.",
            )
        return analysis

    def _tagged(self, token: str) -> list[Any]:
        """The hub's analyses carrying a submission's token, oldest first."""
        tag = f"{SUBMISSION_TAG}{token}"
        mine = every(self.core.find_analyses, filter={"project_id": self.project_id})
        found = [a for a in mine if tag in (getattr(a, "description", None) or "")]
        return sorted(found, key=lambda a: (str(getattr(a, "created_at", "")), str(a.id)))

    def _drop_duplicates(self, token: str, keep: str) -> None:
        for other in self._tagged(token):
            if str(other.id) != keep:
                with contextlib.suppress(NotFound), self._call("delete a duplicate analysis"):
                    self.core.delete_analysis(str(other.id))

    def _choose_image(self, draft: Draft, wanted: str | None, sealed: bool) -> tuple[str, str]:
        """(id, virtual path) of the image to run the draft in, after checking it fits."""
        offered = self._patiently("submit: list the hub's master images", self.master_images)
        wanted = wanted or (selfseal.SEALING_IMAGE if sealed else None)
        image_path = self._image_path(wanted, offered)
        try:
            draft.check(image=image_path, offered=offered)
        except ImageError as refused:
            if wanted is not None:
                raise
            # python/base by default; a draft it cannot run goes to the first image that can
            fits = draft.check(offered=offered).fitting
            if not fits:
                raise
            warnings.warn(
                f"{refused.message}; submitting it to run in {fits[0]}, which has everything it "
                f"imports (choose with master_image= or --image)",
                stacklevel=3,
            )
            image_path = fits[0]
        return offered[image_path], image_path

    def _submitted(self, record: SubmissionRecord) -> None:
        record.pending = False
        self.store.save(record)
        self.store.drop_bundle(record.analysis_id)

    def _remove_at_hub(self, analysis_id: str) -> None:
        with self._call("remove the half-created analysis"):
            with contextlib.suppress(NotFound):
                self.core.delete_analysis(analysis_id)

    # -- interrupted submissions ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """Finish what interrupted submissions left (their process is gone): a pending record
        is resumed from its saved bundle (or removed at the hub when it cannot be), and an
        analysis created without a record is deleted at the hub. Returns what it did."""
        done = []
        for intent in self.store.intents():
            if intent.get("hub") != self.hub_id or writer_alive(str(intent.get("writer", ""))):
                continue
            token = str(intent.get("token", ""))
            with self._call("find an analysis an interrupted submission created"):
                tagged = self._tagged(token)
            for analysis in tagged:
                self._remove_at_hub(str(analysis.id))
                done.append(f"deleted {analysis.id}: its submission was interrupted")
            self.store.end(token)
        for record in self.store.all(self.hub_id):
            if record.pending and not writer_alive(record.writer):
                done.append(self.resume(record.analysis_id, patient=False))
        return done

    def resume(self, analysis_id: str, *, patient: bool = True) -> str:
        """Upload and lock an interrupted submission's code (the same signed bundle: nodes see
        one submission); if it cannot be resumed, remove it at the hub, saying why.
        ``patient``: ride out a hub outage (FLAME_LAB_HUB_OUTAGE) rather than fail at once."""
        record = self.store.load(analysis_id)
        if not record.pending:
            return f"{analysis_id} was submitted completely"
        files = self.store.load_bundle(analysis_id)
        nodes = [NodeInfo(i, n, "default", True) for i, n in record.nodes.items()]
        why = "its signed bundle was not kept on this machine"
        if files is not None:
            try:
                signed = bundles.SignedBundle.from_bucket_files(files)

                def configure() -> None:
                    self._configure(analysis_id, nodes, signed, record.entrypoint)

                if patient:
                    self._patiently(
                        f"resume analysis {analysis_id}: upload and lock its code",
                        configure,
                        hint=_resume_hint(analysis_id),
                    )
                else:
                    configure()
            except NotFound:
                why = "the hub no longer has it"
            except HubUnreachable:
                raise  # try again on the next look
            except FlameLabError as exc:
                why = exc.message
            else:
                self._submitted(record)
                return f"resumed {analysis_id}: its code is uploaded and locked"
        self._remove_at_hub(analysis_id)
        record.pending, record.cancelled_at, record.interrupted = False, _now(), why
        self.store.save(record)
        self.store.drop_bundle(analysis_id)
        return f"removed {analysis_id} at the hub: the submission was interrupted and {why}"

    def master_images(self) -> dict[str, str]:
        """The hub's master images: virtual path -> id."""
        with self._call("list the hub's master images"):
            found = every(self.core.find_master_images)
        return {str(image.virtual_path): str(image.id) for image in found}

    def _image_path(self, wanted: str | None, offered: dict[str, str]) -> str:
        """The virtual path of the wanted image (path, id or unique last part) on this hub."""
        if not offered:
            raise ImageError(
                "the hub offers no master image", hint="Ask the hub's admins to sync them."
            )
        if wanted is None:
            return DEFAULT_IMAGE if DEFAULT_IMAGE in offered else sorted(offered)[0]
        name = wanted.strip().strip("/")
        by_id = {i: p for p, i in offered.items()}
        path = name if name in offered else by_id.get(name)
        if path is None:
            tails = [p for p in offered if p.rsplit("/", 1)[-1] == name]
            path = tails[0] if len(tails) == 1 else None
        if path is None:
            raise ImageError(
                f"the hub offers no master image {wanted!r}",
                hint="It offers: " + ", ".join(sorted(offered)),
            )
        return path

    def _choose_nodes(self, names: Iterable[str] | None) -> list[NodeInfo]:
        known = self._patiently("submit: list the project's nodes", self.nodes)
        if names is None:
            chosen = known
        else:
            wanted = [n.strip() for n in names if n.strip()]
            by_name = {n.name: n for n in known}
            unknown = [n for n in wanted if n not in by_name]
            if unknown:
                raise NotFound(
                    f"unknown node(s): {', '.join(unknown)}",
                    hint="Known nodes: " + ", ".join(sorted(by_name)),
                )
            chosen = [by_name[n] for n in wanted]
            if not any(n.type == "aggregator" for n in chosen):
                chosen += [n for n in known if n.type == "aggregator"][:1]
        if not any(n.type == "default" for n in chosen):
            raise NotFound(
                "an analysis needs at least one data node",
                hint="Known nodes: " + ", ".join(sorted(n.name for n in known)),
            )
        if not any(n.type == "aggregator" for n in chosen):
            raise NotFound("the federation has no aggregator node", hint="Ask the hub's admins.")
        return chosen

    def _configure(
        self, analysis_id: str, chosen: list[NodeInfo], signed: bundles.SignedBundle, entry: str
    ) -> None:
        wanted = {n.id for n in chosen}
        with self._call("select the analysis's nodes"):
            present = every(self.core.find_analysis_nodes, filter={"analysis_id": analysis_id})
            have: set[str] = set()
            for link in present:
                # a node not chosen, or a second link a lost (retried) request made
                if str(link.node_id) not in wanted or str(link.node_id) in have:
                    self.core.delete_analysis_node(link.id)
                have.add(str(link.node_id))
            for node_id in wanted - have:
                self.core.create_analysis_node(analysis_id, node_id)
        code = self._wait_for_bucket(analysis_id, "CODE")
        files = signed.to_bucket_files()
        with self._call("upload the analysis code"):
            uploaded = self.storage.upload_to_bucket(
                code.bucket_id,
                *[
                    {
                        "file_name": path,
                        "content": content,
                        "content_type": "application/octet-stream",
                    }
                    for path, content in sorted(files.items())
                ],
            )
        with self._call("mark the entrypoint"):
            rows = every(self.core.find_analysis_bucket_files, filter={"analysis_id": analysis_id})
            by_path = {row.path: row for row in rows}
            for item in uploaded:
                path = item.path or item.name
                if path not in by_path:
                    by_path[path] = self.core.create_analysis_bucket_file(
                        path, item.id, code.bucket_id, code.id, is_entrypoint=path == entry
                    )
            if entry not in by_path:
                raise HubError(f"the hub lost the entrypoint {entry} after the upload")
            if not by_path[entry].root:
                self.core.update_analysis_bucket_file(by_path[entry].id, is_entrypoint=True)
        with self._call("lock the analysis configuration"):
            current = self.core.get_analysis(analysis_id)
            if current is None:
                raise NotFound(f"the hub no longer knows analysis {analysis_id}")
            if not current.configuration_locked:  # a retry after a lost answer: locked already
                self._lock(analysis_id)

    def _lock(self, analysis_id: str) -> None:
        """configurationLock; refused as "already locked" only by a try whose answer was lost."""
        try:
            with self._call("lock the analysis configuration"):
                self.core.send_analysis_command(analysis_id, "configurationLock")
        except (HubUnreachable, NotFound):
            raise
        except HubError:
            with self._call("lock the analysis configuration"):
                current = self.core.get_analysis(analysis_id)
            if current is None or not current.configuration_locked:
                raise

    def _wait_for_bucket(self, analysis_id: str, kind: str, timeout: float = BUCKET_WAIT_SECONDS):
        """The hub creates an analysis's buckets asynchronously: ask until it has."""
        clock = self.clock
        deadline = clock.monotonic() + timeout
        delay = 0.02
        while True:
            with self._call(f"find the analysis's {kind} bucket"):
                found = self.core.find_analysis_buckets(
                    filter={"analysis_id": analysis_id, "type": kind}
                )
            if found:
                return found[0]
            if clock.monotonic() > deadline:
                raise HubError(
                    f"the hub created no {kind} bucket for analysis {analysis_id} "
                    f"within {timeout:.0f} s",
                    hint="The hub's storage may be down; try again later.",
                )
            clock.sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- following ---------------------------------------------------------------------------
    def attach(self, analysis_id: str) -> Analysis:
        """An analysis submitted from this account, e.g. after a kernel restart; a unique
        prefix of its id will do. An interrupted submission is resumed first."""
        record = self.store.load(self.resolve_id(analysis_id))
        if record.pending and record.hub == self.hub_id and not writer_alive(record.writer):
            self.resume(record.analysis_id, patient=False)  # a look: fed.resume(ID) waits
            record = self.store.load(record.analysis_id)
        if record.hub != self.hub_id:
            raise NotFound(
                f"analysis {analysis_id} was submitted to {record.hub}, not {self.hub_id}",
                hint="Connect to that hub first.",
            )
        return Analysis(self, record)

    def resolve_id(self, given: str) -> str:
        """The full id of this account's analysis whose id is ``given`` or starts with it."""
        given = given.strip()
        ids = [r.analysis_id for r in self.store.all(self.hub_id)]
        if given in ids or len(given) >= 36:
            return given
        matches = [i for i in ids if i.startswith(given)] if given else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFound(
                f"no analysis of yours on this hub has an id starting with {given!r}",
                hint="`%flame status` (or `flame-lab status`) lists your analyses.",
            )
        raise NotFound(
            f"{len(matches)} of your analyses have ids starting with {given!r}",
            hint="Give more characters: " + ", ".join(m[:13] for m in matches[:5]),
        )

    def analyses(self) -> list[Analysis]:
        """This researcher's analyses on this hub, newest first (interrupted submissions are
        resumed or removed first: none stays pending)."""
        with contextlib.suppress(HubUnreachable):
            self.recover()
        return [Analysis(self, r) for r in self.store.all(self.hub_id)]


class Analysis:
    """A handle on one submitted analysis; cheap to create, safe to recreate."""

    def __init__(self, federation: Federation, record: SubmissionRecord) -> None:
        self.federation = federation
        self.record = record
        self._result: Any = None
        self._have_result = False
        self._opened_logs: dict[tuple[str, str], tuple[str, str]] = {}
        self._stamps: dict[str, tuple[str, int] | None] = {}  # node id -> its status's stamp
        self._hub_was_away = False  # a look failed since the last one that worked
        self._saved_look = record.looked_at if isinstance(record, SubmissionRecord) else 0.0

    def __repr__(self) -> str:
        return f"Analysis({self.id!r}, name={self.name!r})"

    @property
    def id(self) -> str:
        return self.record.analysis_id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def _core(self):
        return self.federation.core

    def _call(self, doing: str):
        return self.federation._call(doing)

    def _patiently(self, doing: str, call: Callable[[], Any], *, hint: str = RETRY_HINT) -> Any:
        return self.federation._patiently(doing, call, hint=hint)

    # -- status ------------------------------------------------------------------------------
    def status(self, *, advance: bool = True) -> AnalysisStatus:
        """Overall and per-node state; moves the hub-side lifecycle on when it can. One look:
        a hub that does not answer raises HubUnreachable (``wait()`` rides outages out). An
        analysis that waits too long for a silent node is made final here (deadlines.py)."""
        self._adopt_stored_end()
        if self.record.failed_at is not None:
            return self._given_up()
        cancelled = self.record.cancelled_at is not None
        try:
            with self._call(f"read analysis {self.id}"):
                analysis = None if cancelled else self._core.get_analysis(self.id)
                links = (
                    []
                    if cancelled
                    else every(self._core.find_analysis_nodes, filter={"analysis_id": self.id})
                )
        except HubUnreachable:
            self._hub_was_away = True
            raise
        if analysis is None and not cancelled:
            # cancelled through another handle (`%flame cancel`, the panel): the record says so
            stored = self.federation.store.load(self.id)
            if stored.cancelled_at is None:
                raise NotFound(
                    f"the hub no longer knows analysis {self.id}",
                    hint="It was deleted on the hub; its submission record stays here.",
                )
            self.record = stored
            return self.status(advance=advance)
        types = {n.id: n.type for n in self.federation._node_names().values()}
        build = analysis.build_status if analysis else None
        distribution = analysis.distribution_status if analysis else None
        nodes = tuple(self._node_state(link, types) for link in links)
        nodes = tuple(
            replace(n, waiting=explain_wait(n, distribution == "executed", self.id)) for n in nodes
        )
        overall, failure = overall_status(nodes, distribution, cancelled)
        if analysis is not None and overall not in TERMINAL:
            hub = (build, distribution) if advance else None  # only a look that drives it
            nodes, given_up = self._watch(nodes, distribution == "executed", hub)
            if given_up:
                return self._given_up()
        if advance and analysis is not None and overall not in TERMINAL:
            self._advance(analysis, nodes)
        progress = round(sum(n.progress for n in nodes) / len(nodes)) if nodes else 0
        return AnalysisStatus(
            self.id,
            self.name,
            overall,
            100 if overall == "executed" else progress,
            nodes,
            build,
            distribution,
            failure,
            result_available=overall == "executed",
        )

    def _node_key(self, node_id: str) -> NodePublicIdentity | None:
        """The node's identity pinned at submission, if any (its statements are checked)."""
        known = self.record.node_keys.get(node_id)
        try:
            return NodePublicIdentity.from_dict(known) if known else None
        except FlameLabError:
            return None

    def _node_state(self, link: Any, types: dict[str, str]) -> NodeState:
        node_id = str(link.node_id)
        progress = int(link.execution_progress or 0)
        said = statements.open_status(
            link.comment,
            analysis_id=self.id,
            node_id=node_id,
            approval=link.approval_status,
            execution=link.execution_status,
            progress=progress,
            key=self._node_key(node_id),
        )
        self._stamps[node_id] = said.stamp
        return NodeState(
            node_id=node_id,
            name=self.record.nodes.get(node_id, node_id),
            type=types.get(node_id, "default"),
            approval=link.approval_status,
            execution=link.execution_status,
            progress=progress,
            comment=said.shown() if said.text or said.verified is False else None,
            online=_online(link),
            verified=said.verified,
        )

    # -- the bound on waiting for a silent node (flame_lab/deadlines.py) ---------------------------
    def _adopt_stored_end(self) -> None:
        """Another handle (the panel, another kernel) may have made it final: that sticks."""
        if self.record.failed_at is not None or not isinstance(self.record, SubmissionRecord):
            return
        with contextlib.suppress(FlameLabError):
            stored = self.federation.store.load(self.id)
            if stored.failed_at is not None:
                self.record = stored
            elif stored.cancelled_at is not None and self.record.cancelled_at is None:
                self.record.cancelled_at = stored.cancelled_at

    # what a handle changes in its record; the rest (result hashes...) another handle may own
    _OWN_FIELDS = ("watch", "looked_at", "failed_at", "failure", "final_nodes", "withdrawn")

    def _save(self) -> None:
        """Save this handle's part of the record onto what is stored (another handle, the
        panel or another kernel, may have saved meanwhile); a stored verdict or cancellation
        is kept, never overwritten."""
        try:
            stored = self.federation.store.load(self.id)
        except FlameLabError:
            self.federation.store.save(self.record)
            return
        if stored.failed_at is not None and self.record.failed_at is None:
            self.record = stored
            return
        for name in self._OWN_FIELDS:
            setattr(stored, name, getattr(self.record, name))
        stored.cancelled_at = stored.cancelled_at or self.record.cancelled_at
        self.federation.store.save(stored)
        self.record = stored

    def _watch(
        self,
        nodes: tuple[NodeState, ...],
        distributed: bool,
        hub: tuple[str | None, str | None] | None = None,
    ) -> tuple[tuple[NodeState, ...], bool]:
        """Note what each node said since the last look; give up (True) on a node silent past
        its limit. Only statements the node signed count as hearing from it. ``hub``: the
        build and distribution states, from a look that sends the researcher's commands: once
        every data node approved, the wait is for the hub, and it is bounded the same way."""
        limits = deadlines.Limits.from_env()
        now = self.federation.clock.now()
        record = self.record
        changed = False
        if self._hub_was_away:  # the nodes could not report either: give them time to
            deadlines.after_gap(record.watch, now, limits)
            self._hub_was_away, changed = False, True
        record.looked_at = now
        for node in nodes:
            entry = record.watch.setdefault(node.node_id, {})
            phase = deadlines.phase_of(node, distributed)
            if node.verified is None:  # nothing to check: what the hub shows is all there is
                mark = f"{node.approval}|{node.execution}|{node.progress}|{node.comment}"
                changed |= deadlines.observe(entry, now, phase, mark=mark)
            else:
                changed |= deadlines.observe(entry, now, phase, self._stamps.get(node.node_id))
                if (
                    phase == deadlines.REVIEW
                    and not entry.get("admin")
                    and now - float(entry.get("logsAt", -1e18)) >= deadlines.REVIEW_LOG_INTERVAL
                ):  # has it got the code, and its admin decides? (its signed log says so)
                    entry["logsAt"] = now
                    changed |= self._heard_in_logs(node, entry, now)
        given_up = None
        if hub is not None:
            entry = record.watch.setdefault(deadlines.HUB, {})
            defaults = [n for n in nodes if n.type == "default"]
            on_hub = (
                not distributed
                and bool(defaults)
                and all(deadlines.phase_of(n, distributed) != deadlines.REVIEW for n in defaults)
            )
            phase = deadlines.DISTRIBUTE if on_hub else ""
            changed |= deadlines.observe(entry, now, phase, mark=f"{hub[0]}|{hub[1]}")
            why = deadlines.overdue(entry, "the hub", now, limits)
            if why is not None:
                hub_node = NodeState("", "hub", "hub", None, None, 0, None)
                given_up = (hub_node, why)
        # the first in the analysis's order (review, start, run) is the cause: the others wait
        for node in sorted(nodes, key=lambda n: deadlines.rank(record.watch[n.node_id], n.name)):
            if given_up is not None:
                break
            entry = record.watch[node.node_id]
            if deadlines.overdue(entry, node.name, now, limits) is None:
                continue
            changed |= self._heard_in_logs(node, entry, now)  # a newer line counts as heard
            why = deadlines.overdue(entry, node.name, now, limits)
            if why is not None:
                given_up = (node, why)
                break
        if given_up is not None:
            node, why = given_up
            record.failed_at = _now()
            record.failure = {"nodeId": node.node_id, "nodeName": node.name, "reason": why}
            record.final_nodes = [replace(n, waiting="").to_dict() for n in nodes]
            self._save()  # final here first: a node that returns now changes nothing
            self._saved_look = now
            return nodes, True
        if changed or now - self._saved_look > limits.grace / 2:
            with contextlib.suppress(FlameLabError):  # a look still works on a full disk
                self._save()
                self._saved_look = now
        shown = []
        for node in nodes:
            left = deadlines.countdown(record.watch[node.node_id], now, limits)
            shown.append(
                replace(node, waiting=f"{node.waiting}; {left}") if node.waiting and left else node
            )
        return tuple(shown), False

    def _heard_in_logs(self, node: NodeState, entry: dict[str, Any], now: float) -> bool:
        """Before giving up on a node, look at its log lines: a newer signed line counts as
        hearing from it, and one said before it decided means its admin has the analysis."""
        key = self._node_key(node.node_id)
        try:
            with self._call(f"read the logs of node {node.name}"):
                found = every(
                    self._core.find_analysis_node_logs,
                    filter={"analysis_id": self.id, "node_id": node.node_id},
                )
        except FlameLabError:
            return False  # fail closed: a hub that hides the logs does not keep it waiting
        if key is None:
            return deadlines.observe(entry, now, entry.get("phase", ""), mark=f"lines {len(found)}")
        changed = False
        for line in found:
            said = statements.open_log(
                line.message,
                analysis_id=self.id,
                node_id=node.node_id,
                level=line.level,
                key=key,
            )
            if said.verified and said.stamp is not None:
                if deadlines.heard_new(entry, said.stamp):
                    entry["heard"], changed = now, True
                if entry.get("phase") == deadlines.REVIEW and not entry.get("admin"):
                    entry["admin"], changed = True, True  # it has the code: its admin decides
        return changed

    def _given_up(self) -> AnalysisStatus:
        """The verdict kept in the record; the hub is told (deleted) until it has been."""
        record = self.record
        if not record.withdrawn:
            try:
                with contextlib.suppress(NotFound), self._call(f"cancel analysis {self.id}"):
                    self._core.delete_analysis(self.id)
            except HubUnreachable:
                pass  # the next look tries again
            else:
                record.withdrawn = True
                with contextlib.suppress(FlameLabError):
                    self._save()
        nodes = []
        for data in record.final_nodes:
            with contextlib.suppress(TypeError):
                nodes.append(NodeState(**data))
        failure = record.failure
        return AnalysisStatus(
            self.id,
            self.name,
            "failed",
            round(sum(n.progress for n in nodes) / len(nodes)) if nodes else 0,
            tuple(nodes),
            failure=(failure.get("nodeName", "?"), failure.get("reason", "")),
        )

    def _advance(self, analysis: Any, nodes: Sequence[NodeState]) -> None:
        """Do the researcher's next hub-side steps: build after approval, then distribute.
        A hub that finishes a step at once (the sandbox's build does) gets the next at once."""
        defaults = [n for n in nodes if n.type == "default"]
        approved = bool(defaults) and all(
            n.approval == "approved" and n.verified is not False for n in defaults
        )
        for _ in range(4):
            command = None
            if analysis.configuration_locked and approved and analysis.build_status is None:
                command = "buildStart"
            elif analysis.build_status in IN_PROGRESS:
                command = "buildCheck"
            elif analysis.build_status == "executed" and analysis.distribution_status is None:
                command = "distributionStart"
            elif analysis.distribution_status in IN_PROGRESS:
                command = "distributionCheck"
            if command is None:
                return
            with self._call(f"send {command} for analysis {self.id}"):
                analysis = self._core.send_analysis_command(self.id, command)
            if command.endswith("Check"):
                return

    def wait(
        self,
        timeout: float | None = None,
        *,
        on_change: Callable[[AnalysisStatus], None] | None = None,
        interval: float = 0.2,
    ) -> AnalysisStatus:
        """Until executed (returned) or failed, rejected, cancelled (raised with the reason)."""
        clock = self.federation.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        last, version = None, None
        patience = hub_outage()
        while True:
            looked = clock.monotonic()
            # a hub that restarts or stalls is waited for (FLAME_LAB_HUB_OUTAGE), not given up on
            current = patiently(
                f"read the state of analysis {self.id}",
                self.status,
                patience,
                url=self.federation.hub_url,
                clock=self.federation.clock,
                hint=f"The analysis goes on at the nodes; follow it again once the hub answers: "
                f"`%flame watch {self.id}`, `flame-lab status {self.id}`, or `run.wait()`.",
            )
            # a pause after each look, as long as the look took (at most ``interval``): a
            # large federation's many changes must not keep the machine and the hub busy
            pause = min(clock.monotonic() - looked, interval)
            if on_change and current != last:
                on_change(current)
            last = current
            if current.done:
                break
            if deadline is not None and clock.monotonic() > deadline:
                raise AnalysisFailed(
                    f"analysis {self.id} is still {current.overall} after {timeout:.0f} s",
                    hint="It goes on running; wait again, or watch it with `%flame watch ID`.",
                )
            left = None if deadline is None else max(0.0, deadline - clock.monotonic())
            done_looking = clock.monotonic()
            version = self._next_change(version, interval, left)
            clock.sleep(max(0.0, done_looking + pause - clock.monotonic()))
        if current.overall != "executed":
            where = f" at {current.failure[0]}: {current.failure[1]}" if current.failure else ""
            raise AnalysisFailed(f"analysis {self.id} {current.overall}{where}")
        return current

    def _next_change(self, version: int | None, interval: float, left: float | None) -> int | None:
        """Wait on the hub's change feed of this analysis (a sandbox hub has one: the answer
        comes as soon as something changed); other hubs: sleep ``interval``."""
        if self.federation.change_feed:
            wait = CHANGE_WAIT_SECONDS if left is None else min(CHANGE_WAIT_SECONDS, left)
            params = {"wait": f"{wait:.3f}"}
            if version is not None:
                params["after"] = str(version)
            try:
                with self._call(f"wait for changes of analysis {self.id}"):
                    response = self.federation.clients.core_http.get(
                        f"analyses/{self.id}/changes",
                        params=params,
                        timeout=long_poll_timeout(self.federation.clients, wait),
                    )
                if response.status_code == 200:
                    return int(response.json()["data"]["version"])
                if response.status_code == 404:
                    self.federation.change_feed = False  # a hub without the sandbox's feed
            except (FlameLabError, ValueError, KeyError, TypeError):
                pass
        self.federation.clock.sleep(interval)
        return version

    # -- logs ---------------------------------------------------------------------------------
    def logs(
        self,
        node: str | None = None,
        level: str | None = None,
        *,
        identity: Identity | None = None,
        unlock: bool = False,
        patient: bool = True,
    ) -> list[LogLine]:
        """Every node's log lines (and the hub's), merged by time. The analysis's own lines
        are sealed to you at the node: they are opened here with your key if it is unlocked
        (or ``unlock=True`` asks for the passphrase), else shown as sealed. ``patient``: ride
        out a hub outage (FLAME_LAB_HUB_OUTAGE); False for a caller that looks again anyway."""
        if level is not None and level not in LOG_LEVELS:
            raise FlameLabError(
                f"unknown log level {level!r}", hint="One of: " + ", ".join(LOG_LEVELS)
            )
        names = self.record.nodes
        wanted = list(names)
        if node is not None:
            wanted = [i for i, n in names.items() if node in (i, n)]
            if not wanted:
                raise NotFound(
                    f"node {node!r} is not part of analysis {self.id}",
                    hint="Its nodes: " + ", ".join(sorted(names.values())),
                )

        def read() -> list[LogLine]:
            return self._read_logs(wanted, names, node is None, identity, unlock)

        if patient:
            lines = self._patiently(f"read the logs of analysis {self.id}", read)
        else:
            with self._call(f"read the logs of analysis {self.id}"):
                lines = read()
        if level is not None:
            limit = LOG_LEVELS.index(level)
            lines = [ln for ln in lines if LOG_LEVELS.index(ln.level) <= limit]
        return sorted(lines, key=lambda ln: ln.time)

    def _read_logs(
        self,
        wanted: list[str],
        names: dict[str, str],
        with_hub: bool,
        identity: Identity | None,
        unlock: bool,
    ) -> list[LogLine]:
        """One read of the wanted nodes' lines (and the hub's), checked and opened."""
        lines: list[LogLine] = []
        for node_id in wanted:
            key, seen = self._node_key(node_id), set()
            for log in every(
                self._core.find_analysis_node_logs,
                filter={"analysis_id": self.id, "node_id": node_id},
            ):
                said = statements.open_log(
                    log.message,
                    analysis_id=self.id,
                    node_id=node_id,
                    level=log.level,
                    key=key,
                )
                if said.stamp is not None and said.stamp in seen:  # the hub repeats a line
                    said = statements.Opened(said.text, False)
                seen.add(said.stamp)
                line = LogLine(
                    log.time,
                    node_id,
                    names[node_id],
                    log.level,
                    said.text,
                    verified=said.verified,
                )
                line = self._open_log(line, identity, unlock)
                if line.verified is False:
                    line = replace(line, message=statements.UNVERIFIED + line.message)
                lines.append(line)
        if with_hub:
            for log in every(self._core.find_analysis_logs, filter={"analysis_id": self.id}):
                lines.append(LogLine(log.time, "", "hub", log.level, log.message))
        return lines

    def _open_log(self, line: LogLine, identity: Identity | None, unlock: bool) -> LogLine:
        """A sealed analysis line opened (verified against the node's pinned key), or marked."""
        from flame_lab.release import logs as sealed_logs

        if not sealed_logs.is_sealed(line.message):
            return line
        key = (line.node_id, line.message)
        if key not in self._opened_logs:
            record = self.record
            if identity is None:
                identity = unlocked_identity(prompt=unlock)
            if identity is None:
                return replace(line, message="[sealed to the researcher: unlock your key]")
            trusted, expected = _sealed_by(record, line.node_id)
            try:
                self._opened_logs[key] = sealed_logs.open_line(
                    line.message, identity=identity, trusted_nodes=trusted, expected=expected
                )
            except FlameLabError as exc:
                return replace(line, message=f"[a sealed line did not open: {exc.message}]")
        level, text = self._opened_logs[key]
        return replace(line, level=level if level in LOG_LEVELS else line.level, message=text)

    # -- result -------------------------------------------------------------------------------
    def result(
        self,
        *,
        identity: Identity | None = None,
        trusted: Sequence[str] = (),
        as_frame: bool = False,
    ) -> Any:
        """The final result, fetched, verified, decrypted and decoded here.

        A real FLAME node's pickled result is loaded only through flame_lab's allow-list
        (plain data, NumPy, pandas); ``trusted`` adds exact class names for a result you
        trust (e.g. a fitted model). Other pickles come back as bytes, with a warning.
        ``as_frame=True``: the result as a pandas DataFrame (see flame_lab.frames).
        """
        if as_frame:
            from flame_lab.frames import as_frame as to_frame

            return to_frame(self.result(identity=identity, trusted=trusted))
        if self._have_result and not trusted:
            return self._result
        status = self._patiently(f"read the state of analysis {self.id}", self.status)
        if status.overall != "executed":
            if status.done:
                self.wait(timeout=0)
            raise ResultNotReady(
                f"analysis {self.id} has no result yet (it is {status.overall})",
                hint=f"Wait for it: `%flame watch {self.id} --wait` (in Python: `run.wait()`).",
            )
        blobs = self._patiently(
            f"download the result of analysis {self.id}", self._fetch_result_files
        )
        if not blobs:
            raise AnalysisFailed(f"analysis {self.id} finished without a result file")
        values = self._open(blobs, identity or researcher_identity(), tuple(trusted))
        self._result = values[0] if len(values) == 1 else values
        self._have_result = True
        return self._result

    def _fetch_result_files(self) -> list[tuple[str, bytes]]:
        bucket = self.federation._wait_for_bucket(self.id, "RESULT")
        storage = self.federation.storage
        with self._call(f"download the result of analysis {self.id}"):
            files = every(storage.find_bucket_files, filter={"bucket_id": str(bucket.bucket_id)})
            return [
                (f.name, b"".join(storage.stream_bucket_file(f.id, chunk_size=1 << 20)))
                for f in sorted(files, key=lambda f: f.name)
            ]

    def _open(
        self, blobs: list[tuple[str, bytes]], identity: Identity, trusted: tuple[str, ...] = ()
    ) -> list[Any]:
        record = self.record
        if record.analysis_sealed:
            return self._open_analysis_sealed(blobs, identity, trusted)
        if not record.sealed:
            if any(data.startswith(envelope.MAGIC) for _, data in blobs):
                raise TamperedResult(
                    f"the result of analysis {record.analysis_id} is sealed by its aggregator, "
                    "but you did not trust that node's key when you submitted",
                    hint="Get the aggregator's public identity from its admin, add it to "
                    "fed.node_keys before submitting, and submit again.",
                )
            warnings.warn(
                "This hub returned the result in plaintext, as real FLAME nodes do: it was not "
                "encrypted to your key, so the hub could have read or changed it.",
                stacklevel=3,
            )
            return [decode_node_result(name, data, trusted=trusted) for name, data in blobs]
        aggregator_key, expected = _sealed_by(record, record.aggregator_id)
        guard = SqliteReplayGuard(config.data_dir() / "opened-results.sqlite")
        opened = []
        for file_name, data in blobs:
            if not data.startswith(envelope.MAGIC):
                raise TamperedResult(
                    f"result file {file_name!r} of analysis {record.analysis_id} is not sealed",
                    hint="flame_lab nodes always seal results: this file did not come from "
                    "the aggregator. Do not trust it.",
                )
            opened.append(
                envelope.open_sealed(
                    data,
                    identity=identity,
                    trusted_nodes=aggregator_key,
                    expected=expected,
                    guard=guard,
                )
            )
        envelope.check_result_set([o.header for o in opened])
        opened.sort(key=lambda o: o.header.sequence)
        digests = [o.digest for o in opened]
        if record.result_hashes != digests:
            record.result_hashes = digests
            self.federation.store.save(record)
        return [
            decode_sealed_payload(o.payload, o.header.content_type, trusted=trusted) for o in opened
        ]

    def plot(self, **kwargs: Any) -> Any:
        """The result's numbers as a bar chart (per node and pooled values); the Axes."""
        from flame_lab.frames import plot

        kwargs.setdefault("title", self.name)
        return plot(self.result(), **kwargs)

    def _open_analysis_sealed(
        self, blobs: list[tuple[str, bytes]], identity: Identity, trusted: tuple[str, ...]
    ) -> list:
        """Results the analysis sealed (submitted with sealed=True), perhaps sealed again by a
        node: a node's layer must verify against its pinned key; the analysis's layer has no
        authenticated origin (see selfseal.py), everything else of it is checked."""
        record = self.record
        guard = SqliteReplayGuard(config.data_dir() / "opened-results.sqlite")
        nodes = {
            node_id: NodePublicIdentity.from_dict(key)
            for node_id, key in record.node_keys.items()
            if node_id == record.aggregator_id
        }
        facts = {
            "analysis_id": record.analysis_id,
            "bundle_hash": record.bundle_hash,
            "run_nonce": record.run_nonce,
            "recipient_ids": frozenset(record.recipients),
        }
        opened = []
        for file_name, data in blobs:
            if not data.startswith(envelope.MAGIC):
                raise TamperedResult(
                    f"result file {file_name!r} of analysis {record.analysis_id} is not sealed",
                    hint="You submitted it with sealed=True, so the analysis seals every result "
                    "it writes: this file came from elsewhere. Do not trust it.",
                )
            if not envelope.peek_header(data).node_id.startswith(selfseal.ORIGIN_PREFIX):
                outer = envelope.open_sealed(
                    data,
                    identity=identity,
                    trusted_nodes=nodes,
                    expected=envelope.Expected(**facts, node_id=record.aggregator_id),
                    guard=guard,
                )
                data = outer.payload
            inner = envelope.open_sealed(
                data,
                identity=identity,
                trusted_nodes={},
                expected=envelope.Expected(**facts),
                guard=guard,
                unauthenticated_origin=True,
            )
            if not inner.header.node_id.startswith(selfseal.ORIGIN_PREFIX):
                raise TamperedResult(
                    f"result file {file_name!r} was not sealed by the analysis",
                    hint="Do not trust it; ask the hub's admins what stored it.",
                )
            opened.append(inner)
        envelope.check_result_set([o.header for o in opened])  # exactly 0..count-1, once each
        opened.sort(key=lambda o: o.header.sequence)
        digests = [o.digest for o in opened]
        if record.result_hashes != digests:
            record.result_hashes = digests
            self.federation.store.save(record)
        return [
            decode_sealed_payload(o.payload, o.header.content_type, trusted=trusted) for o in opened
        ]

    def monitor(self, *, wait: bool = False) -> None:
        """The live monitor in the current notebook cell (plain text where no widgets render)."""
        from flame_lab.kernel.widgets import monitor

        monitor(self, wait=wait)

    # -- cancel -------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the analysis: the hub forgets it and the nodes stop their runs."""
        if self.record.cancelled_at is None:

            def delete() -> None:  # a retry after a lost answer finds it gone: that is done
                with contextlib.suppress(NotFound), self._call(f"cancel analysis {self.id}"):
                    self._core.delete_analysis(self.id)

            self._patiently(
                f"cancel analysis {self.id}",
                delete,
                hint="Nothing changed here; cancel again once the hub answers (sandbox: "
                "`flame-lab sandbox up`).",
            )
            self.record.cancelled_at = _now()
            self._save()


def _check_sealable(draft: Draft, image_path: str) -> None:
    """sealed=True needs flame_lab in the image and no node-side DP (the node sees no number)."""
    from flame_lab.images.catalog import load

    catalog = load()
    have = catalog.provided(catalog.get(image_path))
    lacking = [d for d in selfseal.REQUIRED_DISTRIBUTIONS if d not in have]
    if lacking:
        raise ImageError(
            f"sealed=True needs {' and '.join(lacking)} in the master image, and "
            f"{image_path} lacks it",
            hint="Choose an image built from deploy/master-image/ (the sandbox offers it as "
            f"{selfseal.SEALING_IMAGE}), or submit without sealed=True.",
        )
    if any("StarLocalDPModel" in src.text for src in draft.sources.values()):
        raise FlameLabError(
            "StarLocalDPModel cannot be used with sealed=True: the node adds the noise, so it "
            "must see the number, and the analysis would have sealed it",
            hint="Submit without sealed=True, or use StarModel.",
        )


def _resume_hint(analysis_id: str) -> str:
    return (
        f"The submission of {analysis_id} is kept pending with its signed bundle: "
        f"`fed.resume('{analysis_id}')`, `flame-lab status` or `%flame status` finishes it "
        "once the hub answers (sandbox: `flame-lab sandbox up`)."
    )


def attach(analysis_id: str, federation: Federation | None = None) -> Analysis:
    """The handle of an analysis submitted from this account, on the active federation."""
    return (federation or connect()).attach(analysis_id)


def _sealed_by(
    record: SubmissionRecord, node_id: str
) -> tuple[dict[str, NodePublicIdentity], envelope.Expected]:
    """The pinned key of ``node_id`` and the header its sealed output must carry for this run."""
    pinned = {
        i: NodePublicIdentity.from_dict(k) for i, k in record.node_keys.items() if i == node_id
    }
    expected = envelope.Expected(
        analysis_id=record.analysis_id,
        bundle_hash=record.bundle_hash,
        run_nonce=record.run_nonce,
        recipient_ids=frozenset(record.recipients),
        node_id=node_id,
    )
    return pinned, expected
