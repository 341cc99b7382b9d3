"""The messenger extension: nodes exchange opaque ciphertext; each reads only its own inbox."""

from __future__ import annotations

import base64
import threading

import httpx2
import pytest

from tests.sandbox.hub.conftest import Sandbox, distributed_analysis, wait_for


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


def inbox(http: httpx2.Client, node_id: str, **extra: str) -> httpx2.Response:
    return http.get(
        "/analysis-messages",
        params={"filter[toNodeId]": node_id, "sort": "seq", **extra},
        timeout=30,
    )


def held_read(
    sandbox: Sandbox, reader: httpx2.Client, node_id: str
) -> tuple[threading.Thread, list[httpx2.Response]]:
    """A read of the node's inbox past what is there now, held at the hub (checked)."""
    cursor = max([m["seq"] for m in inbox(reader, node_id).json()["data"]], default=0)
    answers: list[httpx2.Response] = []
    thread = threading.Thread(
        target=lambda: answers.append(
            inbox(reader, node_id, **{"filter[seq]": f">{cursor}", "wait": "5"})
        )
    )
    thread.start()
    wait_for(lambda: sandbox.hub.inbox_bells.waiting(node_id), "the read to be held")
    return thread, answers


def payloads(response: httpx2.Response) -> list[bytes]:
    return [base64.b64decode(m["payload"]) for m in response.json()["data"]]


def test_a_waiting_read_answers_with_the_message_that_arrives_meanwhile(
    sandbox: Sandbox, analysis
) -> None:
    aachen, koeln = sandbox.node_id("uk-aachen"), sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-aachen") as sender, node_http(sandbox, "uk-koeln") as reader:
        waiting, answers = held_read(sandbox, reader, koeln)
        assert send(sender, analysis.id, aachen, koeln, b"\x03late").status_code == 201
        waiting.join(10)
    assert not waiting.is_alive()
    assert payloads(answers[0]) == [b"\x03late"]
    assert sandbox.hub.inbox_bells.waiting(koeln) == 0


def test_a_message_for_another_node_does_not_end_the_wait(sandbox: Sandbox, analysis) -> None:
    aachen, koeln = sandbox.node_id("uk-aachen"), sandbox.node_id("uk-koeln")
    aggregator = sandbox.node_id("aggregator")
    with node_http(sandbox, "uk-aachen") as sender, node_http(sandbox, "uk-koeln") as reader:
        waiting, answers = held_read(sandbox, reader, koeln)
        assert send(sender, analysis.id, aachen, aggregator, b"\x04other").status_code == 201
        assert sandbox.hub.inbox_bells.waiting(koeln) == 1
        assert send(sender, analysis.id, aachen, koeln, b"\x05mine").status_code == 201
        waiting.join(10)
    assert payloads(answers[0]) == [b"\x05mine"]


def test_a_wait_on_an_empty_inbox_ends_with_an_empty_page(sandbox: Sandbox, analysis) -> None:
    koeln = sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-koeln") as reader:
        empty = inbox(reader, koeln, **{"filter[seq]": ">999999", "wait": "0.1"})
    assert empty.status_code == 200 and empty.json()["data"] == []


@pytest.mark.parametrize("wait", ["-1", "5.5", "nan", "soon", ""])
def test_a_wait_outside_zero_to_five_seconds_is_refused(
    sandbox: Sandbox, analysis, wait: str
) -> None:
    koeln = sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-koeln") as reader:
        r = inbox(reader, koeln, wait=wait)
    assert r.status_code == 400 and "wait" in r.json()["message"]


def test_a_node_cannot_wait_on_another_inbox(sandbox: Sandbox, analysis) -> None:
    with node_http(sandbox, "uk-koeln") as reader:
        r = inbox(reader, sandbox.node_id("aggregator"), wait="5")
    assert r.status_code == 403
    assert sandbox.hub.inbox_bells.waiting(sandbox.node_id("aggregator")) == 0


def message(analysis_id, sender: str, recipient: str, payload: bytes) -> dict[str, str]:
    return {
        "analysisId": str(analysis_id),
        "fromNodeId": sender,
        "toNodeId": recipient,
        "payload": base64.b64encode(payload).decode(),
    }


def test_a_broadcast_is_one_request_with_a_copy_per_receiver(sandbox: Sandbox, analysis) -> None:
    aggregator = sandbox.node_id("aggregator")
    aachen, koeln = sandbox.node_id("uk-aachen"), sandbox.node_id("uk-koeln")
    with (
        node_http(sandbox, "aggregator") as sender,
        node_http(sandbox, "uk-aachen") as reader_a,
        node_http(sandbox, "uk-koeln") as reader_k,
    ):
        cursor_a = max([m["seq"] for m in inbox(reader_a, aachen).json()["data"]], default=0)
        waiting, answers = held_read(sandbox, reader_k, koeln)
        r = sender.post(
            "/analysis-messages",
            json=[
                message(analysis.id, aggregator, aachen, b"\x06for-aachen"),
                message(analysis.id, aggregator, koeln, b"\x06for-koeln"),
            ],
        )
        waiting.join(10)
        got_a = inbox(reader_a, aachen, **{"filter[seq]": f">{cursor_a}"})
    assert r.status_code == 201 and [m["toNodeId"] for m in r.json()["data"]] == [aachen, koeln]
    assert payloads(got_a) == [b"\x06for-aachen"]
    assert payloads(answers[0]) == [b"\x06for-koeln"]


def test_a_broadcast_with_one_bad_copy_stores_none_of_them(sandbox: Sandbox, analysis) -> None:
    aggregator, aachen = sandbox.node_id("aggregator"), sandbox.node_id("uk-aachen")
    with node_http(sandbox, "aggregator") as sender, node_http(sandbox, "uk-aachen") as reader:
        cursor = max([m["seq"] for m in inbox(reader, aachen).json()["data"]], default=0)
        r = sender.post(
            "/analysis-messages",
            json=[
                message(analysis.id, aggregator, aachen, b"\x07fine"),
                message(analysis.id, aachen, aggregator, b"\x07forged sender"),
            ],
        )
        after = inbox(reader, aachen, **{"filter[seq]": f">{cursor}"}).json()["data"]
    assert r.status_code == 403 and r.json()["message"].startswith("message 1: ")
    assert after == []


@pytest.mark.parametrize("body", [[], [None], ["text"]])
def test_a_broadcast_must_hold_messages(sandbox: Sandbox, analysis, body: list) -> None:
    with node_http(sandbox, "aggregator") as sender:
        r = sender.post("/analysis-messages", json=body)
    assert r.status_code == 400
