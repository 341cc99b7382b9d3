"""The Hub's rules for core records: who may do what, and how an analysis moves from draft to
distributed. Handlers stay thin; every decision about state lives here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

from flame_lab.sandbox.hub.access import Access
from flame_lab.sandbox.hub.auth import Principal
from flame_lab.sandbox.hub.gc import collect as collect_garbage
from flame_lab.sandbox.hub.limits import validate_body
from flame_lab.sandbox.hub.query import Query
from flame_lab.sandbox.hub.records import Records, robot_client
from flame_lab.sandbox.hub.resources import BODIES, BUCKET_TYPES
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.wire import ApiError, new_id, now_iso

BUCKET_DELAY = 0.05  # the real Hub creates analysis buckets asynchronously; so do we
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_RANK = {
    s: i
    for i, s in enumerate(["starting", "started", "executing", "stopping", "stopped", "executed"])
}
_SLUG = re.compile(r"[^a-z0-9-]+")

Defer = Callable[[Callable[[], None]], None]


def now_ms() -> float:
    """Log times as the Hub's Log model carries them: a string of epoch milliseconds."""
    return time.time() * 1000


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, code="forbidden")


def illegal(message: str) -> ApiError:
    """A command or change that the analysis's current state does not allow."""
    return ApiError(400, message, code="illegal_state")


def build_hash(manifest: list[tuple[str, str]]) -> str:
    """sha256 over the canonical JSON of the sorted [[path, sha256], ...] list."""
    listing = sorted([path, digest] for path, digest in manifest)
    return hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()


def aggregate_execution(statuses: list[str | None], progress: list[int | None]) -> tuple:
    """An analysis's execution from its nodes': failed wins, else the least advanced; mean progress.

    Nodes that have not reported yet count as ``starting`` once any node has reported."""
    if not any(s is not None for s in statuses):
        return None, None
    if "failed" in statuses:
        status = "failed"
    else:
        status = min((s or "starting" for s in statuses), key=lambda s: _RANK[s])
    mean = round(sum(p or 0 for p in progress) / len(progress))
    return status, mean


class Core:
    """Core and storage rules over the store; ``defer`` runs a callback shortly on the IO loop."""

    def __init__(
        self, store: Store, defer: Defer | None = None, *, skip_analysis_approval: bool = False
    ) -> None:
        self.store = store
        self.defer = defer
        self.skip_analysis_approval = skip_analysis_approval
        self.access = Access(store)
        self.records = Records(store, self.access)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _user_only(p: Principal, what: str) -> None:
        if not p.is_user:
            raise forbidden(f"only a user may {what}; node clients may not")

    def _realm(self) -> str:
        return self.store.select("realms")[0]["id"]

    def _analysis_nodes(self, analysis_id: str) -> list[dict[str, Any]]:
        return self.store.select("analysis-nodes", analysisId=analysis_id)

    def participant(self, p: Principal, analysis_id: str) -> bool:
        """Whether the caller is the analysis's owner, an admin or one of its nodes."""
        analysis = self.store.get("analyses", analysis_id)
        return analysis is not None and self.access.may_see_analysis(p, analysis)

    def _owner(self, p: Principal, analysis: dict[str, Any], verb: str) -> None:
        self.access.require_owner(p, analysis, verb)

    def _unlocked(self, analysis: dict[str, Any], what: str, p: Principal | None = None) -> None:
        if p is not None and p.admin:  # an operator tidies up as on the Hub, lock or not
            return
        if analysis["configurationLocked"]:
            raise illegal(f"cannot {what}: the analysis configuration is locked (unlock it first)")

    def log(self, analysis_id: str, message: str, level: str = "info", **labels: str) -> None:
        """A hub-side analysis log line (build, distribution, configuration)."""
        self.store.insert(
            "analysis-logs",
            {
                "analysisId": analysis_id,
                "time": str(int(now_ms())),
                "message": message,
                "service": "hub",
                "channel": "background",
                "level": level,
                "labels": {"analysisId": analysis_id, **labels},
            },
        )

    # -- dispatch ----------------------------------------------------------------------------
    def create(self, name: str, p: Principal, body: Any) -> dict[str, Any]:
        if Records.serves(name, "create"):
            return self.records.create(name, p, body)
        handler = getattr(self, "create_" + name.replace("-", "_"), None)
        if handler is None or (name, "create") not in BODIES:
            raise ApiError(405, f"the sandbox hub does not create {name}")
        return handler(p, validate_body(body, BODIES[(name, "create")]))

    def update(self, name: str, p: Principal, record_id: str, body: Any) -> dict[str, Any]:
        if Records.serves(name, "update"):
            return self.records.update(name, p, record_id, body)
        handler = getattr(self, "update_" + name.replace("-", "_"), None)
        if handler is None or (name, "update") not in BODIES:
            raise ApiError(405, f"the sandbox hub does not update {name}")
        changes = validate_body(body, BODIES[(name, "update")])
        record = self.store.require(name, record_id)
        return handler(p, record, changes)

    def delete(self, name: str, p: Principal, record_id: str) -> None:
        if Records.serves(name, "delete"):
            self.records.delete(name, p, record_id)
            return
        handler = getattr(self, "delete_" + name.replace("-", "_"), None)
        if handler is None:
            raise ApiError(405, f"the sandbox hub does not delete {name}")
        handler(p, self.store.require(name, record_id))

    def check_read(self, name: str, p: Principal, query: Query) -> None:
        """Listing rules: a node reads only its own inbox; logs are listed per analysis; every
        listing is narrowed to what the caller may see (access.py)."""
        query_filter = query.filter_value
        if name == "analysis-messages":
            if p.is_user:
                raise forbidden("only node clients read analysis messages")
            if query_filter("toNodeId") != p.node_id:
                raise forbidden("a node may read only its own inbox: filter[toNodeId]=<own id>")
        if name in ("analysis-logs", "analysis-node-logs") and not query_filter("analysisId"):
            raise ApiError(400, "filter[analysisId] is required for logs", code="invalid_field")
        self.access.narrow(name, p, query)

    def check_record(self, name: str, p: Principal, record: dict[str, Any]) -> None:
        """Reading one record: a 403 naming the rule unless the caller may see it."""
        self.access.require_read(name, p, record)

    # -- nodes and projects ------------------------------------------------------------------
    def create_nodes(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        self.access.require_admin(p, "create nodes")
        if self.store.select("nodes", name=body["name"]):
            raise ApiError(409, f"a node named {body['name']!r} exists", code="conflict")
        realm_id = body.get("realmId") or p.realm_id
        if body.get("registryId") is not None:
            self.store.require("registries", body["registryId"], "registry")
        with self.store.transaction():
            client = robot_client(self.store, f"node-{body['name']}", realm_id)
            return self.store.insert(
                "nodes",
                {
                    "name": body["name"],
                    "externalName": body.get("externalName"),
                    "hidden": bool(body.get("hidden")),
                    "realmId": realm_id,
                    "registryId": body.get("registryId"),
                    "type": body.get("type") or "default",
                    "online": False,
                    "clientId": client["id"],
                },
            )

    def update_nodes(self, p: Principal, node: dict[str, Any], ch: dict[str, Any]) -> dict:
        self.access.require_node_change(p, node, set(ch))
        return self.store.update("nodes", node["id"], ch)

    def delete_nodes(self, p: Principal, node: dict[str, Any]) -> None:
        self.access.require_admin(p, "delete nodes")
        with self.store.transaction():
            memberships = self.store.select("project-nodes", nodeId=node["id"])
            links = self.store.select("analysis-nodes", nodeId=node["id"])
            projects = {pn["projectId"] for pn in memberships}
            analyses = {an["analysisId"] for an in links}
            self.store.delete("project-nodes", nodeId=node["id"])
            self.store.delete("analysis-nodes", nodeId=node["id"])
            self.store.delete("nodes", id=node["id"])
            if node["clientId"] is not None:
                self.records.drop_client(node["clientId"])
            for project_id in projects:
                if self.store.get("projects", project_id) is not None:
                    self._count_project(project_id)
            for analysis_id in analyses:
                if self.store.get("analyses", analysis_id) is not None:
                    self.refresh(analysis_id)

    def _image(self, image_id: str | None) -> None:
        if image_id is not None:
            self.store.require("master-images", image_id, "master image")

    def create_projects(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        self._user_only(p, "create projects")
        self._image(body.get("masterImageId"))
        return self.store.insert(
            "projects",
            {**body, "analyses": 0, "nodes": 0, "realmId": p.realm_id, "userId": p.id},
        )

    def _project_owner(self, p: Principal, project: dict[str, Any], verb: str) -> None:
        if not (p.admin or (p.is_user and project["userId"] == p.id)):
            raise forbidden(f"only the creator of project {project['name']} or an admin may {verb}")

    def update_projects(self, p: Principal, project: dict[str, Any], ch: dict[str, Any]) -> dict:
        self._project_owner(p, project, "change it")
        self._image(ch.get("masterImageId"))
        return self.store.update("projects", project["id"], ch)

    def delete_projects(self, p: Principal, project: dict[str, Any]) -> None:
        self._project_owner(p, project, "delete it")
        if self.store.select("analyses", projectId=project["id"]):
            raise illegal("delete the project's analyses first")
        with self.store.transaction():
            self.store.delete("project-nodes", projectId=project["id"])
            self.store.delete("projects", id=project["id"])

    def _count_project(self, project_id: str) -> None:
        self.store.update(
            "projects",
            project_id,
            {
                "nodes": len(self.store.select("project-nodes", projectId=project_id)),
                "analyses": len(self.store.select("analyses", projectId=project_id)),
            },
        )

    def create_project_nodes(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        project = self.store.require("projects", body["projectId"], "project")
        self._project_owner(p, project, "add nodes to it")
        node = self.store.require("nodes", body["nodeId"], "node")
        if self.store.select("project-nodes", projectId=project["id"], nodeId=node["id"]):
            raise ApiError(409, "the node is already part of the project", code="conflict")
        with self.store.transaction():
            record = self.store.insert(
                "project-nodes",
                {
                    **body,
                    "approvalStatus": None,
                    "projectRealmId": project["realmId"],
                    "nodeRealmId": node["realmId"],
                },
            )
            self._count_project(project["id"])
        return record

    def update_project_nodes(self, p: Principal, pn: dict[str, Any], ch: dict[str, Any]) -> dict:
        own = not p.is_user and p.node_id == pn["nodeId"]
        if "approvalStatus" in ch and not (own or p.admin):
            raise forbidden(
                "only the node itself or an admin may approve or reject its project membership"
            )
        if not p.is_user and not own:
            raise forbidden("a node may change only its own project membership")
        if p.is_user and not p.admin:
            project = self.store.require("projects", pn["projectId"], "project")
            self._project_owner(p, project, "comment on its memberships")
        return self.store.update("project-nodes", pn["id"], ch)

    def delete_project_nodes(self, p: Principal, pn: dict[str, Any]) -> None:
        self._project_owner(p, self.store.require("projects", pn["projectId"]), "remove its nodes")
        with self.store.transaction():
            self.store.delete("project-nodes", id=pn["id"])
            self._count_project(pn["projectId"])

    # -- analyses ----------------------------------------------------------------------------
    def create_analyses(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        self._user_only(p, "create analyses")
        project = self.store.require("projects", body["projectId"], "project")
        image_id = body.get("masterImageId") or project["masterImageId"]
        self._image(image_id)
        analysis_id = new_id()
        name = body.get("name") or f"analysis-{analysis_id[:8]}"
        with self.store.transaction():
            # the analysis's own robot (the Hub gives each one; its secret is set by the owner)
            client = robot_client(self.store, f"analysis-{analysis_id}", p.realm_id)
            self.store.insert(
                "analyses",
                {
                    "id": analysis_id,
                    "clientId": client["id"],
                    "name": _SLUG.sub("-", name.lower()).strip("-") or analysis_id,
                    "displayName": body.get("displayName") or name,
                    "description": body.get("description"),
                    "projectId": project["id"],
                    "masterImageId": image_id,
                    "registryId": body.get("registryId"),
                    "imageCommandArguments": body.get("imageCommandArguments") or [],
                    "configurationLocked": False,
                    "realmId": p.realm_id,
                    "userId": p.id,
                },
            )
            for pn in self.store.select("project-nodes", projectId=project["id"]):
                if pn["approvalStatus"] == "approved":
                    self._add_analysis_node(analysis_id, pn["nodeId"], p.realm_id)
            self._count_project(project["id"])
            record = self.refresh(analysis_id)
        if self.defer is not None:
            self.defer(lambda: self.ensure_buckets(analysis_id))
        return record

    def _add_analysis_node(self, analysis_id: str, node_id: str, realm_id: str) -> dict:
        node = self.store.require("nodes", node_id, "node")
        return self.store.insert(
            "analysis-nodes",
            {
                "analysisId": analysis_id,
                "nodeId": node_id,
                # aggregators are approved automatically, as on the real Hub; every node when
                # the hub is told to skip approvals (the Hub's SKIP_ANALYSIS_APPROVAL)
                "approvalStatus": (
                    "approved"
                    if node["type"] == "aggregator" or self.skip_analysis_approval
                    else None
                ),
                "analysisRealmId": realm_id,
                "nodeRealmId": node["realmId"],
            },
        )

    def update_analyses(self, p: Principal, analysis: dict[str, Any], ch: dict[str, Any]) -> dict:
        self._owner(p, analysis, "change it")
        self._unlocked(analysis, "change the analysis")
        self._image(ch.get("masterImageId"))
        if "name" in ch:
            ch["name"] = _SLUG.sub("-", ch["name"].lower()).strip("-")
        with self.store.transaction():
            self.store.update("analyses", analysis["id"], ch)
            return self.refresh(analysis["id"])

    def delete_analyses(self, p: Principal, analysis: dict[str, Any]) -> None:
        self._owner(p, analysis, "delete it")
        aid = analysis["id"]
        with self.store.transaction():
            for ab in self.store.select("analysis-buckets", analysisId=aid):
                self.store.delete("bucket-files", bucketId=ab["bucketId"])
                self.store.delete("buckets", id=ab["bucketId"])
            for name in (
                "analysis-bucket-files",
                "analysis-buckets",
                "analysis-nodes",
                "analysis-logs",
                "analysis-node-logs",
                "analysis-messages",
            ):
                self.store.delete(name, analysisId=aid)
            self.store.delete("analyses", id=aid)
            if analysis["clientId"] is not None:
                self.records.drop_client(analysis["clientId"])
            self._count_project(analysis["projectId"])
        collect_garbage(self.store)  # its code and results, unless another analysis shares them

    def refresh(self, analysis_id: str) -> dict[str, Any]:
        """Recompute an analysis's derived fields from its nodes, files and image."""
        analysis = self.store.require("analyses", analysis_id, "analysis")
        nodes = self._analysis_nodes(analysis_id)
        types = {
            n["nodeId"]: (self.store.get("nodes", n["nodeId"]) or {}).get("type") for n in nodes
        }
        defaults = [n for n in nodes if types[n["nodeId"]] == "default"]
        aggregators = [n for n in nodes if types[n["nodeId"]] == "aggregator"]
        approved = [n for n in nodes if n["approvalStatus"] == "approved"]
        entrypoint = bool(
            self.store.select("analysis-bucket-files", analysisId=analysis_id, root=True)
        )
        image = analysis["masterImageId"] is not None and (
            self.store.get("master-images", analysis["masterImageId"]) is not None
        )
        status, progress = aggregate_execution(
            [n["executionStatus"] for n in nodes], [n["executionProgress"] for n in nodes]
        )
        changes = {
            "nodes": len(nodes),
            "nodesApproved": len(approved),
            "configurationEntrypointValid": entrypoint,
            "configurationImageValid": image,
            "configurationNodeDefaultValid": len(defaults) >= 1,
            "configurationNodeAggregatorValid": len(aggregators) == 1,
            "configurationNodesValid": len(defaults) >= 1 and len(aggregators) == 1,
            "distributionNodesValid": bool(nodes) and len(approved) == len(nodes),
            "executionStatus": status,
            "executionProgress": progress,
        }
        if all(analysis[k] == v for k, v in changes.items()):
            return analysis
        return self.store.update("analyses", analysis_id, changes)

    # -- analysis nodes ----------------------------------------------------------------------
    def create_analysis_nodes(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        analysis = self.store.require("analyses", body["analysisId"], "analysis")
        self._owner(p, analysis, "add nodes to it")
        self._unlocked(analysis, "add nodes")
        self.store.require("nodes", body["nodeId"], "node")
        members = self.store.select(
            "project-nodes", projectId=analysis["projectId"], nodeId=body["nodeId"]
        )
        if not members:  # as on the Hub: membership, approved or not (the node approves anyway)
            raise illegal("the node is not a member of the analysis's project")
        if self.store.select("analysis-nodes", analysisId=analysis["id"], nodeId=body["nodeId"]):
            raise ApiError(409, "the node is already part of the analysis", code="conflict")
        with self.store.transaction():
            record = self._add_analysis_node(analysis["id"], body["nodeId"], analysis["realmId"])
            self.refresh(analysis["id"])
        return record

    def update_analysis_nodes(self, p: Principal, an: dict[str, Any], ch: dict[str, Any]) -> dict:
        own = not p.is_user and p.node_id == an["nodeId"]
        node_only = {"approvalStatus", "executionStatus", "executionProgress"} & set(ch)
        if node_only and not (own or p.admin):
            raise forbidden(
                "only the node itself may change "
                + ", ".join(sorted(node_only))
                + " of its analysis-node"
            )
        if not p.is_user and not own:
            raise forbidden("a node may change only its own analysis-node")
        analysis = self.store.require("analyses", an["analysisId"], "analysis")
        if p.is_user:
            self._owner(p, analysis, "comment on its nodes")
        if "approvalStatus" in ch:
            if not analysis["configurationLocked"]:
                raise illegal("approve an analysis only after its configuration is locked")
            if analysis["buildStatus"] is not None:
                raise illegal("the analysis is already built; approvals are final")
        if {"executionStatus", "executionProgress"} & set(ch) and not p.admin:
            if analysis["distributionStatus"] != "executed":
                raise illegal("report execution only after the analysis is distributed")
            if an["approvalStatus"] != "approved":
                raise illegal("a node runs only analyses it approved")
        progress = ch.get("executionProgress")
        if progress is not None and not 0 <= progress <= 100:
            raise ApiError(400, "executionProgress must be between 0 and 100", code="invalid_field")
        with self.store.transaction():
            record = self.store.update("analysis-nodes", an["id"], ch)
            self.refresh(an["analysisId"])
        return record

    def delete_analysis_nodes(self, p: Principal, an: dict[str, Any]) -> None:
        analysis = self.store.require("analyses", an["analysisId"], "analysis")
        self._owner(p, analysis, "remove its nodes")
        self._unlocked(analysis, "remove nodes")
        with self.store.transaction():
            self.store.delete("analysis-nodes", id=an["id"])
            self.refresh(analysis["id"])

    # -- commands ----------------------------------------------------------------------------
    def command(self, p: Principal, analysis_id: str, body: Any) -> dict[str, Any]:
        self._owner(p, self.store.require("analyses", analysis_id, "analysis"), "send it commands")
        command = validate_body(body, BODIES[("analyses", "command")])["command"]
        with self.store.transaction():
            self.refresh(analysis_id)
            analysis = self.store.require("analyses", analysis_id, "analysis")
            return getattr(self, "_cmd_" + command)(analysis)

    def _cmd_configurationLock(self, a: dict[str, Any]) -> dict[str, Any]:
        if a["configurationLocked"]:
            raise illegal("the configuration is already locked")
        missing = [
            what
            for key, what in (
                ("configurationNodeDefaultValid", "at least one default (analyzer) node"),
                ("configurationNodeAggregatorValid", "exactly one aggregator node"),
                ("configurationEntrypointValid", "an entrypoint (a CODE bucket file with root)"),
                ("configurationImageValid", "a master image"),
            )
            if not a[key]
        ]
        if missing:
            raise illegal("cannot lock the configuration; it lacks " + "; ".join(missing))
        self.log(a["id"], "configuration locked")
        return self.store.update("analyses", a["id"], {"configurationLocked": True})

    def _cmd_configurationUnlock(self, a: dict[str, Any]) -> dict[str, Any]:
        if not a["configurationLocked"]:
            raise illegal("the configuration is not locked")
        if a["distributionStatus"] is not None:
            raise illegal("the analysis is already distributed; create a new analysis instead")
        for an in self._analysis_nodes(a["id"]):
            node = self.store.get("nodes", an["nodeId"]) or {}
            if node.get("type") == "default":
                self.store.update("analysis-nodes", an["id"], {"approvalStatus": None})
        self.log(a["id"], "configuration unlocked; node approvals reset")
        self.store.update(
            "analyses",
            a["id"],
            {
                "configurationLocked": False,
                "buildStatus": None,
                "buildProgress": None,
                "buildHash": None,
                "buildSize": None,
                "buildOs": None,
            },
        )
        return self.refresh(a["id"])

    def _cmd_buildStart(self, a: dict[str, Any]) -> dict[str, Any]:
        """As on the Hub, the build runs in the background: ``starting`` now, ``executed``
        (or ``failed``, with a log line saying why) a moment later; buildCheck tells."""
        if not a["configurationLocked"]:
            raise illegal("lock the configuration before building")
        pending = [
            an["nodeId"]
            for an in self._analysis_nodes(a["id"])
            if an["approvalStatus"] != "approved"
        ]
        if pending:
            raise illegal(f"{len(pending)} node(s) have not approved the analysis yet")
        if a["buildStatus"] == "executed":
            raise illegal("the analysis is already built")
        if a["buildStatus"] in ("starting", "started"):
            raise illegal("the analysis is being built; buildCheck tells when it is done")
        if self.analysis_bucket(a["id"], "CODE") is None:
            raise illegal("the analysis has no CODE bucket yet; retry in a moment")
        if self.defer is None:
            return self._build(a)
        analysis_id = a["id"]
        self.defer(lambda: self.finish_build(analysis_id))
        return self.store.update(
            "analyses", a["id"], {"buildStatus": "starting", "buildProgress": 0}
        )

    def finish_build(self, analysis_id: str) -> None:
        """The background half of buildStart (also run at start-up for interrupted builds)."""
        with self.store.transaction():
            a = self.store.get("analyses", analysis_id)
            if a is None or a["buildStatus"] not in ("starting", "started"):
                return  # deleted or unlocked meanwhile
            try:
                self._build(a)
            except ApiError as exc:
                self.log(analysis_id, f"build failed: {exc.message}", level="error")
                self.store.update(
                    "analyses", analysis_id, {"buildStatus": "failed", "buildProgress": None}
                )

    def _build(self, a: dict[str, Any]) -> dict[str, Any]:
        digest, size = self._snapshot(a)
        self.log(a["id"], f"build executed: {digest}", buildHash=digest)
        return self.store.update(
            "analyses",
            a["id"],
            {
                "buildStatus": "executed",
                "buildProgress": 100,
                "buildHash": digest,
                "buildSize": size,
                "buildOs": "linux",
            },
        )

    def _cmd_buildCheck(self, a: dict[str, Any]) -> dict[str, Any]:
        if a["buildStatus"] is None:
            raise illegal("the build has not been started")
        return a

    def _cmd_distributionStart(self, a: dict[str, Any]) -> dict[str, Any]:
        if a["buildStatus"] != "executed":
            raise illegal("the build must be executed before distribution")
        if a["distributionStatus"] is not None:
            raise illegal("the analysis is already distributed")
        self.log(a["id"], "distribution executed: the build is available to the nodes")
        return self.store.update(
            "analyses", a["id"], {"distributionStatus": "executed", "distributionProgress": 100}
        )

    def _cmd_distributionCheck(self, a: dict[str, Any]) -> dict[str, Any]:
        if a["distributionStatus"] is None:
            raise illegal("the distribution has not been started")
        return a

    def _cmd_storageCheck(self, a: dict[str, Any]) -> dict[str, Any]:
        self.ensure_buckets(a["id"])
        return self.store.require("analyses", a["id"], "analysis")

    # -- builds ------------------------------------------------------------------------------
    def _snapshot(self, a: dict[str, Any]) -> tuple[str, int]:
        """Freeze the CODE bucket as a build: a manifest of (path, SHA-256, size) over the
        content-addressed blobs, which never change (one copy of the code, however often built):
        what nodes run is what was approved."""
        bucket = self.analysis_bucket(a["id"], "CODE")
        if bucket is None:
            raise illegal("the analysis has no CODE bucket yet; retry in a moment")
        files = self.store.select("bucket-files", bucketId=bucket["bucketId"])
        manifest = sorted((f["path"], f["hash"], f["size"]) for f in files)
        missing = [path for path, sha, _ in manifest if not self.store.blob_path(sha).is_file()]
        if missing:
            raise ApiError(503, f"the hub lost the content of {', '.join(missing)}; re-upload it")
        digest = build_hash([(path, sha) for path, sha, _ in manifest])
        size = sum(s for _, _, s in manifest)
        self.store.execute(
            "INSERT OR IGNORE INTO builds VALUES (?, ?, ?, ?, ?)",
            (digest, a["id"], json.dumps([[p, h, s] for p, h, s in manifest]), size, now_iso()),
        )
        return digest, size

    def build_of_bucket(self, bucket_id: str) -> tuple[str, list[list[Any]]] | None:
        """The immutable build (its hash and manifest) a CODE bucket was frozen into, once the
        analysis is built; the files are the blobs the manifest names."""
        ab = self.store.select("analysis-buckets", bucketId=bucket_id, type="CODE")
        if not ab:
            return None
        analysis = self.store.get("analyses", ab[0]["analysisId"])
        if not analysis or not analysis["buildHash"]:
            return None
        rows = self.store.execute(
            'SELECT "manifest" FROM builds WHERE "hash" = ?', (analysis["buildHash"],)
        )
        return analysis["buildHash"], json.loads(rows[0][0])

    # -- buckets -----------------------------------------------------------------------------
    def analysis_bucket(self, analysis_id: str, kind: str) -> dict[str, Any] | None:
        found = self.store.select("analysis-buckets", analysisId=analysis_id, type=kind)
        return found[0] if found else None

    def ensure_buckets(self, analysis_id: str) -> None:
        """Create the analysis's CODE, RESULT and TEMP buckets if they are missing."""
        with self.store.transaction():
            analysis = self.store.get("analyses", analysis_id)
            if analysis is None:
                return
            for kind in BUCKET_TYPES:
                if self.analysis_bucket(analysis_id, kind):
                    continue
                bucket = self.store.insert(
                    "buckets",
                    {
                        "name": f"analysis-{kind.lower()}-{analysis_id}",
                        "region": None,
                        "actorId": analysis["userId"],
                        "actorType": "user",
                        "realmId": analysis["realmId"],
                    },
                )
                self.store.insert(
                    "analysis-buckets",
                    {
                        "type": kind,
                        "bucketId": bucket["id"],
                        "analysisId": analysis_id,
                        "realmId": analysis["realmId"],
                    },
                )

    def recover(self) -> None:
        """At start: finish bucket creation and builds that a crash interrupted."""
        for row in self.store.execute("SELECT id FROM analyses"):
            self.ensure_buckets(row[0])
        for row in self.store.execute(
            "SELECT id FROM analyses WHERE \"buildStatus\" IN ('starting', 'started')"
        ):
            self.finish_build(row[0])

    def bucket_owner(self, bucket_id: str) -> tuple[dict | None, dict | None]:
        """(analysis-bucket, analysis) for an analysis bucket, else (None, None)."""
        found = self.store.select("analysis-buckets", bucketId=bucket_id)
        if not found:
            return None, None
        return found[0], self.store.get("analyses", found[0]["analysisId"])

    def check_bucket_read(self, p: Principal, bucket: dict[str, Any]) -> None:
        self.access.require_bucket_read(p, bucket)

    def check_bucket_write(self, p: Principal, bucket: dict[str, Any]) -> None:
        ab, analysis = self.bucket_owner(bucket["id"])
        if analysis is None:
            if bucket["actorId"] != p.id and not p.admin:
                raise forbidden("only the bucket's creator may write to it")
            return
        if ab["type"] == "CODE":
            self._user_only(p, "write analysis code")
            self._owner(p, analysis, "write its code")
            self._unlocked(analysis, "change the analysis code", p)
        else:
            if p.is_user:
                raise forbidden(f"only the analysis's nodes write to its {ab['type']} bucket")
            if not self.participant(p, analysis["id"]):
                raise forbidden("this node is not part of the bucket's analysis")

    def files_uploaded(self, p: Principal, bucket_id: str, files: list[dict[str, Any]]) -> None:
        """Index files that landed in an analysis bucket as analysis-bucket-files."""
        ab, analysis = self.bucket_owner(bucket_id)
        if analysis is None:
            return
        for f in files:
            if self.store.select("analysis-bucket-files", bucketFileId=f["id"]):
                continue
            self.store.insert(
                "analysis-bucket-files",
                {
                    "path": f["path"],
                    "bucketFileId": f["id"],
                    "bucketId": bucket_id,
                    "analysisBucketId": ab["id"],
                    "root": False,
                    "realmId": analysis["realmId"],
                    "userId": p.id if p.is_user else None,
                    "clientId": None if p.is_user else p.id,
                    "analysisId": analysis["id"],
                },
            )

    def file_removed(self, bucket_file_id: str) -> None:
        rows = self.store.select("analysis-bucket-files", bucketFileId=bucket_file_id)
        self.store.delete("analysis-bucket-files", bucketFileId=bucket_file_id)
        for row in rows:
            self.refresh(row["analysisId"])

    def create_buckets(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return self.store.insert(
            "buckets",
            {
                "name": body["name"],
                "region": body.get("region"),
                "actorId": p.id,
                "actorType": p.kind,
                "realmId": p.realm_id,
            },
        )

    def delete_buckets(self, p: Principal, bucket: dict[str, Any]) -> None:
        if self.bucket_owner(bucket["id"])[1] is not None:
            raise illegal("an analysis bucket goes away with its analysis")
        if bucket["actorId"] != p.id and not p.admin:
            raise forbidden("only the bucket's creator may delete it")
        with self.store.transaction():
            self.store.delete("bucket-files", bucketId=bucket["id"])
            self.store.delete("buckets", id=bucket["id"])

    def delete_bucket_files(self, p: Principal, bf: dict[str, Any]) -> None:
        bucket = self.store.require("buckets", bf["bucketId"], "bucket")
        self.check_bucket_write(p, bucket)
        with self.store.transaction():
            self.store.delete("bucket-files", id=bf["id"])
            self.file_removed(bf["id"])

    # -- analysis bucket files ---------------------------------------------------------------
    def _set_root(self, analysis_id: str, keep: str | None) -> None:
        """Only one entrypoint per analysis: a new root clears the others."""
        for row in self.store.select("analysis-bucket-files", analysisId=analysis_id, root=True):
            if row["id"] != keep:
                self.store.update("analysis-bucket-files", row["id"], {"root": False})

    def create_analysis_bucket_files(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """Idempotent: the sandbox indexes uploads itself, so this finds or creates the row."""
        self._user_only(p, "register analysis code files")
        ab = self.store.require("analysis-buckets", body["analysisBucketId"], "analysis bucket")
        self._owner(p, self.store.require("analyses", ab["analysisId"]), "register its files")
        if ab["bucketId"] != body["bucketId"]:
            raise ApiError(
                400, "bucketId does not belong to analysisBucketId", code="invalid_field"
            )
        bf = self.store.require("bucket-files", body["bucketFileId"], "bucket file")
        if bf["bucketId"] != ab["bucketId"]:
            raise ApiError(400, "the bucket file is not in that bucket", code="invalid_field")
        analysis = self.store.require("analyses", ab["analysisId"], "analysis")
        self._unlocked(analysis, "change the analysis files")
        with self.store.transaction():
            found = self.store.select("analysis-bucket-files", bucketFileId=bf["id"])
            if found:
                record = self.store.update(
                    "analysis-bucket-files",
                    found[0]["id"],
                    {"root": body["root"], "path": body["path"]},
                )
            else:
                record = self.store.insert(
                    "analysis-bucket-files",
                    {
                        **body,
                        "realmId": analysis["realmId"],
                        "userId": p.id,
                        "analysisId": analysis["id"],
                    },
                )
            if body["root"]:
                self._set_root(analysis["id"], record["id"])
            self.refresh(analysis["id"])
        return record

    def update_analysis_bucket_files(self, p: Principal, abf: dict, ch: dict[str, Any]) -> dict:
        self._user_only(p, "mark the entrypoint")
        analysis = self.store.require("analyses", abf["analysisId"], "analysis")
        self._owner(p, analysis, "mark its entrypoint")
        self._unlocked(analysis, "change the entrypoint")
        ab = self.store.require("analysis-buckets", abf["analysisBucketId"], "analysis bucket")
        if ch.get("root") and ab["type"] != "CODE":
            raise illegal("the entrypoint must be a file of the CODE bucket")
        with self.store.transaction():
            record = self.store.update("analysis-bucket-files", abf["id"], ch)
            if ch.get("root"):
                self._set_root(analysis["id"], abf["id"])
            self.refresh(analysis["id"])
        return record

    def delete_analysis_bucket_files(self, p: Principal, abf: dict[str, Any]) -> None:
        self._user_only(p, "remove analysis files")
        analysis = self.store.require("analyses", abf["analysisId"], "analysis")
        self._owner(p, analysis, "remove its files")
        self._unlocked(analysis, "remove analysis files", p)
        with self.store.transaction():
            self.store.delete("analysis-bucket-files", id=abf["id"])
            self.refresh(analysis["id"])

    # -- logs --------------------------------------------------------------------------------
    def create_analysis_node_logs(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        if p.is_user or p.node_id != body["nodeId"]:
            raise forbidden("a node may write only its own logs")
        self.store.require("analyses", body["analysisId"], "analysis")
        if not self.participant(p, body["analysisId"]):
            raise forbidden("this node is not part of the analysis")
        labels = {"analysisId": body["analysisId"], "nodeId": body["nodeId"]}
        if body.get("code") is not None:
            labels["code"] = body["code"]
        if body.get("status") is not None:
            labels["status"] = body["status"]
        return self.store.insert(
            "analysis-node-logs",
            {
                **body,
                "time": str(int(now_ms())),
                "service": "node",
                "channel": "http",
                "labels": labels,
            },
        )

    def delete_logs(self, name: str, p: Principal, analysis_id: Any, node_id: Any) -> None:
        """DELETE /analysis-logs?filter[analysisId]=.. (and nodeId for node logs)."""
        if not analysis_id:
            raise ApiError(400, "filter[analysisId] is required", code="invalid_field")
        analysis = self.store.require("analyses", str(analysis_id), "analysis")
        if name == "analysis-logs":
            self._owner(p, analysis, "delete its logs")
            self.store.delete(name, analysisId=analysis_id)
            return
        if not node_id:
            raise ApiError(400, "filter[nodeId] is required", code="invalid_field")
        if p.is_user:
            self._owner(p, analysis, "delete its logs")
        elif p.node_id != node_id:
            raise forbidden("a node may delete only its own logs")
        self.store.delete(name, analysisId=analysis_id, nodeId=node_id)

    # -- messenger (sandbox extension) -------------------------------------------------------
    def create_analysis_messages(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        if p.is_user or p.node_id != body["fromNodeId"]:
            raise forbidden("a node may send messages only as itself")
        self.store.require("analyses", body["analysisId"], "analysis")
        members = {n["nodeId"] for n in self._analysis_nodes(body["analysisId"])}
        if p.node_id not in members:
            raise forbidden("this node is not part of the analysis")
        if body["toNodeId"] not in members:
            raise ApiError(400, "toNodeId is not a node of the analysis", code="invalid_field")
        try:
            raw = base64.b64decode(body["payload"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "payload must be base64", code="invalid_field") from None
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ApiError(413, "the message payload is too large", code="payload_too_large")
        with self.store.transaction():
            return self.store.insert(
                "analysis-messages", {**body, "seq": self.store.next_seq("analysis-messages")}
            )
