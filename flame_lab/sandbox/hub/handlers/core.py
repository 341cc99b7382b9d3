"""Core routes that are not plain collections: analysis commands, log collections, and the
change feeds (a node's analyses for its agent, one analysis for the researcher)."""

from __future__ import annotations

import json

from flame_lab.sandbox.hub.bells import Bells, hold, wait_seconds
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


class ChangesHandler(HubHandler):
    """GET <thing>/:id/changes?after=V&wait=S -> {version} (a sandbox extension): answered when
    the thing changed since version V, or after S seconds; clients wait here instead of
    polling. A version of a restarted hub may be lower than V: that answers at once too."""

    def bells(self) -> Bells:
        raise NotImplementedError

    def check(self, record_id: str) -> None:
        """Refuse a principal that may not follow this thing."""
        raise NotImplementedError

    async def get(self, raw_id: str) -> None:
        record_id = self.record_id(raw_id, "record")
        self.check(record_id)
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
        bells = self.bells()
        if await hold(
            bells, record_id, wait, lambda: bells.version(record_id) != after, lambda: self.gone
        ):
            self.finish(json.dumps({"data": {"version": bells.version(record_id)}, "meta": {}}))


class NodeChangesHandler(ChangesHandler):
    """A node's analyses changed for it: a new one, a lock, its approval, the distribution, a
    cancel. The node's agent waits here between its looks at the hub."""

    def bells(self) -> Bells:
        return self.hub.node_bells

    def check(self, record_id: str) -> None:
        if self.principal.node_id != record_id:
            raise forbidden("a node may follow only its own changes")


class AnalysisChangesHandler(ChangesHandler):
    """An analysis or one of its nodes changed. Analysis.wait() waits here between looks."""

    def bells(self) -> Bells:
        return self.hub.analysis_bells

    def check(self, record_id: str) -> None:
        analysis = self.hub.store.require("analyses", record_id, "analysis")
        if not self.principal.is_user:
            raise forbidden("only users follow an analysis's changes")
        self.hub.core.access.require_owner(self.principal, analysis, "follow its changes")


def _version(raw: list[bytes] | None) -> int | None:
    if not raw:
        return None
    text = raw[-1].decode("ascii", "replace")
    if not text.isdigit():
        raise ApiError(
            400, "after must be a version number from an earlier answer", code="invalid_field"
        )
    return int(text)


class ClientCredentialsHandler(HubHandler):
    """GET/POST /core/{nodes,analyses}/:id/client/credentials: the record's robot client; its
    name, display name and (on POST) a new secret, shown once. Nodes: admins; analyses: their
    owner or an admin."""

    def _client_id(self, raw_id: str) -> str | None:
        kind = self.resource_name
        record = self.hub.store.require(kind, self.record_id(raw_id, kind), kind.rstrip("s"))
        if kind == "nodes":
            self.hub.core.access.require_admin(self.principal, "manage a node's client")
        else:
            self.hub.core.access.require_owner(self.principal, record, "manage its client")
        return record["clientId"]

    def get(self, raw_id: str) -> None:
        self.finish(json.dumps(self.hub.core.records.credentials(self._client_id(raw_id))))

    def post(self, raw_id: str) -> None:
        client_id = self._client_id(raw_id)
        answer = self.hub.core.records.set_credentials(client_id, self.json_body())
        self.finish(json.dumps(answer))


class ServiceCommandHandler(HubHandler):
    """POST /core/services/registry/command and /core/master-images/command -> 202."""

    def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            raise ApiError(400, "the body must be {command, id?}", code="invalid_body")
        command = body["command"]
        access = self.hub.core.access
        if self.resource_name == "registries":
            if command != "setup":
                raise ApiError(
                    400, f"the sandbox runs only the registry command 'setup', not {command!r}"
                )
            raw_id = body.get("id")
            if not isinstance(raw_id, str):
                raise ApiError(400, "'id' (the registry) is required", code="invalid_field")
            self.hub.core.records.setup_registry(self.principal, self.record_id(raw_id, "registry"))
        else:
            access.require_admin(self.principal, "manage master images")
            if command not in ("sync", "build"):
                raise ApiError(
                    400, "the master-image command is sync or build", code="invalid_field"
                )
            # the sandbox's image catalog ships with flame_lab: nothing to fetch or build
        self.set_status(202)
        self.finish()
