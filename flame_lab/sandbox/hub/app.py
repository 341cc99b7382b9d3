"""The sandbox hub's one route table, the ``Hub`` that handlers share, and ways to run it:
``HubThread`` in-process (tests, notebooks) and ``serve`` as the detached daemon's main."""

from __future__ import annotations

import asyncio
import io
import json
import os
import posixpath
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets
from tornado.web import Application

from flame_lab.sandbox.hub import faults
from flame_lab.sandbox.hub.auth import Auth, Principal
from flame_lab.sandbox.hub.bells import Bells
from flame_lab.sandbox.hub.handlers.base import (
    CollectionHandler,
    ItemHandler,
    NotFoundHandler,
    RootHandler,
)
from flame_lab.sandbox.hub.handlers.core import (
    AnalysisChangesHandler,
    AnalysisCommandHandler,
    ClientCredentialsHandler,
    LogCollectionHandler,
    NodeChangesHandler,
    ServiceCommandHandler,
)
from flame_lab.sandbox.hub.handlers.datasets import DatasetHandler
from flame_lab.sandbox.hub.handlers.messenger import MessageCollectionHandler
from flame_lab.sandbox.hub.handlers.oauth import (
    AuthorizeHandler,
    DiscoveryHandler,
    MeHandler,
    TokenHandler,
)
from flame_lab.sandbox.hub.handlers.storage import (
    BucketStreamHandler,
    FileStreamHandler,
    UploadHandler,
)
from flame_lab.sandbox.hub.lifecycle import BUCKET_DELAY, Core
from flame_lab.sandbox.hub.query import Query
from flame_lab.sandbox.hub.resources import RESOURCES
from flame_lab.sandbox.hub.store import Store

UPLOAD_LIMIT = 64 * 1024 * 1024
# A node counts as online while it made a request within this many seconds (its agent asks
# for changes at least every few seconds).
ONLINE_SECONDS = 15.0
_ID = r"([^/]+)"
_SLASHES = re.compile(r"/{2,}")
# The fields of an analysis, and of a node's link to it, whose change a node agent acts on
# (review, start); its own progress reports need not wake it.
AGENT_FIELDS = frozenset({"configurationLocked", "distributionStatus"})
AGENT_LINK_FIELDS = frozenset({"approvalStatus"})


class Hub:
    """Everything a request needs: the store, token checks, the core rules and limits."""

    def __init__(
        self,
        store: Store,
        *,
        upload_limit: int = UPLOAD_LIMIT,
        clock: Callable[[], float] | None = None,
        bucket_delay: float = BUCKET_DELAY,
        throttle_loopback: bool = False,
        skip_analysis_approval: bool = False,
    ) -> None:
        self.store = store
        self.auth = Auth(store, clock=clock or time.time, throttle_loopback=throttle_loopback)
        # skip_analysis_approval: nodes count as approving at once, as a Hub deployed with
        # SKIP_ANALYSIS_APPROVAL=true (PrivateAIM's client tests run theirs so); never for
        # a federation whose nodes decide.
        self.core = Core(store, defer=self._defer, skip_analysis_approval=skip_analysis_approval)
        self.upload_limit = upload_limit
        self.bucket_delay = bucket_delay
        self.last_seen: dict[str, float] = {}  # node id -> time.monotonic() of its last request
        self.inbox_bells = Bells()  # node id -> rung when a message for it is stored
        self.node_bells = Bells()  # node id -> rung when one of its analyses changes for it
        self.analysis_bells = Bells()  # analysis id -> rung when it or one of its nodes changes
        store.on_write = self._written
        store.on_delete = self._deleting

    def seen(self, node_id: str) -> None:
        """A node's client made a request: it counts as online for ONLINE_SECONDS."""
        self.last_seen[node_id] = time.monotonic()

    def online(self, node_id: str) -> bool:
        seen = self.last_seen.get(node_id)
        return seen is not None and time.monotonic() - seen < ONLINE_SECONDS

    def _written(self, name: str, record: dict[str, Any], changed: frozenset[str] | None) -> None:
        if name == "analysis-nodes":
            if changed is None or changed & AGENT_LINK_FIELDS:
                self.node_bells.ring(record["nodeId"])
            self.analysis_bells.ring(record["analysisId"])
        elif name == "analyses":
            self.analysis_bells.ring(record["id"])
            if changed is not None and changed & AGENT_FIELDS:
                self._ring_members(record["id"])

    def _deleting(self, name: str, equal: dict[str, Any]) -> None:
        if name == "analyses" and "id" in equal:
            self.analysis_bells.ring(equal["id"])
            self._ring_members(equal["id"])
        elif name == "analysis-nodes":
            for link in self.store.select("analysis-nodes", **equal):
                self.node_bells.ring(link["nodeId"])
                self.analysis_bells.ring(link["analysisId"])

    def _ring_members(self, analysis_id: str) -> None:
        for link in self.store.select("analysis-nodes", analysisId=analysis_id):
            self.node_bells.ring(link["nodeId"])

    def _defer(self, callback: Callable[[], None]) -> None:
        IOLoop.current().call_later(self.bucket_delay, callback)

    def render(self, name: str, record: dict[str, Any], query: Query | None = None) -> dict:
        """A record as the wire shows it: hidden fields dropped, optional ones on request,
        relations nested when included."""
        resource = RESOURCES[name]
        out: dict[str, Any] = {}
        for field in resource.visible:
            if field in resource.optional and (query is None or field not in query.add_fields):
                continue
            only = query.only_fields if query is not None else None
            if only is not None and field not in only and field != "id":
                continue
            out[field] = record[field]
        if name == "nodes" and "online" in out:
            out["online"] = self.online(record["id"])
        for alias, source in resource.aliases.items():
            if source in out:
                out[alias] = out[source]
        for rel in query.include if query is not None else []:
            fk, target = resource.relations[rel]
            related = self.store.get(target, record[fk]) if target else None
            out[rel] = self.render(target, related) if related and target else None
        return out

    def store_files(
        self, p: Principal, bucket_id: str, uploads: list[tuple[str, bytes]]
    ) -> list[dict[str, Any]]:
        """Blobs first (fsync'd), then one transaction for the rows; same path = new version,
        so an upload retried after a lost answer replaces its own files, never adds to them."""
        kind = self.bucket_type(bucket_id)
        stored = [(path, *self.store.put_blob(io.BytesIO(data))) for path, data in uploads]
        faults.reach(f"upload:{kind}:stored", self.store.home)
        records: dict[str, dict[str, Any]] = {}
        with self.store.transaction():
            for path, digest, size in stored:
                found = self.store.select("bucket-files", bucketId=bucket_id, path=path)
                if found:
                    records[path] = self.store.update(
                        "bucket-files", found[0]["id"], {"hash": digest, "size": size}
                    )
                    continue
                records[path] = self.store.insert(
                    "bucket-files",
                    {
                        "name": posixpath.basename(path),
                        "path": path,
                        "hash": digest,
                        "directory": posixpath.dirname(path) or ".",
                        "size": size,
                        "actorType": p.kind,
                        "actorId": p.id,
                        "realmId": p.realm_id,
                        "bucketId": bucket_id,
                    },
                )
            self.core.files_uploaded(p, bucket_id, list(records.values()))
        faults.reach(f"upload:{kind}:committed", self.store.home)
        return list(records.values())

    def bucket_type(self, bucket_id: str) -> str:
        """CODE, RESULT or TEMP for an analysis's bucket; OTHER for a free-standing one."""
        link, _ = self.core.bucket_owner(bucket_id)
        return str(link["type"]) if link is not None else "OTHER"


def routes(hub: Hub) -> list[tuple[str, type, dict[str, Any]]]:
    """The route table: core under /core, storage under /storage, auth under /auth."""
    table: list[tuple[str, type, dict[str, Any]]] = [
        (r"/(?:core|storage|auth)?/?", RootHandler, {}),
        (r"/auth/token", TokenHandler, {}),
        (r"/auth/authorize", AuthorizeHandler, {}),
        (r"/auth/users/@me", MeHandler, {}),
        (r"/auth/\.well-known/openid-configuration", DiscoveryHandler, {}),
        (rf"/core/analyses/{_ID}/command", AnalysisCommandHandler, {}),
        (
            rf"/core/nodes/{_ID}/client/credentials",
            ClientCredentialsHandler,
            {"resource": "nodes"},
        ),
        (
            rf"/core/analyses/{_ID}/client/credentials",
            ClientCredentialsHandler,
            {"resource": "analyses"},
        ),
        (r"/core/services/registry/command", ServiceCommandHandler, {"resource": "registries"}),
        (r"/core/master-images/command", ServiceCommandHandler, {"resource": "master-images"}),
        (rf"/core/nodes/{_ID}/changes", NodeChangesHandler, {}),
        (rf"/core/nodes/{_ID}/dataset", DatasetHandler, {}),
        (rf"/core/analyses/{_ID}/changes", AnalysisChangesHandler, {}),
        (rf"/storage/buckets/{_ID}/upload", UploadHandler, {}),
        (rf"/storage/buckets/{_ID}/stream", BucketStreamHandler, {}),
        (rf"/storage/bucket-files/{_ID}/stream", FileStreamHandler, {}),
    ]
    groups = {
        "auth": (
            "realms",
            "users",
            "clients",
            "roles",
            "permissions",
            "role-permissions",
            "user-roles",
            "user-permissions",
        ),
        "core": (
            "master-image-groups",
            "master-images",
            "nodes",
            "projects",
            "project-nodes",
            "analyses",
            "analysis-nodes",
            "analysis-buckets",
            "analysis-bucket-files",
            "analysis-messages",
            "registries",
            "registry-projects",
        ),
        "storage": ("buckets", "bucket-files"),
    }
    for prefix, names in groups.items():
        for name in names:
            handler = MessageCollectionHandler if name == "analysis-messages" else CollectionHandler
            table.append((rf"/{prefix}/{name}", handler, {"resource": name}))
            table.append((rf"/{prefix}/{name}/{_ID}", ItemHandler, {"resource": name}))
    for name in ("analysis-logs", "analysis-node-logs"):
        table.append((rf"/core/{name}", LogCollectionHandler, {"resource": name}))
    return [(path, cls, {"hub": hub, **extra}) for path, cls, extra in table]


class HubApplication(Application):
    """Routes as a deployment's proxy does: repeated slashes merge (``/auth//token``)."""

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        if "//" in request.path:
            request.path = _SLASHES.sub("/", request.path)
        return super().find_handler(request, **kwargs)


def make_app(hub: Hub) -> Application:
    return HubApplication(
        routes(hub),  # type: ignore[arg-type]
        default_handler_class=NotFoundHandler,
        default_handler_args={"hub": hub},
    )


def _listen(hub: Hub, host: str, port: int) -> tuple[HTTPServer, int]:
    sockets = bind_sockets(port, host)
    server = HTTPServer(make_app(hub), max_body_size=hub.upload_limit + (1 << 20))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


class HubThread:
    """Run a sandbox hub on a loopback port in a background thread (tests, benchmarks)."""

    def __init__(self, home: Path, port: int = 0, **hub_options: Any) -> None:
        self.home = Path(home)
        self.port = port
        self.hub_options = hub_options
        self.hub: Hub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="sandbox-hub", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> HubThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the sandbox hub did not start within the timeout")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            store = Store(self.home)
            self.hub = Hub(store, **self.hub_options)
            self.hub.core.recover()
            server, self.port = _listen(self.hub, "127.0.0.1", self.port)
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()
        server.stop()
        await server.close_all_connections()
        store.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def __enter__(self) -> HubThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


STATE_FILE = "hub.json"


def serve(
    home: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the hub in the foreground until SIGTERM/SIGINT; announce the port in hub.json."""

    async def main() -> None:
        store = Store(home)
        hub = Hub(store)
        hub.core.recover()
        server, bound = _listen(hub, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        state = {"pid": os.getpid(), "port": bound, "url": f"http://{host}:{bound}"}
        tmp = Path(home) / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, Path(home) / STATE_FILE)
        if on_ready is not None:
            on_ready(state["url"])
        await stop.wait()
        server.stop()
        await server.close_all_connections()
        store.close()

    asyncio.run(main())
