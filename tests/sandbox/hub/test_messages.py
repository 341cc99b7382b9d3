"""The messenger extension: nodes exchange opaque ciphertext; each reads only its own inbox."""

from __future__ import annotations

import base64

import httpx2
import pytest

from tests.sandbox.hub.conftest import Sandbox, distributed_analysis


def node_http(box: Sandbox, name: str) -> httpx2.Client:
    clients = box.nodes[name]
    clients.core.get_master_images()  # obtain a token through flame_hub's ClientAuth
    token = clients.core._client.auth._current_token.access_token
    return httpx2.Client(base_url=f"{box.url}/core", headers={"Authorization": f"Bearer {token}"})


def send(
    http: httpx2.Client, analysis_id, sender: str, recipient: str, payload: bytes
) -> httpx2.Response:
    return http.post(
        "/analysis-messages",
        json={
            "analysisId": str(analysis_id),
            "fromNodeId": sender,
            "toNodeId": recipient,
            "payload": base64.b64encode(payload).decode(),
        },
    )


@pytest.fixture(scope="module")
def analysis(sandbox: Sandbox):
    return distributed_analysis(sandbox, "messenger")


def test_a_node_sends_and_the_recipient_reads_with_a_cursor(sandbox: Sandbox, analysis) -> None:
    aachen, aggregator = sandbox.node_id("uk-aachen"), sandbox.node_id("aggregator")
    with node_http(sandbox, "uk-aachen") as sender, node_http(sandbox, "aggregator") as reader:
        first = send(sender, analysis.id, aachen, aggregator, b"\x01cipher")
        assert first.status_code == 201
        send(sender, analysis.id, aachen, aggregator, b"\x02cipher")
        inbox = reader.get(
            "/analysis-messages", params={"filter[toNodeId]": aggregator, "sort": "seq"}
        ).json()
        assert [base64.b64decode(m["payload"]) for m in inbox["data"]] == [
            b"\x01cipher",
            b"\x02cipher",
        ]
        cursor = inbox["data"][0]["seq"]
        newer = reader.get(
            "/analysis-messages",
            params={"filter[toNodeId]": aggregator, "filter[seq]": f">{cursor}"},
        ).json()
    assert [base64.b64decode(m["payload"]) for m in newer["data"]] == [b"\x02cipher"]
    assert "schema" in newer["meta"]


def test_a_node_cannot_send_as_another_node(sandbox: Sandbox, analysis) -> None:
    with node_http(sandbox, "uk-aachen") as http:
        r = send(
            http, analysis.id, sandbox.node_id("uk-koeln"), sandbox.node_id("aggregator"), b"x"
        )
    assert r.status_code == 403


def test_a_node_reads_only_its_own_inbox(sandbox: Sandbox, analysis) -> None:
    with node_http(sandbox, "uk-koeln") as http:
        other = http.get(
            "/analysis-messages", params={"filter[toNodeId]": sandbox.node_id("aggregator")}
        )
        unfiltered = http.get("/analysis-messages")
    assert other.status_code == 403 and unfiltered.status_code == 403
    with httpx2.Client(base_url=f"{sandbox.url}/core") as anonymous:
        assert anonymous.get("/analysis-messages").status_code == 401


def test_the_researcher_cannot_read_node_messages(sandbox: Sandbox, analysis) -> None:
    sandbox.core.get_master_images()
    token = sandbox.core._client.auth._current_token.access_token
    with httpx2.Client(
        base_url=f"{sandbox.url}/core", headers={"Authorization": f"Bearer {token}"}
    ) as http:
        r = http.get(
            "/analysis-messages", params={"filter[toNodeId]": sandbox.node_id("aggregator")}
        )
    assert r.status_code == 403


def test_payloads_must_be_base64_and_recipients_members(sandbox: Sandbox, analysis) -> None:
    aachen = sandbox.node_id("uk-aachen")
    with node_http(sandbox, "uk-aachen") as http:
        bad = http.post(
            "/analysis-messages",
            json={
                "analysisId": str(analysis.id),
                "fromNodeId": aachen,
                "toNodeId": aachen,
                "payload": "%%%",
            },
        )
        stranger = send(http, analysis.id, aachen, "00000000-0000-4000-8000-000000000000", b"x")
        snake = http.post("/analysis-messages", json={"analysis_id": str(analysis.id)})
    assert bad.status_code == 400 and "payload" in bad.json()["message"]
    assert stranger.status_code == 400 and "toNodeId" in stranger.json()["message"]
    assert snake.status_code == 400 and "analysis_id" in snake.json()["message"]
