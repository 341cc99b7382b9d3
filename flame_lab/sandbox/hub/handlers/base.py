"""What every hub handler shares: bearer authentication, JSON bodies, envelopes, and the one
place where errors become the Hub's flat ``{statusCode, code, message, issues}`` bodies."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from tornado.web import HTTPError, RequestHandler, stream_request_body

from flame_lab.sandbox.hub.limits import MAX_JSON_BYTES, parse_json, too_large
from flame_lab.sandbox.hub.query import Query, parse_query, schema_of
from flame_lab.sandbox.hub.resources import RESOURCES
from flame_lab.sandbox.hub.wire import ApiError, is_uuid

if TYPE_CHECKING:
    from flame_lab.sandbox.hub.app import Hub
    from flame_lab.sandbox.hub.auth import Principal

log = logging.getLogger("flame_lab.sandbox.hub")


@stream_request_body
class HubHandler(RequestHandler):
    """Base: authenticates in ``prepare`` unless ``public``; renders ApiError as the Hub does.

    Bodies are streamed in, so that one declared larger than the route's limit is refused (413)
    before a byte of it is read, and one sent without a length is kept only up to the limit."""

    public = False
    hub: Hub
    principal: Principal
    gone = False  # the client closed the connection while a held request waited
    body_limit = MAX_JSON_BYTES

    def initialize(self, hub: Hub, resource: str | None = None) -> None:
        self.hub = hub
        self.resource_name = resource or ""
        self._body = bytearray()
        self._body_over = False

    def max_body(self) -> int:
        """The most bytes this route reads from a request body."""
        return self.body_limit

    def prepare(self) -> None:
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_body():
            raise too_large(self.max_body())  # answered with Connection: close
        try:
            self.check_request()
        except ApiError as exc:
            # Answered only once the (bounded) body has been read: a response written before
            # that makes tornado drop the connection under a client that may reuse it. The
            # route's method is replaced, for this request, by the refusal.
            refusal = exc

            def refuse(*_args: Any) -> None:
                raise refusal

            setattr(self, self.request.method.lower(), refuse)

    def check_request(self) -> None:
        """What is checked before a body is read: who is calling (unless the route is public)."""
        if not self.public:
            self.principal = self.hub.auth.authenticate(self.request.headers.get("Authorization"))
            if self.principal.node_id:
                self.hub.seen(self.principal.node_id)

    def data_received(self, chunk: bytes) -> None:
        if len(self._body) + len(chunk) > self.max_body():
            self._body_over = True
            return
        self._body += chunk

    def body(self) -> bytes:
        """The request body (a 413 if it outgrew the route's limit while streaming in)."""
        if self._body_over:
            raise too_large(self.max_body())
        return bytes(self._body)

    def on_connection_close(self) -> None:
        self.gone = True
        super().on_connection_close()

    def check_xsrf_cookie(self) -> None:  # bearer tokens only; no cookies
        return None

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    # -- errors ------------------------------------------------------------------------------
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, (OSError, sqlite3.OperationalError)):
            from flame_lab.sandbox.hub.handlers.storage import storage_failure

            exc = storage_failure(exc, "store the change")  # 507 when the disk is full, else 503
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, HTTPError):
            error = ApiError(exc.status_code, exc.log_message or self._reason)
        else:
            error = ApiError(status_code, self._reason or "internal error")
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        for name, value in error.headers.items():
            self.set_header(name, value)
        if error.status == 413:  # the rest of the body is never read: do not reuse this socket
            self.set_header("Connection", "close")
        self.finish(json.dumps(error.body()))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return
        super().log_exception(typ, value, tb)

    # -- input -------------------------------------------------------------------------------
    def json_body(self) -> Any:
        raw = self.body()
        if not raw:
            return {}
        return parse_json(raw, self.max_body())

    def form_body(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body; invalid UTF-8 is a 400, not a 500."""
        try:
            text = self.body().decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "the form body is not valid UTF-8", code="invalid_body") from None
        return dict(parse_qsl(text))

    def query(self, *, collection: bool = True) -> Query:
        return parse_query(
            self.request.query_arguments, RESOURCES[self.resource_name], collection=collection
        )

    @staticmethod
    def record_id(raw: str, what: str) -> str:
        if not is_uuid(raw):
            raise ApiError(404, f"{what} {raw} does not exist")
        return raw

    # -- output ------------------------------------------------------------------------------
    def send(self, status: int, data: Any, meta: dict[str, Any] | None = None) -> None:
        self.set_status(status)
        self.finish(json.dumps({"data": data, "meta": meta if meta is not None else {}}))

    def render(self, name: str, record: dict[str, Any], query: Query | None = None) -> dict:
        return self.hub.render(name, record, query)


class CollectionHandler(HubHandler):
    """GET /<collection> (rapiq query) and POST /<collection> (create -> 201)."""

    created_status = 201

    def get(self) -> None:
        query = self.query()
        self.hub.core.check_read(self.resource_name, self.principal, query)
        records, total = self.hub.store.find(self.resource_name, query)
        self.send_page(query, records, total)

    def send_page(self, query: Query, records: list[dict[str, Any]], total: int) -> None:
        meta = {
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
            "schema": schema_of(RESOURCES[self.resource_name]),
        }
        self.send(200, [self.render(self.resource_name, r, query) for r in records], meta)

    def post(self) -> None:
        self.send(self.created_status, self.render(self.resource_name, self.create()))

    def create(self) -> dict[str, Any]:
        return self.hub.core.create(self.resource_name, self.principal, self.json_body())


class ItemHandler(HubHandler):
    """GET, POST (update -> 202) and DELETE (-> 202) of /<collection>/:id."""

    def get(self, raw_id: str) -> None:
        query = self.query(collection=False)
        record = self.hub.store.require(
            self.resource_name, self.record_id(raw_id, self.resource_name)
        )
        self.hub.core.check_record(self.resource_name, self.principal, record)
        meta = {"schema": schema_of(RESOURCES[self.resource_name])}
        self.send(200, self.render(self.resource_name, record, query), meta)

    def post(self, raw_id: str) -> None:
        record_id = self.record_id(raw_id, self.resource_name)
        record = self.hub.core.update(
            self.resource_name, self.principal, record_id, self.json_body()
        )
        self.send(202, self.render(self.resource_name, record))

    def delete(self, raw_id: str) -> None:
        record_id = self.record_id(raw_id, self.resource_name)
        record = self.hub.store.require(self.resource_name, record_id)
        self.hub.core.delete(self.resource_name, self.principal, record_id)
        self.send(202, self.render(self.resource_name, record))


class NotFoundHandler(HubHandler):
    """Any path outside the route table: a Hub-shaped 404."""

    public = True

    def check_request(self) -> None:
        raise ApiError(404, f"no route {self.request.method} {self.request.path}")


class RootHandler(HubHandler):
    """GET / (and /core, /storage, /auth): who answers here; the daemon's health check."""

    public = True

    def get(self) -> None:
        from flame_lab import __version__

        self.finish(json.dumps({"service": "flame_lab sandbox hub", "version": __version__}))
