"""Core routes that are not plain collections: analysis commands and log collections."""

from __future__ import annotations

from flame_lab.sandbox.hub.handlers.base import CollectionHandler, HubHandler


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
