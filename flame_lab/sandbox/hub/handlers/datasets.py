"""A node's description of its data (a sandbox extension; the real Hub has no such route).

``PUT /core/nodes/:id/dataset`` by that node itself stores its description (columns, types,
count bands, codes, policy: never rows; see flame_lab.datadict); ``GET`` by any signed-in user
or node reads it. The hub keeps the last one per node as a file beside its database, bounded in
size and nesting, and checks nothing else: readers check every field themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flame_lab.jsonscan import nesting_depth
from flame_lab.sandbox.hub.handlers.base import HubHandler
from flame_lab.sandbox.hub.lifecycle import forbidden
from flame_lab.sandbox.hub.wire import ApiError

MAX_BYTES = 256 * 1024
MAX_DEPTH = 16


class DatasetHandler(HubHandler):
    """GET/PUT /core/nodes/:id/dataset."""

    body_limit = MAX_BYTES

    def _file(self, node_id: str) -> Path:
        return self.hub.store.home / "datasets" / f"{node_id}.json"

    def get(self, raw_id: str) -> None:
        node_id = self.record_id(raw_id, "node")
        self.hub.store.require("nodes", node_id, "node")
        try:
            data = json.loads(self._file(node_id).read_bytes())
        except FileNotFoundError:
            raise ApiError(404, f"node {node_id} has not described its data") from None
        self.send(200, data)

    def put(self, raw_id: str) -> None:
        node_id = self.record_id(raw_id, "node")
        self.hub.store.require("nodes", node_id, "node")
        if self.principal.node_id != node_id:
            raise forbidden("only the node itself describes its data")
        raw = self.body()
        if len(raw) > MAX_BYTES:
            raise ApiError(413, f"a data description holds at most {MAX_BYTES} bytes")
        if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
            raise ApiError(400, f"the JSON is nested deeper than {MAX_DEPTH}", code="invalid_body")
        body = self.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "a data description is a JSON object", code="invalid_body")
        path = self._file(node_id)
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        os.replace(temporary, path)
        self.send(202, body)
