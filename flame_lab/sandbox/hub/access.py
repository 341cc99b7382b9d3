"""Who may see and change what at the sandbox hub, as FLAME's Hub does with realms and
permissions: an analysis and everything hanging off it belong to its creator; a node's robot
sees the analyses it takes part in; an admin (a user holding the ``admin`` role) sees all.

Listings are narrowed to what the caller may see; naming a record the caller may not see is a
403 whose message names the rule.
"""

from __future__ import annotations

from typing import Any

from flame_lab.sandbox.hub.auth import Principal
from flame_lab.sandbox.hub.query import Filter, Query
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.wire import ApiError

# ruff: noqa: S608  (SQL here is built from constants; every value is a bound parameter)

ANALYSIS_RULE = (
    "an analysis, its nodes, logs, buckets and files belong to the researcher who created it:"
    " only that researcher, the analysis's nodes and admins may {verb} them"
)
OWNER_RULE = "only the researcher who created analysis {id} or an admin may {verb}"
BUCKET_RULE = "a bucket belongs to its creator (or to its analysis): others may not {verb} it"
NODE_RULE = "a node's record changes only by the node's own robot or an admin"
ADMIN_RULE = "only an admin may {verb}"

# Resources whose records belong to one analysis through an ``analysisId`` column.
ANALYSIS_CHILDREN = (
    "analysis-nodes",
    "analysis-logs",
    "analysis-node-logs",
    "analysis-buckets",
    "analysis-bucket-files",
)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, code="forbidden")


class Access:
    """Ownership checks over the store; every rule of this module lives in one place."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- which analyses a principal may see ------------------------------------------------
    @staticmethod
    def _analyses_sql(p: Principal) -> tuple[str, list[Any]] | None:
        """SQL selecting the ids of the analyses ``p`` may see; None means all (an admin)."""
        if p.admin:
            return None
        if p.is_user:
            return 'SELECT "id" FROM analyses WHERE "userId" = ?', [p.id]
        if p.node_id is not None:
            return 'SELECT "analysisId" FROM analysis_nodes WHERE "nodeId" = ?', [p.node_id]
        return 'SELECT "id" FROM analyses WHERE "clientId" = ?', [p.id]

    def may_see_analysis(self, p: Principal, analysis: dict[str, Any]) -> bool:
        if p.admin or (p.is_user and analysis["userId"] == p.id):
            return True
        if not p.is_user and analysis.get("clientId") == p.id:
            return True
        if p.node_id is not None:
            return bool(
                self.store.execute(
                    'SELECT 1 FROM analysis_nodes WHERE "analysisId" = ? AND "nodeId" = ?',
                    (analysis["id"], p.node_id),
                )
            )
        return False

    def may_own_analysis(self, p: Principal, analysis: dict[str, Any]) -> bool:
        return p.admin or (p.is_user and analysis["userId"] == p.id)

    def require_analysis(self, p: Principal, analysis_id: str, verb: str = "read") -> dict:
        analysis = self.store.require("analyses", analysis_id, "analysis")
        if not self.may_see_analysis(p, analysis):
            raise forbidden(f"analysis {analysis_id}: " + ANALYSIS_RULE.format(verb=verb))
        return analysis

    def require_owner(self, p: Principal, analysis: dict[str, Any], verb: str) -> None:
        if not self.may_own_analysis(p, analysis):
            raise forbidden(OWNER_RULE.format(id=analysis["id"], verb=verb))

    def require_admin(self, p: Principal, verb: str) -> None:
        if not p.admin:
            raise forbidden(ADMIN_RULE.format(verb=verb))

    # -- listings ---------------------------------------------------------------------------
    def narrow(self, name: str, p: Principal, query: Query) -> None:
        """Add to ``query`` the filter that keeps only what ``p`` may see; a 403 when the
        query names an analysis (or bucket) that ``p`` may not see."""
        scope = self._analyses_sql(p)
        if scope is None:
            return
        if name in ("registries", "registry-projects"):
            self.require_admin(p, f"read {name} (they hold registry secrets)")
        sql, params = scope
        if name == "analyses":
            self._named(p, query.filters, "id", name)
            query.filters.append(Filter("", "sql", (f'"id" IN ({sql})', *params)))
        elif name in ANALYSIS_CHILDREN:
            self._named(p, query.filters, "analysisId", name)
            query.filters.append(Filter("", "sql", (f'"analysisId" IN ({sql})', *params)))
        elif name == "buckets":
            where, extra = self._buckets_sql(p, sql, params)
            query.filters.append(Filter("", "sql", (f'"id" IN ({where})', *extra)))
        elif name == "bucket-files":
            for f in query.filters:
                if f.field == "bucketId" and f.op == "=" and not f.negate:
                    for bucket_id in f.values:
                        bucket = self.store.get("buckets", str(bucket_id))
                        if bucket is not None:
                            self.require_bucket_read(p, bucket)
            where, extra = self._buckets_sql(p, sql, params)
            query.filters.append(Filter("", "sql", (f'"bucketId" IN ({where})', *extra)))

    def _named(self, p: Principal, filters: list[Filter], field: str, name: str) -> None:
        for f in filters:
            if f.field != field or f.op != "=" or f.negate:
                continue
            for value in f.values:
                analysis = self.store.get("analyses", str(value))
                if analysis is not None and not self.may_see_analysis(p, analysis):
                    raise forbidden(
                        f"{name} of analysis {value}: " + ANALYSIS_RULE.format(verb="list")
                    )

    @staticmethod
    def _buckets_sql(p: Principal, sql: str, params: list[Any]) -> tuple[str, list[Any]]:
        return (
            'SELECT "bucketId" FROM analysis_buckets WHERE "analysisId" IN ('
            + sql
            + ') UNION SELECT "id" FROM buckets WHERE "actorId" = ?',
            [*params, p.id],
        )

    # -- single records ---------------------------------------------------------------------
    def require_read(self, name: str, p: Principal, record: dict[str, Any]) -> None:
        """A 403 unless ``p`` may read this one record."""
        if p.admin:
            return
        if name == "analyses":
            self.require_analysis(p, record["id"])
        elif name in ANALYSIS_CHILDREN:
            self.require_analysis(p, record["analysisId"])
        elif name == "buckets":
            self.require_bucket_read(p, record)
        elif name == "bucket-files":
            self.require_bucket_read(p, self.store.require("buckets", record["bucketId"]))
        elif name == "analysis-messages":
            if p.node_id is None or p.node_id not in (record["toNodeId"], record["fromNodeId"]):
                raise forbidden("a message is read only by the node it was sent to or from")
        elif name == "registries" or name == "registry-projects":
            self.require_admin(p, f"read {name}")

    def bucket_analysis(self, bucket_id: str) -> tuple[dict | None, dict | None]:
        """(analysis-bucket, analysis) of an analysis bucket, else (None, None)."""
        found = self.store.select("analysis-buckets", bucketId=bucket_id)
        if not found:
            return None, None
        return found[0], self.store.get("analyses", found[0]["analysisId"])

    def require_bucket_read(self, p: Principal, bucket: dict[str, Any]) -> None:
        if p.admin:
            return
        _, analysis = self.bucket_analysis(bucket["id"])
        if analysis is not None:
            if not self.may_see_analysis(p, analysis):
                raise forbidden(
                    f"bucket {bucket['id']} of analysis {analysis['id']}: "
                    + ANALYSIS_RULE.format(verb="read")
                )
        elif bucket["actorId"] != p.id:
            raise forbidden(BUCKET_RULE.format(verb="read"))

    def require_node_change(self, p: Principal, node: dict[str, Any], changes: set[str]) -> None:
        """Only the node's own robot (its ``publicKey``) or an admin (anything) changes a node."""
        if p.admin:
            return
        if p.is_user or p.node_id != node["id"]:
            raise forbidden(f"node {node['name']}: " + NODE_RULE)
        if changes - {"publicKey"}:
            raise forbidden(
                f"node {node['name']}: its robot may change only its publicKey; "
                + ", ".join(sorted(changes - {"publicKey"}))
                + " only an admin may change"
            )
