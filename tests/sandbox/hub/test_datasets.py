"""The hub carries each node's data description: only the node writes its own, bounded."""

from __future__ import annotations

import httpx
import pytest

from flame_lab.hubclient import HubEndpoints, with_client_credentials, with_password
from tests.sandbox.hub.conftest import Sandbox

DESCRIPTION = {"format": 1, "node": "x", "records": "100-999", "tables": []}


def _as_node(box: Sandbox, name: str) -> httpx.Client:
    node = box.nodes[name].node
    endpoints = HubEndpoints.under(box.url)
    return with_client_credentials(endpoints, node.client_id, node.client_secret).core_http


def _as_researcher(box: Sandbox) -> httpx.Client:
    p = box.provisioned
    return with_password(HubEndpoints.under(box.url), p.username, p.password).core_http


@pytest.fixture
def node_names(sandbox: Sandbox) -> list[str]:
    return sorted(sandbox.nodes)


def test_a_node_publishes_its_description_and_users_read_it(sandbox, node_names):
    name = node_names[0]
    node_id = sandbox.node_id(name)
    with _as_researcher(sandbox) as user:
        before = user.get(f"nodes/{node_id}/dataset")
        assert before.status_code == 404 and "has not described" in before.json()["message"]
        with _as_node(sandbox, name) as node:
            assert node.put(f"nodes/{node_id}/dataset", json=DESCRIPTION).status_code == 202
        assert user.get(f"nodes/{node_id}/dataset").json()["data"] == DESCRIPTION


def test_nobody_else_writes_a_nodes_description(sandbox, node_names):
    victim, other = node_names[0], node_names[1]
    path = f"nodes/{sandbox.node_id(victim)}/dataset"
    with _as_node(sandbox, other) as node:
        assert node.put(path, json={**DESCRIPTION, "records": "0"}).status_code == 403
    with _as_researcher(sandbox) as user:
        assert user.put(path, json=DESCRIPTION).status_code == 403
        assert user.get(path).json()["data"].get("records") != "0"
    assert httpx.get(f"{sandbox.url}/core/{path}").status_code == 401


def test_oversized_deep_or_unknown_descriptions_are_refused(sandbox, node_names):
    name = node_names[0]
    node_id = sandbox.node_id(name)
    with _as_node(sandbox, name) as node:
        path = f"nodes/{node_id}/dataset"
        big = node.put(path, json={**DESCRIPTION, "pad": "x" * 300_000})
        assert big.status_code == 413
        deep = node.put(path, content=b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        assert deep.status_code == 400 and "nested" in deep.json()["message"]
        assert node.put(path, json=[1, 2]).status_code == 400
        missing = "00000000-0000-4000-8000-000000000000"
        assert node.get(f"nodes/{missing}/dataset").status_code == 404
