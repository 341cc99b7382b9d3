"""A provisioned sandbox hub on a free loopback port, and flame_hub clients for each role."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flame_hub import CoreClient, StorageClient
from flame_hub.auth import ClientAuth, PasswordAuth

from flame_lab.sandbox.hub.app import Hub, HubThread
from flame_lab.sandbox.hub.provision import Provisioned, ProvisionedNode, node_names, provision
from flame_lab.sandbox.hub.store import Store


@dataclass
class NodeClients:
    node: ProvisionedNode
    core: CoreClient
    storage: StorageClient


@dataclass
class Sandbox:
    """The hub's URL, its starting records, and clients acting as researcher and as each node."""

    url: str
    provisioned: Provisioned
    core: CoreClient
    storage: StorageClient
    nodes: dict[str, NodeClients] = field(default_factory=dict)
    hub: Hub | None = None

    @property
    def project_id(self) -> str:
        return self.provisioned.project_id

    def node_id(self, name: str) -> str:
        return self.nodes[name].node.id


def researcher_clients(url: str, p: Provisioned) -> tuple[CoreClient, StorageClient]:
    auth = PasswordAuth(p.username, p.password, base_url=f"{url}/auth")
    return CoreClient(f"{url}/core", auth=auth), StorageClient(f"{url}/storage", auth=auth)


def node_clients(url: str, node: ProvisionedNode) -> NodeClients:
    auth = ClientAuth(node.client_id, node.client_secret, base_url=f"{url}/auth")
    return NodeClients(
        node, CoreClient(f"{url}/core", auth=auth), StorageClient(f"{url}/storage", auth=auth)
    )


def provisioned_home(home: Path, nodes: int = 3) -> Provisioned:
    store = Store(home)
    try:
        return provision(store, node_names(nodes))
    finally:
        store.close()


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail clearly after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def hub_options() -> dict[str, Any]:
    return {"upload_limit": 256 * 1024}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, hub_options: dict) -> Iterator[Sandbox]:
    home = tmp_path_factory.mktemp("hub")
    provisioned = provisioned_home(home)
    with HubThread(home, **hub_options) as server:
        core, storage = researcher_clients(server.url, provisioned)
        box = Sandbox(server.url, provisioned, core, storage, hub=server.hub)
        for node in provisioned.nodes:
            box.nodes[node.name] = node_clients(server.url, node)
        yield box


def code_bucket_id(box: Sandbox, analysis_id: str, kind: str = "CODE") -> str:
    """Wait for the hub's asynchronous bucket creation, as real clients do."""

    def probe() -> str | None:
        found = box.core.find_analysis_buckets(filter={"analysis_id": analysis_id, "type": kind})
        return str(found[0].bucket_id) if found else None

    return wait_for(probe, f"the {kind} bucket of analysis {analysis_id}")


def ready_analysis(box: Sandbox, name: str = "ready", *, lock: bool = True) -> Any:
    """An analysis with uploaded code and an entrypoint (and locked, unless told otherwise)."""
    analysis = box.core.create_analysis(box.project_id, name=name)
    bucket = code_bucket_id(box, str(analysis.id))
    box.storage.upload_to_bucket(
        bucket,
        {"file_name": "main.py", "content": b"print('hello')\n"},
        {"file_name": "lib/helpers.py", "content": b"X = 1\n"},
    )
    files = box.core.find_analysis_bucket_files(
        filter={"analysis_id": analysis.id, "path": "main.py"}
    )
    box.core.update_analysis_bucket_file(files[0].id, is_entrypoint=True)
    if lock:
        box.core.send_analysis_command(analysis.id, "configurationLock")
    return box.core.get_analysis(analysis.id)


def approve_all(box: Sandbox, analysis_id: Any) -> None:
    for clients in box.nodes.values():
        if clients.node.type != "default":
            continue
        mine = clients.core.find_analysis_nodes(
            filter={"analysis_id": analysis_id, "node_id": clients.node.id}
        )
        clients.core.update_analysis_node(mine[0].id, approval_status="approved")


def build(box: Sandbox, analysis_id: Any) -> Any:
    """buildStart, then buildCheck until the hub's background build is done (as on the Hub)."""
    started = box.core.send_analysis_command(analysis_id, "buildStart")
    assert started.build_status in ("starting", "executed")

    def done() -> Any:
        checked = box.core.send_analysis_command(analysis_id, "buildCheck")
        return checked if checked.build_status == "executed" else None

    return wait_for(done, f"the build of analysis {analysis_id}")


def distributed_analysis(box: Sandbox, name: str) -> Any:
    analysis = ready_analysis(box, name)
    approve_all(box, analysis.id)
    build(box, analysis.id)
    return box.core.send_analysis_command(analysis.id, "distributionStart")
