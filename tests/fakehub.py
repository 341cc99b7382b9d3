"""An in-memory stand-in for the flame_hub clients a Federation drives, with faults on demand,
and a clock the tests move by hand: outages and bounds are tested without waiting.

Faults are planned per method: ``"down"`` (the connection is refused: nothing happens),
``"lost"`` (the hub does it, then the answer is lost: a read timeout), ``"stalled"`` (the
request times out and the hub does it only later, after the next call of that method).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx

from flame_lab.federation import Federation
from flame_lab.hubclient import HubEndpoints
from flame_lab.records import SubmissionStore

PROJECT = "project-1"
IMAGE = SimpleNamespace(id="image-1", virtual_path="python/base")


class FakeClock:
    """now/monotonic/sleep: sleeping moves both clocks, nothing waits."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _page(items: list[Any], page: dict[str, int] | None) -> list[Any]:
    if not page:
        return list(items)
    start = page.get("offset", 0)
    return list(items[start : start + page.get("limit", 50)])


def _match(item: Any, wanted: dict[str, Any] | None) -> bool:
    return all(str(getattr(item, k, None)) == str(v) for k, v in (wanted or {}).items())


@dataclass
class FakeCore:
    nodes: list[SimpleNamespace] = field(default_factory=list)
    analyses: dict[str, SimpleNamespace] = field(default_factory=dict)
    links: list[SimpleNamespace] = field(default_factory=list)
    node_logs: list[SimpleNamespace] = field(default_factory=list)
    buckets: list[SimpleNamespace] = field(default_factory=list)
    bucket_files: list[SimpleNamespace] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False  # every call refused (the hub is away)
    _later: list[Callable[[], Any]] = field(default_factory=list)
    _clock: Any = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _fault(self, method: str, do: Callable[[], Any]) -> Any:
        self.calls.append(method)
        if self.down:
            raise httpx.ConnectError("connection refused")
        plan = self.faults.get(method) or []
        fault = plan.pop(0) if plan else None
        for late in self._later[:]:  # a stalled request goes through now, behind this one
            self._later.remove(late)
            late()
        if fault == "down":
            raise httpx.ConnectError("connection refused")
        if fault == "stalled":
            self._later.append(do)
            raise httpx.ReadTimeout("timed out")
        result = do()
        if fault == "lost":
            raise httpx.ReadTimeout("timed out")
        return result

    # -- projects, nodes, images ---------------------------------------------------------
    def find_project_nodes(self, page=None, filter=None):
        links = [
            SimpleNamespace(node_id=n.id, approval_status="approved", project_id=PROJECT)
            for n in self.nodes
        ]
        return self._fault("find_project_nodes", lambda: _page(links, page))

    def get_nodes(self, page=None):
        return self._fault("get_nodes", lambda: _page(self.nodes, page))

    def find_master_images(self, page=None):
        return self._fault("find_master_images", lambda: _page([IMAGE], page))

    # -- analyses --------------------------------------------------------------------------
    def create_analysis(self, project_id, name, display_name, description, master_image_id):
        def do():
            analysis = SimpleNamespace(
                id=str(uuid.uuid4()),
                project_id=project_id,
                name=name,
                description=description,
                created_at=f"{next(self._ids):06d}",
                configuration_locked=False,
                build_status=None,
                distribution_status=None,
                locks=0,
            )
            self.analyses[analysis.id] = analysis
            self.buckets.append(
                SimpleNamespace(
                    id=f"b-{analysis.id}",
                    bucket_id=f"s-{analysis.id}",
                    analysis_id=analysis.id,
                    type="CODE",
                )
            )
            return analysis

        return self._fault("create_analysis", do)

    def find_analyses(self, page=None, filter=None):
        found = [a for a in self.analyses.values() if _match(a, filter)]
        return self._fault("find_analyses", lambda: _page(found, page))

    def get_analysis(self, analysis_id):
        return self._fault("get_analysis", lambda: self.analyses.get(analysis_id))

    def delete_analysis(self, analysis_id):
        def do():
            if analysis_id not in self.analyses:
                raise _not_found()
            del self.analyses[analysis_id]
            self.links[:] = [x for x in self.links if x.analysis_id != analysis_id]

        return self._fault("delete_analysis", do)

    def send_analysis_command(self, analysis_id, command):
        def do():
            analysis = self.analyses[analysis_id]
            if command == "configurationLock":
                if analysis.configuration_locked:
                    raise _refused("the configuration is already locked")
                analysis.configuration_locked = True
                analysis.locks += 1
            return analysis

        return self._fault("send_analysis_command", do)

    # -- analysis nodes and logs -------------------------------------------------------------
    def find_analysis_nodes(self, page=None, filter=None):
        found = [x for x in self.links if _match(x, filter)]
        return self._fault("find_analysis_nodes", lambda: _page(found, page))

    def create_analysis_node(self, analysis_id, node_id):
        def do():
            node = next(n for n in self.nodes if n.id == node_id)
            link = SimpleNamespace(
                id=str(uuid.uuid4()),
                analysis_id=analysis_id,
                node_id=node_id,
                approval_status="approved" if node.type == "aggregator" else None,
                execution_status=None,
                execution_progress=0,
                comment=None,
                node=SimpleNamespace(online=True),
            )
            self.links.append(link)
            return link

        return self._fault("create_analysis_node", do)

    def delete_analysis_node(self, link_id):
        def do():
            self.links[:] = [x for x in self.links if x.id != link_id]

        return self._fault("delete_analysis_node", do)

    def find_analysis_node_logs(self, page=None, filter=None):
        found = [x for x in self.node_logs if _match(x, filter)]
        return self._fault("find_analysis_node_logs", lambda: _page(found, page))

    def find_analysis_logs(self, page=None, filter=None):
        return self._fault("find_analysis_logs", lambda: [])

    # -- buckets -------------------------------------------------------------------------------
    def find_analysis_buckets(self, page=None, filter=None):
        found = [b for b in self.buckets if _match(b, filter)]
        return self._fault("find_analysis_buckets", lambda: found)

    def find_analysis_bucket_files(self, page=None, filter=None):
        found = [f for f in self.bucket_files if _match(f, filter)]
        return self._fault("find_analysis_bucket_files", lambda: _page(found, page))

    def create_analysis_bucket_file(self, path, file_id, bucket_id, analysis_bucket_id, **kw):
        def do():
            analysis_id = analysis_bucket_id.removeprefix("b-")
            row = SimpleNamespace(
                id=str(uuid.uuid4()),
                path=path,
                analysis_id=analysis_id,
                root=kw.get("is_entrypoint", False),
            )
            self.bucket_files.append(row)
            return row

        return self._fault("create_analysis_bucket_file", do)

    def update_analysis_bucket_file(self, file_id, is_entrypoint):
        def do():
            for row in self.bucket_files:
                if row.id == file_id:
                    row.root = is_entrypoint

        return self._fault("update_analysis_bucket_file", do)


@dataclass
class FakeStorage:
    core: FakeCore
    uploads: list[str] = field(default_factory=list)

    def upload_to_bucket(self, bucket_id, *files):
        def do():
            self.uploads.append(bucket_id)
            return [
                SimpleNamespace(id=f"{bucket_id}/{f['file_name']}", path=f["file_name"], name=None)
                for f in files
            ]

        return self.core._fault("upload_to_bucket", do)


def _api_error(status: int, message: str) -> Exception:
    from flame_hub import HubAPIError

    error = HubAPIError(message, httpx.Request("GET", "http://hub.invalid/core"))
    error.error_response = SimpleNamespace(status_code=status, message=message)  # type: ignore[assignment]
    return error


def _not_found() -> Exception:
    return _api_error(404, "not found")


def _refused(message: str) -> Exception:
    return _api_error(400, message)


def federation(tmp_path, node_names=("uk-aachen", "uk-koeln")) -> tuple[Federation, FakeCore]:
    """A Federation on the fake hub, with a fake clock and its own records folder."""
    core = FakeCore()
    core.nodes = [
        SimpleNamespace(id=f"id-{name}", name=name, type="default", online=True)
        for name in node_names
    ] + [SimpleNamespace(id="id-aggregator", name="aggregator", type="aggregator", online=True)]
    endpoints = HubEndpoints.under("http://hub.invalid")
    clients = SimpleNamespace(
        endpoints=endpoints, core=core, storage=FakeStorage(core), core_http=None
    )
    fed = Federation(
        "fake", endpoints, clients, sandbox_home=None, store=SubmissionStore(tmp_path / "records")
    )  # type: ignore[arg-type]
    fed.project_id = PROJECT
    fed.change_feed = False
    fed.clock = FakeClock()
    return fed, core
