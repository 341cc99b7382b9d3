"""The messenger's inbox route with long-polling, so a node hears of a message as it arrives.

``GET /core/analysis-messages?...&wait=S`` (a sandbox extension) answers at once when the
inbox has messages, else when one arrives for the node or after S seconds (at most
bells.MAX_WAIT_SECONDS), with whatever the query then finds. ``POST`` takes one message or a list
(a broadcast: one copy per receiver, each sealed to it), stored all together or not at all.
"""

from __future__ import annotations

from flame_lab.sandbox.hub.bells import hold, wait_seconds
from flame_lab.sandbox.hub.handlers.base import CollectionHandler
from flame_lab.sandbox.hub.wire import ApiError

# One POST may carry a message's sealed copies for this many receivers (a node's broadcast).
MAX_BATCH = 1024


class MessageCollectionHandler(CollectionHandler):
    """GET a node's inbox (optionally waiting for the next message); POST rings the receiver."""

    def max_body(self) -> int:  # sealed messages are large: the hub's upload limit applies
        return self.hub.upload_limit

    async def get(self) -> None:  # type: ignore[override]
        wait = wait_seconds(self.request.query_arguments.pop("wait", None))
        query = self.query()
        self.hub.core.check_read(self.resource_name, self.principal, query)
        page: list = []

        def ready() -> bool:
            page[:] = self.hub.store.find(self.resource_name, query)
            return bool(page[0])

        node_id = query.filter_value("toNodeId")
        if await hold(self.hub.inbox_bells, node_id, wait, ready, lambda: self.gone):
            self.send_page(query, *page)

    def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, list):
            record = self.hub.core.create(self.resource_name, self.principal, body)
            self.send(self.created_status, self.render(self.resource_name, record))
            self.hub.inbox_bells.ring(record["toNodeId"])
            return
        if not 1 <= len(body) <= MAX_BATCH:
            raise ApiError(
                400, f"a list of messages holds 1 to {MAX_BATCH} messages", code="invalid_body"
            )
        records = []
        with self.hub.store.transaction():  # all or nothing
            for index, item in enumerate(body):
                try:
                    records.append(self.hub.core.create(self.resource_name, self.principal, item))
                except ApiError as exc:
                    exc.message = f"message {index}: {exc.message}"
                    raise
        self.send(self.created_status, [self.render(self.resource_name, r) for r in records])
        for node_id in {r["toNodeId"] for r in records}:
            self.hub.inbox_bells.ring(node_id)
