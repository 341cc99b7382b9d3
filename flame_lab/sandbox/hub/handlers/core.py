"""Core routes that are not plain collections: analysis commands, log collections, and the
node agents' change feed."""

from __future__ import annotations

import json
import time

from flame_lab.sandbox.hub.bells import wait_seconds
from flame_lab.sandbox.hub.handlers.base import CollectionHandler, HubHandler
from flame_lab.sandbox.hub.lifecycle import forbidden
from flame_lab.sandbox.hub.wire import ApiError


class AnalysisCommandHandler(HubHandler):
    """POST /analyses/:id/command {command} -> 202 with the analysis."""

    def post(self, raw_id: str) -> None:
        analysis_id = self.record_id(raw_id, "analysis")
        self.hub.store.require("analyses", analysis_id, "analysis")
        record = self.hub.core.command(self.principal, analysis_id, self.json_body())
        self.send(202, self.render("analyses", record))


class LogCollectionHandler(CollectionHandler):
    """analysis-logs and analysis-node-logs: created with 202 (as the Hub answers), deleted by
    filter (``DELETE ?filter[analysisId]=..&filter[nodeId]=..``)."""

    created_status = 202

    def delete(self) -> None:
        query = self.query()
        self.hub.core.delete_logs(
            self.resource_name,
            self.principal,
            query.filter_value("analysisId"),
            query.filter_value("nodeId"),
        )
        self.send(202, None)


class NodeChangesHandler(HubHandler):
    """GET /nodes/:id/changes?after=V&wait=S -> {version} (a sandbox extension): answered when
    the node's analyses changed since version V (a new analysis, a lock, an approval, the
    distribution, a cancel), or after S seconds. A node agent waits here instead of polling."""

    _gone = False

    async def get(self, raw_id: str) -> None:
        node_id = self.record_id(raw_id, "node")
        if self.principal.node_id != node_id:
            raise forbidden("a node may follow only its own changes")
        args = self.request.query_arguments
        unknown = set(args) - {"after", "wait"}
        if unknown:
            raise ApiError(
                400,
                f"{sorted(unknown)[0]} is not a query parameter this route accepts",
                code="invalid_field",
            )
        wait = wait_seconds(args.get("wait"))
        after = _version(args.get("after"))
        bells = self.hub.node_bells
        deadline = time.monotonic() + wait
        while bells.version(node_id) == after and (remaining := deadline - time.monotonic()) > 0:
            await bells.wait(node_id, remaining)
            if self._gone:
                return
        self.finish(json.dumps({"data": {"version": bells.version(node_id)}, "meta": {}}))

    def on_connection_close(self) -> None:
        self._gone = True


def _version(raw: list[bytes] | None) -> int | None:
    if not raw:
        return None
    text = raw[-1].decode("ascii", "replace")
    if not text.isdigit():
        raise ApiError(
            400, "after must be a version number from an earlier answer", code="invalid_field"
        )
    return int(text)
