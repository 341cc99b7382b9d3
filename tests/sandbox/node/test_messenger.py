"""Node messages on the wire: one request per broadcast, opened only by their receiver, once."""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import pytest

from flame_lab.errors import HubUnreachable
from flame_lab.hubclient import HubEndpoints, HubOutage, Patience
from flame_lab.sandbox.node.messenger import HubTransport, frame, unframe
from flame_lab.security.keys import NodeIdentity


class FakeMessenger:
    """The hub's messenger route, in memory (this layer's unit tests only)."""

    def __init__(self) -> None:
        self.stored: list[dict[str, Any]] = []
        self.posts = 0

    def post(self, url: str, json: Any) -> httpx2.Response:
        self.posts += 1
        for item in json if isinstance(json, list) else [json]:
            self.stored.append({**item, "seq": len(self.stored) + 1})
        return httpx2.Response(201, json={"data": json})

    def get(self, url: str, params: dict[str, str], timeout: float = 0) -> httpx2.Response:
        after = int(params["filter[seq]"].lstrip(">"))
        mine = [
            m
            for m in self.stored
            if m["toNodeId"] == params["filter[toNodeId]"] and m["seq"] > after
        ]
        return httpx2.Response(200, json={"data": mine})


class Clients:
    def __init__(self, http: FakeMessenger) -> None:
        self.core_http = http
        self.endpoints = HubEndpoints.under("http://hub.invalid")


class FlakyMessenger(FakeMessenger):
    """A hub that does not answer the first ``failures`` requests (down, or stalled)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _fault(self) -> None:
        if self.failures:
            self.failures -= 1
            raise httpx2.ReadTimeout("no answer")

    def post(self, url: str, json: Any) -> httpx2.Response:
        self._fault()
        return super().post(url, json)

    def get(self, url: str, params: dict[str, str], timeout: float = 0) -> httpx2.Response:
        self._fault()
        return super().get(url, params, timeout)


@pytest.fixture(scope="module")
def identities() -> dict[str, NodeIdentity]:
    return {name: NodeIdentity.generate() for name in ("agg", "a", "b")}


def transport(
    hub: FakeMessenger,
    me: str,
    identities,
    rejected: list[str] | None = None,
    patience: Patience | None = None,
):
    return HubTransport(
        Clients(hub),  # type: ignore[arg-type]
        "analysis-1",
        me,
        identities[me],
        lambda node: identities[node].public.ecdh_key,
        on_rejected=None if rejected is None else rejected.append,
        patience=patience or Patience("TEST_OUTAGE", 60.0, first_delay=0.001, max_delay=0.001),
    )


def test_messages_outlast_a_hub_that_does_not_answer_for_a_while(identities) -> None:
    hub = FlakyMessenger(failures=3)
    transport(hub, "a", identities).send(["agg"], "data", b"sent during an outage")
    hub.failures = 3
    received = transport(hub, "agg", identities).receive(timeout=None)
    assert received is not None and received.body == b"sent during an outage"


def test_past_its_named_limit_the_transport_names_the_outage(identities) -> None:
    hub = FlakyMessenger(failures=10**9)
    limit = Patience("TEST_OUTAGE", 0.01, first_delay=0.001, max_delay=0.001)
    sender = transport(hub, "a", identities, patience=limit)
    with pytest.raises(HubOutage) as caught:
        sender.send(["agg"], "data", b"x")
    message = caught.value.message
    assert "send a message to other nodes" in message and "TEST_OUTAGE=0.01 s" in message
    assert "ReadTimeout" in message and isinstance(caught.value, HubUnreachable)
    assert sender.outage is caught.value  # the agent reports this, not the analysis's traceback


def test_a_broadcast_is_one_request_and_each_receiver_reads_its_copy(identities) -> None:
    hub = FakeMessenger()
    sent = transport(hub, "agg", identities).send(["a", "b"], "intermediate", b"\x00weights")
    assert sent == ["a", "b"] and hub.posts == 1
    for name in ("a", "b"):
        message = transport(hub, name, identities).receive(timeout=0)
        assert (message.sender, message.category, message.body) == (
            "agg",
            "intermediate",
            b"\x00weights",
        )


def test_the_hub_sees_no_plaintext(identities) -> None:
    hub = FakeMessenger()
    transport(hub, "agg", identities).send(["a"], "intermediate", b"secret-sum=42")
    assert b"secret-sum" not in base64.b64decode(hub.stored[0]["payload"])


def test_a_copy_for_another_node_or_a_tampered_one_is_rejected(identities) -> None:
    hub, rejected = FakeMessenger(), []
    transport(hub, "agg", identities).send(["a"], "intermediate", b"x")
    hub.stored[0]["toNodeId"] = "b"  # the hub redirects a's copy to b
    assert transport(hub, "b", identities, rejected).receive(timeout=0) is None
    raw = bytearray(base64.b64decode(hub.stored[0]["payload"]))
    raw[-1] ^= 1
    hub.stored[0].update(toNodeId="a", payload=base64.b64encode(raw).decode())
    assert transport(hub, "a", identities, rejected).receive(timeout=0) is None
    assert len(rejected) == 2 and all("did not authenticate" in why for why in rejected)


def test_a_replayed_message_is_read_once(identities) -> None:
    hub, rejected = FakeMessenger(), []
    transport(hub, "agg", identities).send(["a"], "intermediate", b"x")
    hub.stored.append({**hub.stored[0], "seq": 2})  # the hub serves it again
    reader = transport(hub, "a", identities, rejected)
    assert reader.receive(timeout=0).body == b"x"
    assert reader.receive(timeout=0) is None
    assert rejected == ["a message from agg was repeated or had no id"]


@pytest.mark.parametrize(
    "category, body", [("intermediate_data", b""), ("ünïcode", b"\x00\xff" * 10), ("", b"x")]
)
def test_a_frame_keeps_category_and_body_apart(category: str, body: bytes) -> None:
    assert unframe(frame(category, body)) == (category, body)


@pytest.mark.parametrize("plaintext", [b"", b"\x02\x00\x00", b"\x01\x00\x09abc", b"\x01\x00"])
def test_other_frames_are_refused(plaintext: bytes) -> None:
    with pytest.raises(ValueError):
        unframe(plaintext)
