"""Messages between nodes travel through the hub as ciphertext bound to their route."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flame_lab.security.keys import NodeIdentity
from flame_lab.security.node_channel import MessageRejected, Route, open_message, seal_message


@pytest.fixture(scope="module")
def nodes():
    return NodeIdentity.generate(), NodeIdentity.generate(), NodeIdentity.generate()


ROUTE = Route("analysis-1", "node-a", "node-b", "msg-1")


def _seal(nodes, text=b"sum=42", route=ROUTE):
    a, b, _ = nodes
    return seal_message(text, route, a.ecdh_key, b.public.ecdh_key)


def test_the_recipient_opens_what_the_sender_sealed(nodes):
    a, b, _ = nodes
    assert open_message(_seal(nodes), ROUTE, b.ecdh_key, a.public.ecdh_key) == b"sum=42"


def test_the_hub_sees_neither_plaintext_nor_a_repeated_ciphertext(nodes):
    first, second = _seal(nodes), _seal(nodes)
    assert first != second
    assert b"sum=42" not in first


def test_a_third_node_cannot_read_it(nodes):
    a, _, c = nodes
    with pytest.raises(MessageRejected):
        open_message(_seal(nodes), ROUTE, c.ecdh_key, a.public.ecdh_key)


def test_a_message_forged_by_a_third_node_in_the_senders_name_is_rejected(nodes):
    a, b, c = nodes
    forged = seal_message(b"sum=0", ROUTE, c.ecdh_key, b.public.ecdh_key)
    with pytest.raises(MessageRejected, match="node-a"):
        open_message(forged, ROUTE, b.ecdh_key, a.public.ecdh_key)


@pytest.mark.parametrize(
    "field, value",
    [
        ("analysis_id", "analysis-2"),
        ("sender_id", "node-c"),
        ("recipient_id", "node-c"),
        ("message_id", "msg-2"),
    ],
)
def test_a_message_replayed_on_another_route_is_rejected(nodes, field, value):
    a, b, _ = nodes
    with pytest.raises(MessageRejected):
        open_message(_seal(nodes), replace(ROUTE, **{field: value}), b.ecdh_key, a.public.ecdh_key)


def test_any_flipped_byte_is_rejected(nodes):
    a, b, _ = nodes
    raw = _seal(nodes)
    for position in range(0, len(raw), 7):
        mutated = bytearray(raw)
        mutated[position] ^= 0x01
        with pytest.raises(MessageRejected):
            open_message(bytes(mutated), ROUTE, b.ecdh_key, a.public.ecdh_key)


def test_garbage_and_truncated_messages_are_rejected_cleanly(nodes):
    a, b, _ = nodes
    for sealed in (b"\x02" + bytes(80), b"\x01short", b""):
        with pytest.raises(MessageRejected):
            open_message(sealed, ROUTE, b.ecdh_key, a.public.ecdh_key)
